"""C expressions over the kernel's DWARF types, evaluated by drgn on the live machine: what the
debugger's `print` and `ptype` take (`*klp_transition_patch`, `ftrace_ops_list->next->func`,
`((struct task_struct *)0xffff...)->patch_state`).

drgn gives typed objects and C's operator semantics (integer promotions, pointer arithmetic,
member access through pointers) but no parser for C text, so this file is the parser: a Pratt
parser whose every node is a drgn operation. Errors read as gdb's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from errno import EFAULT, EINVAL, ENOENT
from typing import TYPE_CHECKING, Any

from ..errors import KlpemuError

if TYPE_CHECKING:
    import drgn

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>0[xX][0-9a-fA-F]+|\d+)(?P<suffix>[uUlL]*)
    | (?P<char>'(?:\\.|[^\\'])')
    | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>->|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^~!<>()\[\].,?:])
    )""",
    re.VERBOSE,
)

# Words that start a type name inside a cast or sizeof.
_TYPE_WORDS = {
    "struct",
    "union",
    "enum",
    "unsigned",
    "signed",
    "const",
    "volatile",
    "char",
    "short",
    "int",
    "long",
    "void",
    "_Bool",
}

# Binary operators by precedence, loosest first (C's table without assignment and comma).
_BINARY: dict[str, int] = {
    "||": 1,
    "&&": 2,
    "|": 3,
    "^": 4,
    "&": 5,
    "==": 6,
    "!=": 6,
    "<": 7,
    ">": 7,
    "<=": 7,
    ">=": 7,
    "<<": 8,
    ">>": 8,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "%": 10,
}

_CHAR_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11}


class ExpressionError(KlpemuError):
    def __init__(self, message: str, errno: int = EINVAL):
        super().__init__(message, errno)


@dataclass(frozen=True)
class _Token:
    kind: str  # num, char, name, op, end
    text: str
    suffix: str = ""


def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"Invalid character '{text[pos:].lstrip()[0]}' in expression.")
        kind = m.lastgroup if m.lastgroup != "suffix" else "num"
        if m.group("num") is not None:
            tokens.append(_Token("num", m.group("num"), m.group("suffix")))
        else:
            assert kind is not None
            tokens.append(_Token(kind, m.group(kind)))
        pos = m.end()
    tokens.append(_Token("end", ""))
    return tokens


