"""The probe argument language (kernel/trace/trace_probe.c): each `[NAME=]FETCHARG[:TYPE]` becomes
a fetch program, a short list of fetch_insn that the guest interprets at every hit (as Linux's
process_fetch_insn does), and a field of the event record. Every refusal is logged to error_log
with Linux's message and the caret where Linux puts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from errno import E2BIG, EINVAL
from typing import TYPE_CHECKING

from ...abi import FETCH_INSN_MAX, PARAM_MAX_STACK, PT_REGS_OFFSET
from ...errors import KlpemuError
from ..kstrtox import kstrtoll, kstrtoull, simple_strtoul

if TYPE_CHECKING:
    from .error_log import ErrorLog

MAX_EVENT_NAME_LEN = 64
MAX_ARG_NAME_LEN = 32
MAX_ARGSTR_LEN = 63
MAX_ARRAY_LEN = 64
MAX_TRACE_ARGS = 128

# trace_probe.h's ERRORS, in its order; the messages are Linux's, typos included.
ERRORS = {
    "FILE_NOT_FOUND": "Failed to find the given file",
    "NO_REGULAR_FILE": "Not a regular file",
    "BAD_REFCNT": "Invalid reference counter offset",
    "REFCNT_OPEN_BRACE": "Reference counter brace is not closed",
    "BAD_REFCNT_SUFFIX": "Reference counter has wrong suffix",
    "BAD_UPROBE_OFFS": "Invalid uprobe offset",
    "BAD_MAXACT_TYPE": "Maxactive is only for function exit",
    "BAD_MAXACT": "Invalid maxactive number",
    "MAXACT_TOO_BIG": "Maxactive is too big",
    "BAD_PROBE_ADDR": "Invalid probed address or symbol",
    "NON_UNIQ_SYMBOL": "The symbol is not unique",
    "BAD_RETPROBE": "Retprobe address must be an function entry",
    "NO_TRACEPOINT": "Tracepoint is not found",
    "BAD_TP_NAME": "Invalid character in tracepoint name",
    "BAD_ADDR_SUFFIX": "Invalid probed address suffix",
    "NO_GROUP_NAME": "Group name is not specified",
    "GROUP_TOO_LONG": "Group name is too long",
    "BAD_GROUP_NAME": "Group name must follow the same rules as C identifiers",
    "NO_EVENT_NAME": "Event name is not specified",
    "EVENT_TOO_LONG": "Event name is too long",
    "BAD_EVENT_NAME": "Event name must follow the same rules as C identifiers",
    "EVENT_EXIST": "Given group/event name is already used by another event",
    "RETVAL_ON_PROBE": "$retval is not available on probe",
    "NO_RETVAL": "This function returns 'void' type",
    "BAD_STACK_NUM": "Invalid stack number",
    "BAD_ARG_NUM": "Invalid argument number",
    "BAD_VAR": "Invalid $-valiable specified",
    "BAD_REG_NAME": "Invalid register name",
    "BAD_MEM_ADDR": "Invalid memory address",
    "BAD_IMM": "Invalid immediate value",
    "IMMSTR_NO_CLOSE": "String is not closed with '\"'",
    "FILE_ON_KPROBE": "File offset is not available with kprobe",
    "BAD_FILE_OFFS": "Invalid file offset value",
    "SYM_ON_UPROBE": "Symbol is not available with uprobe",
    "TOO_MANY_OPS": "Dereference is too much nested",
    "DEREF_NEED_BRACE": "Dereference needs a brace",
    "BAD_DEREF_OFFS": "Invalid dereference offset",
    "DEREF_OPEN_BRACE": "Dereference brace is not closed",
    "COMM_CANT_DEREF": "$comm can not be dereferenced",
    "BAD_FETCH_ARG": "Invalid fetch argument",
    "ARRAY_NO_CLOSE": "Array is not closed",
    "BAD_ARRAY_SUFFIX": "Array has wrong suffix",
    "BAD_ARRAY_NUM": "Invalid array size",
    "ARRAY_TOO_BIG": "Array number is too big",
    "BAD_TYPE": "Unknown type is specified",
    "BAD_STRING": "String accepts only memory argument",
    "BAD_SYMSTRING": "Symbol String doesn't accept data/userdata",
    "BAD_BITFIELD": "Invalid bitfield",
    "ARG_NAME_TOO_LONG": "Argument name is too long",
    "NO_ARG_NAME": "Argument name is not specified",
    "BAD_ARG_NAME": "Argument name must follow the same rules as C identifiers",
    "USED_ARG_NAME": "This argument name is already used",
    "ARG_TOO_LONG": "Argument expression is too long",
    "NO_ARG_BODY": "No argument expression",
    "BAD_INSN_BNDRY": "Probe point is not an instruction boundary",
    "FAIL_REG_PROBE": "Failed to register probe event",
    "DIFF_PROBE_TYPE": "Probe type is different from existing probe",
    "DIFF_ARG_TYPE": "Argument type or name is different from existing probe",
    "SAME_PROBE": "There is already the exact same probe event",
    "NO_EVENT_INFO": "This requires both group and event name to attach",
    "BAD_ATTACH_EVENT": "Attached event does not exist",
    "BAD_ATTACH_ARG": "Attached event does not have this field",
    "NO_EP_FILTER": "No filter rule after 'if'",
    "NOSUP_BTFARG": "BTF is not available or not supported",
    "NO_BTFARG": "This variable is not found at this probe point",
    "NO_BTF_ENTRY": "No BTF entry for this probe point",
    "BAD_VAR_ARGS": "$arg* must be an independent parameter without name etc.",
    "NOFENTRY_ARGS": "$arg* can be used only on function entry or exit",
    "DOUBLE_ARGS": "$arg* can be used only once in the parameters",
    "ARGS_2LONG": "$arg* failed because the argument list is too long",
    "ARGIDX_2BIG": "$argN index is too big",
    "NO_PTR_STRCT": "This is not a pointer to union/structure.",
    "NOSUP_DAT_ARG": "Non pointer structure/union argument is not supported.",
    "BAD_HYPHEN": "Failed to parse single hyphen. Forgot '>'?",
    "NO_BTF_FIELD": "This field is not found.",
    "BAD_BTF_TID": "Failed to get BTF type info.",
    "BAD_TYPE4STR": "This type does not fit for string.",
    "NEED_STRING_TYPE": "$comm and immediate-string only accepts string type",
    "TOO_MANY_ARGS": "Too many arguments are specified",
    "TOO_MANY_EARGS": "Too many entry arguments specified",
}

# traceprobe_parse_context.flags
TPARG_FL_RETURN = 1
TPARG_FL_KERNEL = 2
TPARG_FL_FENTRY = 4

# regs_query_register_offset: x86_64's register names, each its struct pt_regs slot (8-byte words)
PT_REGS = {name: offset // 8 for name, offset in PT_REGS_OFFSET.items()}
REG_ALIASES = {
    "rax": "ax", "rbx": "bx", "rcx": "cx", "rdx": "dx", "rsi": "si", "rdi": "di", "rbp": "bp",
    "rsp": "sp", "rip": "ip", "eflags": "flags",
}  # fmt: skip


@dataclass(frozen=True)
class FetchType:
    name: str
    size: int
    signed: bool
    fmt: str  # the print format of one value
    fmttype: str  # the field's C type in `format`
    is_string: bool = False


def _basic(name: str, size: int, signed: bool, fmt: str, fmttype: str = "") -> FetchType:
    """A number; an alias (x*, char, symbol) names the type it stores as in `format`."""
    return FetchType(name, size, signed, fmt, fmttype or name)


FETCH_TYPES = {
    t.name: t
    for t in (
        FetchType("string", 4, True, '\\"%s\\"', "__data_loc char[]", True),
        FetchType("ustring", 4, True, '\\"%s\\"', "__data_loc char[]", True),
        FetchType("symstr", 4, True, '\\"%s\\"', "__data_loc char[]", True),
        _basic("u8", 1, False, "%u"),
        _basic("u16", 2, False, "%u"),
        _basic("u32", 4, False, "%u"),
        _basic("u64", 8, False, "%Lu"),
        _basic("s8", 1, True, "%d"),
        _basic("s16", 2, True, "%d"),
        _basic("s32", 4, True, "%d"),
        _basic("s64", 8, True, "%Ld"),
        _basic("x8", 1, False, "0x%x", "u8"),
        _basic("x16", 2, False, "0x%x", "u16"),
        _basic("x32", 4, False, "0x%x", "u32"),
        _basic("x64", 8, False, "0x%Lx", "u64"),
        _basic("char", 1, False, "'%c'", "u8"),
        _basic("symbol", 8, False, "%pS", "u64"),
    )
}
DEFAULT_FETCH_TYPE = "x64"


def find_fetch_type(name: str | None) -> FetchType | None:
    if name is None:
        name = DEFAULT_FETCH_TYPE
    if name.startswith("b"):  # a bitfield: its container's unsigned type
        slash = name.find("/")
        if slash < 0:
            return None
        bits = kstrtoull(name[slash + 1 :], 0)
        return {8: FETCH_TYPES["u8"], 16: FETCH_TYPES["u16"], 32: FETCH_TYPES["u32"], 64: FETCH_TYPES["u64"]}.get(
            bits or 0
        )
    return FETCH_TYPES.get(name)


@dataclass
class FetchInsn:
    """One step of a fetch program (struct fetch_insn): op and the operand it uses."""

    op: str = "NOP"
    param: int = 0
    offset: int = 0
    immediate: int = 0
    size: int = 0
    data: str = ""  # FETCH_OP_DATA's string, FETCH_NOP_SYMBOL's symbol
    basesize: int = 0
    lshift: int = 0
    rshift: int = 0


@dataclass
class ProbeArg:
    name: str
    comm: str  # the fetch argument as written: listed back after `NAME=`
    type: FetchType
    code: list[FetchInsn]
    offset: int = 0  # in the record, after the probe's own fields
    count: int = 0  # array length, 0 for a scalar
    fmt: str = ""  # the field type of an array: "u8[10]"

    @property
    def field_type(self) -> str:
        return self.fmt or self.type.fmttype

    @property
    def field_size(self) -> int:
        return self.type.size * (self.count or 1)


class ProbeParseError(KlpemuError):
    """A refused probe command, already logged to error_log."""


@dataclass
class ProbeLog:
    """trace_probe_log: the command being parsed, as argv, and which word errors point into."""

    error_log: ErrorLog
    subsystem: str
    argv: list[str]
    index: int = 0

    def err(self, offset: int, err: str, errno: int = EINVAL) -> ProbeParseError:
        """Log the error with its caret at `offset` in word `index` (past the end when the index
        is beyond the last word), and return the exception to raise."""
        pos = 0
        length = 0
        for i, word in enumerate(self.argv):
            if i == self.index:
                pos = length
            length += len(word) + 1
        if self.index >= len(self.argv):
            pos, offset = length, 0
        self.error_log.log(self.subsystem, " ".join(self.argv), ERRORS[err], pos + offset)
        return ProbeParseError(ERRORS[err], errno)


def is_good_name(name: str) -> bool:
    """A C identifier (is_good_name; is_good_system_name is the same test)."""
    if not name or not (name[0].isascii() and (name[0].isalpha() or name[0] == "_")):
        return False
    return all(c.isascii() and (c.isalnum() or c == "_") for c in name[1:])


def parse_event_name(text: str, offset: int, log: ProbeLog) -> tuple[str | None, str | None]:
    """traceprobe_parse_event_name: `[GROUP/]EVENT` or `GROUP.EVENT` -> (group, event); an event
    of None means `GROUP/` alone, which takes the default event name."""
    slash = text.find("/")
    if slash < 0:
        slash = text.find(".")
    group = None
    event = text
    if slash >= 0:
        if slash == 0:
            raise log.err(offset, "NO_GROUP_NAME")
        if slash + 1 > MAX_EVENT_NAME_LEN:
            raise log.err(offset, "GROUP_TOO_LONG")
        group = text[:slash]
        if not is_good_name(group):
            raise log.err(offset, "BAD_GROUP_NAME")
        event = text[slash + 1 :]
        offset += slash + 1
    if not event:
        if slash >= 0:
            return group, None
        raise log.err(offset, "NO_EVENT_NAME")
    if len(event) >= MAX_EVENT_NAME_LEN:
        raise log.err(offset, "EVENT_TOO_LONG")
    if not is_good_name(event):
        raise log.err(offset, "BAD_EVENT_NAME")
    return group, event


def split_symbol_offset(symbol: str) -> tuple[str, int] | None:
    """traceprobe_split_symbol_offset: `SYM+OFFS` / `SYM-OFFS`, or None when the offset is junk."""
    cut = min((i for i in (symbol.find("+"), symbol.find("-")) if i >= 0), default=-1)
    if cut < 0:
        return symbol, 0
    offset = kstrtoll(symbol[cut:], 0)
    if offset is None:
        return None
    return symbol[:cut], offset


@dataclass
class ParseContext:
    """traceprobe_parse_context: what kind of probe the arguments are for, and where the
    caret goes in the argument being parsed."""

    flags: int
    log: ProbeLog
    offset: int = 0
    funcname: str | None = None
    entry_args: list[int] = field(default_factory=list)  # a return probe's $argN, saved at entry

    def store_entry_arg(self, param: int) -> int:
        """__store_entry_arg: where in the instance's entry data argument param is kept."""
        if param not in self.entry_args:
            self.entry_args.append(param)
        return self.entry_args.index(param) * 8

    @property
    def function_entry(self) -> bool:
        return self.flags & (TPARG_FL_KERNEL | TPARG_FL_FENTRY) == TPARG_FL_KERNEL | TPARG_FL_FENTRY

    @property
    def function_return(self) -> bool:
        return self.flags & (TPARG_FL_KERNEL | TPARG_FL_RETURN) == TPARG_FL_KERNEL | TPARG_FL_RETURN


