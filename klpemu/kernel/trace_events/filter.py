"""The event filter language (kernel/trace/trace_events_filter.c): `field op value` predicates
joined by `&&`, `||`, `!` and parentheses, parsed against an event's fields into a postfix
program of predicates that the guest runs on each record before committing it. A parse error
is logged to error_log and shown in the `filter` file under the text, as Linux shows it."""

from __future__ import annotations

from dataclasses import dataclass
from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ..kstrtox import kstrtoll, kstrtoull

if TYPE_CHECKING:
    from .event import EventCall, Field

FILTER_ERRORS = {
    "INVALID_OP": "Invalid operator",
    "TOO_MANY_OPEN": "Too many '('",
    "TOO_MANY_CLOSE": "Too few '('",
    "MISSING_QUOTE": "Missing matching quote",
    "OPERAND_TOO_LONG": "Operand too long",
    "EXPECT_STRING": "Expecting string field",
    "EXPECT_DIGIT": "Expecting numeric field",
    "ILLEGAL_FIELD_OP": "Illegal operation for field type",
    "FIELD_NOT_FOUND": "Field not found",
    "ILLEGAL_INTVAL": "Illegal integer value",
    "BAD_SUBSYS_FILTER": "Couldn't find or set field in one of a subsystem's events",
    "TOO_MANY_PREDS": "Too many terms in predicate expression",
    "INVALID_FILTER": "Meaningless filter expression",
    "INVALID_VALUE": "Invalid value (did you forget quotes)?",
}
OPS = ("==", "!=", "<=", "<", ">=", ">", "&", "~")  # '<=' before '<', as Linux tries them
MAX_FILTER_STR_VAL = 256
MAX_PREDS = 16  # the guest's evaluation stack holds this many results and then some


class FilterParseError(KlpemuError):
    def __init__(self, err: str, pos: int):
        super().__init__(FILTER_ERRORS[err], EINVAL)
        self.err = err
        self.pos = pos


@dataclass
class Pred:
    """One predicate: the field (or CPU / COMM), how it compares, and with what."""

    fn: str  # S64, U64, STRING, STRLOC, COMM, CPU (enum filter_pred_fn)
    cmp: str  # EQ, NE, LT, LE, GT, GE, BAND, GLOB (enum filter_cmp)
    not_: bool
    offset: int
    size: int
    val: int = 0
    pattern: str = ""


@dataclass
class Step:
    op: str  # PRED, AND, OR, NOT (enum filter_op_ids)
    pred: Pred | None = None


def _glob_literal(text: str) -> str:
    """A string for == / != matched by the guest's glob: its metacharacters escaped."""
    return "".join("\\" + c if c in "*?[\\" else c for c in text)


def _field_kind(f: Field) -> str:
    if f.type.startswith("__data_loc"):
        return "STRLOC"
    if f.type.startswith("char[") or f.type == "char":
        return "STRING"
    return "S64" if f.signed else "U64"