class _Parser:
    def __init__(self, prog: drgn.Program, text: str, variables: Mapping[str, Any]):
        import drgn

        self.drgn = drgn
        self.prog = prog
        self.tokens = _tokenize(text)
        self.pos = 0
        self.variables = variables

    # -- tokens --
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise ExpressionError(f"A syntax error in expression, near `{self._rest(tok)}'.")

    def _rest(self, tok: _Token) -> str:
        i = self.tokens.index(tok)
        return " ".join(t.text for t in self.tokens[i:] if t.kind != "end")

    # -- types --
    def _type_name_end(self) -> int | None:
        """Where a type name starting here ends (the index of its closing ')'), or None when the
        parenthesis holds an expression."""
        first = self.peek()
        if first.kind != "name":
            return None
        if first.text not in _TYPE_WORDS and not self._is_typedef(first.text):
            return None
        depth, i = 0, self.pos
        while self.tokens[i].kind != "end":
            t = self.tokens[i].text
            if t == "(":
                depth += 1
            elif t == ")":
                if depth == 0:
                    return i
                depth -= 1
            i += 1
        return None

    def _is_typedef(self, name: str) -> bool:
        try:
            self.prog.type(name)
        except LookupError:
            return False
        try:
            self.prog[name]
        except KeyError:
            return True
        return False  # a variable of the same name wins, as in C

    def parse_type(self, end: int) -> drgn.Type:
        text = " ".join(t.text for t in self.tokens[self.pos : end])
        self.pos = end
        try:
            return self.prog.type(text)
        except (LookupError, SyntaxError, ValueError) as e:
            raise ExpressionError(f"No type named {text}.", ENOENT) from e

    # -- expressions --
    def expression(self, min_prec: int = 1) -> drgn.Object:
        left = self.unary()
        while True:
            op = self.peek()
            prec = _BINARY.get(op.text) if op.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.take()
            right = self.expression(prec + 1)
            left = self.binary(op.text, left, right)

    def binary(self, op: str, left: drgn.Object, right: drgn.Object) -> drgn.Object:
        ops: dict[str, Callable[[drgn.Object, drgn.Object], object]] = {
            "+": lambda a, b: a + b,
            "-": lambda a, b: a - b,
            "*": lambda a, b: a * b,
            "/": lambda a, b: a / b,
            "%": lambda a, b: a % b,
            "<<": lambda a, b: a << b,
            ">>": lambda a, b: a >> b,
            "&": lambda a, b: a & b,
            "|": lambda a, b: a | b,
            "^": lambda a, b: a ^ b,
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            ">": lambda a, b: a > b,
            "<=": lambda a, b: a <= b,
            ">=": lambda a, b: a >= b,
            "&&": lambda a, b: bool(a) and bool(b),
            "||": lambda a, b: bool(a) or bool(b),
        }
        result = self.guard(lambda: ops[op](left, right))
        if isinstance(result, bool):  # C's comparisons and logic give an int
            return self.drgn.Object(self.prog, "int", int(result))
        assert isinstance(result, self.drgn.Object)
        return result

    def unary(self) -> drgn.Object:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("*", "&", "-", "+", "~", "!"):
            self.take()
            operand = self.unary()
            if tok.text == "*":
                return self.guard(lambda: self.dereference(operand))
            if tok.text == "&":
                return self.guard(operand.address_of_)
            if tok.text == "-":
                return self.guard(lambda: -operand)
            if tok.text == "+":
                return self.guard(lambda: +operand)
            if tok.text == "~":
                return self.guard(lambda: ~operand)
            return self.drgn.Object(self.prog, "int", int(not self.guard(lambda: bool(operand))))
        if tok.kind == "name" and tok.text == "sizeof":
            self.take()
            return self.drgn.Object(self.prog, "unsigned long", self.sizeof())
        if tok.text == "(":
            self.take()
            end = self._type_name_end()
            if end is not None:
                type_ = self.parse_type(end)
                self.expect(")")
                operand = self.unary()
                return self.guard(lambda: self.drgn.cast(type_, operand))
            self.pos -= 1
        return self.postfix(self.primary())

    def sizeof(self) -> int:
        if self.peek().text == "(":
            self.take()
            end = self._type_name_end()
            if end is not None:
                type_ = self.parse_type(end)
                self.expect(")")
                return self.guard(lambda: self.drgn.sizeof(type_))
            self.pos -= 1
        operand = self.unary()
        return self.guard(lambda: self.drgn.sizeof(operand))

    def dereference(self, obj: drgn.Object) -> drgn.Object:
        kind = obj.type_.unaliased_kind()
        if kind not in (self.drgn.TypeKind.POINTER, self.drgn.TypeKind.ARRAY):
            raise ExpressionError("Attempt to take contents of a non-pointer value.")
        return obj[0]

    def postfix(self, obj: drgn.Object) -> drgn.Object:
        while True:
            tok = self.peek()
            if tok.text in ("->", "."):
                self.take()
                member = self.take()
                if member.kind != "name":
                    raise ExpressionError(f"A syntax error in expression, near `{self._rest(member)}'.")
                obj = self.member(obj, member.text, arrow=tok.text == "->")
            elif tok.text == "[":
                self.take()
                index = self.expression()
                self.expect("]")
                obj = self.guard(lambda o=obj, i=index: o[i])  # type: ignore[misc]
            else:
                return obj

    def member(self, obj: drgn.Object, name: str, arrow: bool) -> drgn.Object:
        kind = obj.type_.unaliased_kind()
        is_pointer = kind == self.drgn.TypeKind.POINTER
        if arrow and not is_pointer:
            raise ExpressionError(f"The -> operator needs a pointer to a struct, not {obj.type_.type_name()}.")
        try:
            return obj.member_(name)
        except LookupError:
            type_name = obj.type_.type.type_name() if is_pointer else obj.type_.type_name()
            raise ExpressionError(f"There is no member named {name} in {type_name}.", ENOENT) from None
        except TypeError as e:
            raise ExpressionError(str(e)) from None

    def primary(self) -> drgn.Object:
        tok = self.take()
        if tok.kind == "num":
            return self.number(tok)
        if tok.kind == "char":
            body = tok.text[1:-1]
            value = _CHAR_ESCAPES.get(body[1], ord(body[1])) if body.startswith("\\") else ord(body)
            return self.drgn.Object(self.prog, "char", value)
        if tok.kind == "name":
            if tok.text.startswith("$"):
                variable = self.variables.get(tok.text[1:])
                if variable is None:
                    raise ExpressionError(f"No register or variable named {tok.text}.", ENOENT)
                if isinstance(variable, self.drgn.Object):
                    return variable
                return self.drgn.Object(self.prog, "unsigned long", variable)
            try:
                return self.prog[tok.text]
            except KeyError:
                raise ExpressionError(f'No symbol "{tok.text}" in current context.', ENOENT) from None
        if tok.text == "(":
            obj = self.expression()
            self.expect(")")
            return obj
        if tok.kind == "end":
            raise ExpressionError("An expression is needed.")
        raise ExpressionError(f"A syntax error in expression, near `{self._rest(tok)}'.")

    def number(self, tok: _Token) -> drgn.Object:
        value = int(tok.text, 0) if not re.fullmatch(r"0\d+", tok.text) else int(tok.text, 8)
        suffix = tok.suffix.lower()
        unsigned = "u" in suffix
        if not unsigned and "l" not in suffix and value < 2**31:
            type_name = "int"
        elif not unsigned and value < 2**63:
            type_name = "long"
        elif value < 2**64:
            type_name = "unsigned long"
        else:
            raise ExpressionError("Numeric constant too large.")
        return self.drgn.Object(self.prog, type_name, value)

    def guard(self, fn: Callable[[], Any]) -> Any:
        """Run one drgn operation; its errors become the debugger's messages."""
        try:
            return fn()
        except self.drgn.FaultError as e:
            raise ExpressionError(f"Cannot access memory at address {e.address:#x}", EFAULT) from None
        except ZeroDivisionError:
            raise ExpressionError("Division by zero") from None
        except (TypeError, ValueError, self.drgn.ObjectAbsentError) as e:
            raise ExpressionError(str(e)) from None