class _Code:
    """The fetch program under construction: FETCH_INSN_MAX slots, the last one END."""

    def __init__(self) -> None:
        self.insns = [FetchInsn() for _ in range(FETCH_INSN_MAX)]
        self.insns[-1].op = "END"
        self.pc = 0

    @property
    def cur(self) -> FetchInsn:
        return self.insns[self.pc]

    def advance(self, ctx: ParseContext) -> FetchInsn:
        """++code, refusing to run into the END slot."""
        self.pc += 1
        if self.pc == FETCH_INSN_MAX - 1:
            raise ctx.log.err(ctx.offset, "TOO_MANY_OPS")
        return self.cur


def _parse_vars(arg: str, code: _Code, ctx: ParseContext) -> None:
    """parse_probe_vars: `$retval`, `$stack`, `$stackN`, `$comm`, `$argN` (arg has the `$`)."""
    name = arg[1:]
    insn = code.cur
    err = "BAD_VAR"
    if name.startswith("retval"):
        if not ctx.flags & TPARG_FL_RETURN:
            raise ctx.log.err(ctx.offset, "RETVAL_ON_PROBE")
        insn.op = "RETVAL"
        return
    if name.startswith("stack"):
        rest = name[5:]
        if rest == "":
            insn.op = "STACKP"
            return
        if rest[0].isdigit():
            n = kstrtoull(rest, 10)
            if n is not None and n > PARAM_MAX_STACK:
                err = "BAD_STACK_NUM"
            elif n is not None:
                insn.op, insn.param = "STACK", n
                return
        raise ctx.log.err(ctx.offset, err)
    if name in ("comm", "COMM"):
        insn.op = "COMM"
        return
    if name.startswith("arg"):
        n = kstrtoull(name[3:], 10)
        if n is not None:
            if not n or n > PARAM_MAX_STACK:
                err = "BAD_ARG_NUM"
            elif ctx.function_entry:
                insn.op, insn.param = "ARG", n - 1
                return
            elif ctx.function_return:
                # Saved at the function's entry by the kretprobe's entry handler (6.9+).
                insn.op, insn.offset = "EDATA", ctx.store_entry_arg(n - 1)
                return
            else:
                err = "NOFENTRY_ARGS"
    raise ctx.log.err(ctx.offset, err)