class _Parser:
    def __init__(self, text: str, call: EventCall):
        self.s = text
        self.i = 0
        self.call = call
        self.out: list[Step] = []
        self.npreds = 0

    def skip(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self, token: str) -> bool:
        self.skip()
        return self.s.startswith(token, self.i)

    def parse(self) -> list[Step]:
        self.skip()
        if self.i >= len(self.s):
            raise FilterParseError("INVALID_FILTER", 0)
        self.expr_or()
        self.skip()
        if self.i < len(self.s):
            if self.s[self.i] == ")":
                raise FilterParseError("TOO_MANY_CLOSE", self.i)
            raise FilterParseError("INVALID_FILTER", self.i)
        return self.out

    def expr_or(self) -> None:
        self.expr_and()
        while self.peek("||"):
            self.i += 2
            self.expr_and()
            self.out.append(Step("OR"))

    def expr_and(self) -> None:
        self.term()
        while self.peek("&&"):
            self.i += 2
            self.term()
            self.out.append(Step("AND"))

    def term(self) -> None:
        self.skip()
        if self.i >= len(self.s):
            raise FilterParseError("INVALID_FILTER", self.i)
        c = self.s[self.i]
        if c == "!" and not self.s.startswith("!=", self.i):
            self.i += 1
            self.term()
            self.out.append(Step("NOT"))
            return
        if c == "(":
            open_at = self.i
            self.i += 1
            self.expr_or()
            self.skip()
            if self.i >= len(self.s) or self.s[self.i] != ")":
                raise FilterParseError("TOO_MANY_OPEN", open_at)
            self.i += 1
            return
        if c == ")":
            raise FilterParseError("TOO_MANY_CLOSE", self.i)
        self.out.append(Step("PRED", self.pred()))
        self.npreds += 1
        if self.npreds > MAX_PREDS:
            raise FilterParseError("TOO_MANY_PREDS", self.i)

    def pred(self) -> Pred:
        s = self.s
        start = self.i
        while self.i < len(s) and (s[self.i].isalnum() or s[self.i] == "_"):
            self.i += 1
        name = s[start : self.i]
        if not name:
            raise FilterParseError("INVALID_FILTER", self.i)
        f = self.call.field_names.get(name)
        if f is not None:
            kind, offset, size = _field_kind(f), f.offset, f.size
        elif name in ("CPU", "cpu"):
            kind, offset, size = "CPU", 0, 4
        elif name in ("COMM", "comm"):
            kind, offset, size = "COMM", 0, 16
        else:
            raise FilterParseError("FIELD_NOT_FOUND", self.i)
        self.skip()
        op = next((o for o in OPS if s.startswith(o, self.i)), None)
        if op is None:
            raise FilterParseError("INVALID_OP", self.i)
        self.i += len(op)
        self.skip()
        is_string = kind in ("STRING", "STRLOC", "COMM")
        if self.i < len(s) and s[self.i] in "\"'":
            if op not in ("==", "!=", "~"):
                raise FilterParseError("ILLEGAL_FIELD_OP", self.i)
            if not is_string:
                raise FilterParseError("EXPECT_DIGIT", self.i)
            quote, begin = s[self.i], self.i
            self.i += 1
            chars = []
            while self.i < len(s) and s[self.i] != quote:
                if s[self.i] == "\\" and self.i + 1 < len(s):
                    self.i += 1
                chars.append(s[self.i])
                self.i += 1
            if self.i >= len(s):
                raise FilterParseError("MISSING_QUOTE", begin)
            self.i += 1
            return self._string_pred(kind, op, offset, size, "".join(chars))
        if is_string:
            if op not in ("==", "!=", "~"):
                raise FilterParseError("ILLEGAL_FIELD_OP", self.i)
            begin = self.i
            while self.i < len(s) and not s[self.i].isspace() and s[self.i] not in ")&|":
                self.i += 1
            if self.i == begin:
                raise FilterParseError("INVALID_VALUE", self.i)
            return self._string_pred(kind, op, offset, size, s[begin : self.i])
        if self.i < len(s) and (s[self.i].isdigit() or s[self.i] == "-"):
            if op == "~":
                raise FilterParseError("ILLEGAL_FIELD_OP", self.i)
            begin = self.i
            self.i += 1
            while self.i < len(s) and s[self.i].isalnum():
                self.i += 1
            text = s[begin : self.i]
            if len(text) >= 24:
                raise FilterParseError("OPERAND_TOO_LONG", self.i)
            val = kstrtoll(text, 0) if kind in ("S64", "CPU") else kstrtoull(text, 0)
            if val is None:
                raise FilterParseError("ILLEGAL_INTVAL", begin)
            cmp = {"==": "EQ", "!=": "NE", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE", "&": "BAND"}[op]
            return Pred(kind, cmp, False, offset, size, val)
        raise FilterParseError("INVALID_VALUE", self.i)

    @staticmethod
    def _string_pred(kind: str, op: str, offset: int, size: int, value: str) -> Pred:
        if len(value) >= MAX_FILTER_STR_VAL:
            raise FilterParseError("OPERAND_TOO_LONG", 0)
        pattern = value if op == "~" else _glob_literal(value)
        return Pred(kind, "GLOB", op == "!=", offset, size, pattern=pattern)


def parse_filter(text: str, call: EventCall) -> list[Step]:
    """The postfix program of a filter string; FilterParseError with Linux's message and where."""
    return _Parser(text, call).parse()


def error_text(text: str, err: FilterParseError) -> str:
    """What the `filter` file shows after a failed write (append_filter_err)."""
    pos = min(err.pos, len(text))
    if pos:
        pos += 1
    return f"{text}\n{'^':>{pos}}\nparse_error: {err}\n"