def evaluate(
    prog: drgn.Program, text: str, variables: Mapping[str, Any] | None = None, *, lvalue: bool = False
) -> drgn.Object:
    """The value of a C expression; `$name` reads `variables` (the debugger's registers, as
    integers, and convenience objects such as `$current`, as drgn Objects). With lvalue, the
    object itself (its address kept), not its value read now."""
    parser = _Parser(prog, text, variables or {})
    obj = parser.expression()
    if parser.peek().kind != "end":
        raise ExpressionError(f"A syntax error in expression, near `{parser._rest(parser.peek())}'.")
    if lvalue or obj.absent_ or obj.type_.unaliased_kind() == parser.drgn.TypeKind.FUNCTION:
        return obj
    # drgn reads lazily; reading now makes a bad address this expression's error, not the printer's
    return parser.guard(obj.read_)


def type_of(prog: drgn.Program, text: str, variables: Mapping[str, Any] | None = None) -> drgn.Type:
    """What `ptype` shows: a type named by TEXT, else the type of TEXT as an expression; as
    in gdb, with typedefs seen through (`ptype bool` is `_Bool`)."""
    try:
        return prog.type(text.strip()).unaliased()
    except (LookupError, SyntaxError, ValueError):
        return evaluate(prog, text, variables).type_.unaliased()


def format_value(obj: drgn.Object) -> str:
    """A value as gdb's `print` shows it: structs member by member, pointers as an address with
    its symbol, without following them (`print *p` does that)."""
    return obj.format_(dereference=False, symbolize=True)