def _str_to_immediate(text: str) -> int | None:
    if text[:1].isdigit():
        return kstrtoull(text, 0)
    if text[:1] == "-":
        v = kstrtoll(text, 0)
        return v & (2**64 - 1) if v is not None else None
    if text[:1] == "+":
        v = kstrtoll(text[1:], 0)
        return v & (2**64 - 1) if v is not None else None
    return None


def _parse_probe_arg(arg: str, code: _Code, ctx: ParseContext) -> None:
    """parse_probe_arg, recursive over dereferences."""
    insn = code.cur
    head = arg[:1]
    if head == "$":
        _parse_vars(arg, code, ctx)
    elif head == "%":
        reg = REG_ALIASES.get(arg[1:], arg[1:])
        if reg not in PT_REGS:
            raise ctx.log.err(ctx.offset, "BAD_REG_NAME")
        insn.op, insn.param = "REG", PT_REGS[reg]
    elif head == "@":
        offset = 0
        if arg[1:2].isdigit():
            addr = kstrtoull(arg[1:], 0)
            if addr is None:
                raise ctx.log.err(ctx.offset, "BAD_MEM_ADDR")
            insn.op, insn.immediate = "IMM", addr
        elif arg[1:2] == "+":
            raise ctx.log.err(ctx.offset, "FILE_ON_KPROBE")
        else:
            insn.op, insn.data = "NOP_SYMBOL", arg[1:]  # resolved when the probe is armed
            code.advance(ctx).op = "IMM"
        deref = code.advance(ctx)
        deref.op, deref.offset = "DEREF", offset
    elif head in ("+", "-"):
        op = "DEREF"
        body = arg
        if body[1:2] == "u":
            op = "UDEREF"
            body = body[0] + body[2:]
        if body[0] == "+":
            body = body[1:]
        brace = body.find("(")
        if brace < 0:
            raise ctx.log.err(ctx.offset, "DEREF_NEED_BRACE")
        deref_offset = kstrtoll(body[:brace], 0)
        if deref_offset is None:
            raise ctx.log.err(ctx.offset, "BAD_DEREF_OFFS")
        ctx.offset += brace + 1 + (1 if body[:1] != "-" else 0)
        inner = body[brace + 1 :]
        close = inner.rfind(")")
        if close < 0:
            raise ctx.log.err(ctx.offset + len(inner), "DEREF_OPEN_BRACE")
        here = ctx.offset
        _parse_probe_arg(inner[:close], code, ctx)
        ctx.offset = here
        if code.cur.op in ("COMM", "DATA"):
            raise ctx.log.err(ctx.offset, "COMM_CANT_DEREF")
        deref = code.advance(ctx)
        deref.op, deref.offset = op, deref_offset
    elif head == "\\":
        if arg[1:2] == '"':
            text = arg[2:]
            if not text.endswith('"'):
                raise ctx.log.err(ctx.offset + 2 + len(text), "IMMSTR_NO_CLOSE")
            insn.op, insn.data = "DATA", text[:-1]
        else:
            value = _str_to_immediate(arg[1:])
            if value is None:
                raise ctx.log.err(ctx.offset + 1, "BAD_IMM")
            insn.op, insn.immediate = "IMM", value
    elif head.isascii() and (head.isalpha() or head == "_"):
        # A BTF variable: this kernel has no BTF.
        raise ctx.log.err(ctx.offset, "NOSUP_BTFARG")
    if code.cur.op == "NOP":
        raise ctx.log.err(ctx.offset, "BAD_FETCH_ARG")


def _parse_arg_type(arg: str, ctx: ParseContext) -> tuple[str, str | None, int, int, FetchType]:
    """parse_probe_arg_type: split `BODY:TYPE[N]` -> (body, type text, where the type starts,
    array count, fetch type)."""
    count = 0
    colon = arg.find(":")
    type_text = None
    body = arg
    if colon >= 0:
        body, type_text = arg[:colon], arg[colon + 1 :]
        bracket = type_text.find("[")
        if bracket >= 0:
            num_start = colon + 1 + bracket + 1
            num = type_text[bracket + 1 :]
            close = num.find("]")
            if close < 0:
                raise ctx.log.err(ctx.offset + num_start + len(num), "ARRAY_NO_CLOSE")
            if num[close + 1 :]:
                raise ctx.log.err(ctx.offset + num_start + close + 1, "BAD_ARRAY_SUFFIX")
            value = kstrtoull(num[:close], 0, 32)
            if not value:
                raise ctx.log.err(ctx.offset + num_start, "BAD_ARRAY_NUM")
            if value > MAX_ARRAY_LEN:
                raise ctx.log.err(ctx.offset + num_start, "ARRAY_TOO_BIG")
            count = value
            type_text = type_text[:bracket]
    type_offs = colon + 1 if colon >= 0 else 0
    if body in ("$comm", "$COMM") or body.startswith('\\"'):
        if count or (type_text is not None and type_text != "string"):
            raise ctx.log.err(ctx.offset + type_offs, "NEED_STRING_TYPE")
        ftype = find_fetch_type("string")
    else:
        ftype = find_fetch_type(type_text)
    if ftype is None:
        raise ctx.log.err(ctx.offset + type_offs, "BAD_TYPE")
    return body, type_text, type_offs, count, ftype


def _parse_bitfield(bf: str, ftype: FetchType, code: _Code) -> bool:
    """__parse_bitfield_probe_arg: `b<width>@<offset>/<container>` -> a MOD_BF step."""
    width, tail = simple_strtoul(bf[1:], 0)
    tail += 1
    if width == 0 or bf[tail : tail + 1] != "@":
        return False
    start = tail + 1
    bit_offset, tail = simple_strtoul(bf[start:], 0)
    tail += start
    if tail == start or bf[tail : tail + 1] != "/":
        return False
    code.pc += 1
    insn = code.cur
    if insn.op != "NOP":
        return False
    bits = ftype.size * 8
    insn.op, insn.basesize = "MOD_BF", ftype.size
    insn.lshift, insn.rshift = bits - (width + bit_offset), bits - width
    return bits >= width + bit_offset


def _finalize(code: _Code, ftype: FetchType, type_text: str | None, type_offs: int, count: int, ctx: ParseContext):
    """finalize_fetch_insn: the store step for the type, then bitfield and array steps, END."""
    op = code.cur.op
    if ftype.is_string:
        if ftype.name == "symstr":
            if op not in ("REG", "STACK", "RETVAL", "ARG", "EDATA", "DEREF"):
                raise ctx.log.err(ctx.offset + type_offs, "BAD_SYMSTRING")
        elif op not in ("DEREF", "UDEREF", "IMM", "COMM", "DATA"):
            raise ctx.log.err(ctx.offset + type_offs, "BAD_STRING")
        if ftype.name == "symstr" or op in ("IMM", "COMM", "DATA") or count:
            code.pc += 1
            if code.cur.op != "NOP":
                raise ctx.log.err(ctx.offset, "TOO_MANY_OPS")
        if ftype.name == "ustring" or code.cur.op == "UDEREF":
            code.cur.op = "ST_USTRING"
        elif ftype.name == "symstr":
            code.cur.op = "ST_SYMSTR"
        else:
            code.cur.op = "ST_STRING"
        code.cur.size = ftype.size
    elif op == "DEREF":
        code.cur.op, code.cur.size = "ST_MEM", ftype.size
    elif op == "UDEREF":
        code.cur.op, code.cur.size = "ST_UMEM", ftype.size
    else:
        code.pc += 1
        if code.cur.op != "NOP":
            raise ctx.log.err(ctx.offset, "TOO_MANY_OPS", E2BIG)
        code.cur.op, code.cur.size = "ST_RAW", ftype.size
    store = code.cur
    if type_text is not None and type_text.startswith("b"):
        if not _parse_bitfield(type_text, ftype, code):
            raise ctx.log.err(ctx.offset + type_offs, "BAD_BITFIELD")
    if count:
        if store.op not in ("ST_MEM", "ST_STRING", "ST_USTRING"):
            raise ctx.log.err(ctx.offset + type_offs, "BAD_STRING")
        code.pc += 1
        if code.cur.op != "NOP":
            raise ctx.log.err(ctx.offset, "TOO_MANY_OPS", E2BIG)
        code.cur.op, code.cur.param = "LP_ARRAY", count
    code.pc += 1
    code.cur.op = "END"
    return code.insns[: code.pc + 1]


RESERVED_FIELD_NAMES = (
    "common_type",
    "common_flags",
    "common_preempt_count",
    "common_pid",
    "common_tgid",
    "__probe_ip",
    "__probe_ret_ip",
    "__probe_func",
)


def parse_probe_arg(i: int, arg: str, args: list[ProbeArg], ctx: ParseContext) -> ProbeArg:
    """traceprobe_parse_probe_arg: `[NAME=]FETCHARG[:TYPE]`, the i-th argument of the probe."""
    log = ctx.log
    eq = arg.find("=")
    if eq >= 0:
        if eq > MAX_ARG_NAME_LEN:
            raise log.err(0, "ARG_NAME_TOO_LONG")
        if eq == 0:
            raise log.err(0, "NO_ARG_NAME")
        name, body = arg[:eq], arg[eq + 1 :]
    else:
        name, body = f"arg{i + 1}", arg
    if not is_good_name(name):
        raise log.err(0, "BAD_ARG_NAME")
    if name in RESERVED_FIELD_NAMES or any(a.name == name for a in args):
        raise log.err(0, "USED_ARG_NAME")
    ctx.offset = eq + 1
    if len(body) > MAX_ARGSTR_LEN:
        raise log.err(ctx.offset, "ARG_TOO_LONG", E2BIG)
    if not body:
        raise log.err(ctx.offset, "NO_ARG_BODY")
    expr, type_text, type_offs, count, ftype = _parse_arg_type(body, ctx)
    code = _Code()
    _parse_probe_arg(expr, code, ctx)
    fmt = f"{ftype.fmttype}[{count}]" if count else ""
    insns = _finalize(code, ftype, type_text, type_offs, count, ctx)
    return ProbeArg(name, body, ftype, insns, count=count, fmt=fmt)


def check_meta_args(argv: list[str], ctx: ParseContext) -> None:
    """traceprobe_expand_meta_args without BTF: `$argN` needs a function entry, `$arg*` (all the
    parameters by name) needs BTF, which this kernel does not have."""
    seen_star = False
    for i, arg in enumerate(argv):
        if not arg.startswith("$arg"):
            continue
        ctx.log.index = i + 2
        if not ctx.function_entry and not ctx.function_return:
            raise ctx.log.err(0, "NOFENTRY_ARGS")
        if arg[4:5].isdigit():
            continue
        if arg[4:5] != "*":
            raise ctx.log.err(0, "BAD_VAR")
        if seen_star:
            raise ctx.log.err(0, "DOUBLE_ARGS")
        seen_star = True
    if seen_star:
        raise ctx.log.err(0, "NOSUP_BTFARG")


def print_fmt(args: list[ProbeArg], is_return: bool) -> str:
    """__set_print_fmt: the event's `print fmt:` line."""
    head = '"(%lx <- %lx)' if is_return else '"(%lx)'
    refs = ", REC->__probe_func, REC->__probe_ret_ip" if is_return else ", REC->__probe_ip"
    out = [head]
    for a in args:
        if a.count:
            out.append(f" {a.name}={{" + ",".join([a.type.fmt] * a.count) + "}")
        else:
            out.append(f" {a.name}={a.type.fmt}")
    out.append('"' + refs)
    for a in args:
        ref = "__get_str({})" if a.type.is_string else "REC->{}"
        if a.count:
            out.extend(", " + ref.format(f"{a.name}[{j}]") for j in range(a.count))
        else:
            out.append(", " + ref.format(a.name))
    return "".join(out)


@dataclass
class ProbeArgs:
    """The parsed argument list of one probe, with each field's place in the record."""

    args: list[ProbeArg] = field(default_factory=list)
    size: int = 0
