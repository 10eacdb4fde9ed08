"""Stepping a call: one host call of a traced function, every instruction labelled by its part.

`trace_call(m, "cmdline_proc_show", seq_file=True)` runs the function once on a CPU (a host
call: the host-call stack, the CPU's kernel context, interrupts off, the other CPUs waiting)
with a code hook that records each executed instruction and the registers before it. The
recording is then labelled by the part of ftrace each instruction belongs to:

  site                        the fentry site, the traced function's first 5 bytes (a NOP5, a
                              call to a trampoline, or an int3 while text_poke rewrites it)
  int3 handler                the int3 entry and poke_int3_handler emulating the new site
  trampoline: save regs       a trampoline before its ops load (ftrace_caller_op_ptr): the
                              fake frames and the pt_regs
  trampoline: call handler    from the ops load through the call slot (ftrace_call), the
                              handler's arguments (ftrace_regs_caller finishes pt_regs here)
  trampoline: restore regs    after the call slot: regs->ip over the return slot, registers
  trampoline: return          the trampoline's ret (to site+5, or where a handler redirected)
  list function               ftrace_ops_list_func and its filter test
  assist                      ftrace_ops_assist_func (recursion protection for an ops)
  recursion                   out-of-line trace_recursion helpers (none in this kernel: inline)
  handler: NAME               the handler a call slot or the list function calls, and its callees
  python handler              ftrace_host_func: its hypercall runs the ops' Python callback
  traced function             the function's body and what it calls
  new function: NAME          where a redirect landed the call instead, and what it calls
  kprobe int3 handler         kprobe_int3_handler and its helpers (an int3 kprobe was hit)
  kprobe: out-of-line step    the probed instruction's copy, run from its slot, and its int3
  kprobe pre handler: NAME    a probe's handlers, called from kprobe_ftrace_handler or the
  kprobe post handler: NAME     int3 handler (pre_handler_kretprobe is a kretprobe's)
  kretprobe trampoline        __kretprobe_trampoline, where a kretprobe'd call returns, and
                              kretprobe_trampoline_handler finding the real return address
  kretprobe handler: NAME     a kretprobe's handler, called from the trampoline's handler
  graph return                return_to_handler, where a call function_graph hooked returns,
                              and ftrace_return_to_handler popping the task's ret_stack
                              (its TRACE_GRAPH_RET record, the real return address)
  return                      the final ret, back to the caller (the host)

Private trampolines are copies: an address in one maps back to the template it was copied from
through the ops' `trampoline` field, so its phases come from the template's labels too.
Labels follow calls: a callee gets its caller's label unless it is one of the parts above, and a
function called from a trampoline, the list function or the assist is a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from errno import EAGAIN, EINVAL, EIO
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

from unicorn import UC_HOOK_CODE

from .disasm import insn_at
from .errors import KlpemuError
from .machine.cpu import GPRS
from .machine.machine import GuestStopped

if TYPE_CHECKING:
    from capstone import Cs

    from .machine.machine import Machine

SEQ_BUF_SIZE = 4096
DEFAULT_MAX_INSNS = 1_000_000

_REG_NAMES = [name for name, _ in GPRS]
_REG_IDS = [rid for _, rid in GPRS]
_RSP = _REG_NAMES.index("rsp")
_RIP = _REG_NAMES.index("rip")
_RDX = _REG_NAMES.index("rdx")
_RDI = _REG_NAMES.index("rdi")

LIST_FUNCS = ("ftrace_ops_list_func", "ftrace_ops_test", "ftrace_lookup_ip")
ASSIST_FUNCS = ("ftrace_ops_assist_func",)
INT3_FUNCS = ("asm_exc_int3", "do_int3", "poke_int3_handler", "int3_emulate_push")
KPROBE_INT3_FUNCS = (
    "kprobe_int3_handler",
    "setup_singlestep",
    "resume_singlestep",
    "kprobe_post_process",
    "kprobe_emulate",
    "kprobe_emulate_push",
    "kprobe_cond_test",
)
KRETPROBE_TRAMPOLINE = "__kretprobe_trampoline"
RETURN_TO_HANDLER = "return_to_handler"
HANDLER_ROLES = {
    "pre": "kprobe pre handler",
    "post": "kprobe post handler",
    "ret": "kretprobe handler",
    "entry": "kretprobe entry handler",
}
HOST_FUNC = "ftrace_host_func"
DISPATCH = ("list function", "assist")
NOP5 = bytes.fromhex("0f1f440000")


@cache
def _cs() -> Cs:
    from capstone import CS_ARCH_X86, CS_MODE_64, CS_OPT_SYNTAX_ATT, Cs

    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.syntax = CS_OPT_SYNTAX_ATT
    return cs


@dataclass
class Step:
    """One executed instruction."""

    addr: int
    raw: bytes
    text: str
    where: str  # symbol+off, or ftrace_trampoline+off [ops] for a private trampoline
    label: str = ""
    detail: str = ""  # what the header of a run of this label says
    note: str = ""
    changes: list[tuple[str, int]] = field(default_factory=list)  # registers this instruction changed


@dataclass
class TraceCall:
    func: str
    cpu: int
    args: list[int]
    steps: list[Step]
    ret: int | None
    seq_text: str | None = None
    oops: str | None = None

    def parts(self) -> list[str]:
        """The labels in execution order, consecutive repeats collapsed."""
        out: list[str] = []
        for s in self.steps:
            if not out or out[-1] != s.label:
                out.append(s.label)
        return out

    def counts(self) -> dict[str, int]:
        """Instructions per label, in order of first appearance."""
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.label] = out.get(s.label, 0) + 1
        return out

    def format(self) -> str:
        if not self.steps:
            return "no instruction executed\n"
        lw = max(len(s.label) for s in self.steps) + 2
        ww = max(len(s.where) for s in self.steps)
        lines: list[str] = []
        prev = None
        for s in self.steps:
            if s.label != prev:
                if prev is not None:
                    lines.append("")
                lines.append(f"== {s.label}{' -- ' + s.detail if s.detail else ''}")
                prev = s.label
            regs = " ".join(f"{k}={v:#x}" for k, v in s.changes)
            note = f"  ; {s.note}" if s.note else ""
            lines.append(
                f"{'[' + s.label + ']':<{lw}} {s.addr:016x} {s.where:<{ww}}  {s.text:<44} {regs}{note}".rstrip()
            )
        lines.append("")
        lines.append("instructions per part:")
        counts = self.counts()
        cw = max(len(k) for k in counts)
        for k, n in counts.items():
            lines.append(f"  {k:<{cw}} {n:>6}")
        lines.append(f"  {'total':<{cw}} {len(self.steps):>6}")
        if self.ret is not None:
            signed = self.ret - (1 << 64) if self.ret >> 63 else self.ret
            lines.append(f"{self.func} returned {signed} ({self.ret:#x})")
        if self.oops is not None:
            lines.append(f"{self.func} did not return: the machine stopped with an oops")
        if self.seq_text is not None:
            lines.append(f"seq_file text ({len(self.seq_text)} bytes):")
            lines.append(self.seq_text.rstrip("\n"))
        return "\n".join(lines) + "\n"


class TraceCallError(KlpemuError):
    """The traced call crashed the machine; `result` holds the instructions up to the crash."""

    def __init__(self, message: str, errno: int, result: TraceCall):
        super().__init__(message, errno)
        self.result = result


# --- seq_file ----------------------------------------------------------------------------------


def make_seq_file(m: Machine, size: int = SEQ_BUF_SIZE) -> int:
    """A zeroed struct seq_file in the guest heap with a zeroed buffer of size bytes."""
    addr = m.heap.kzalloc(m.types.sizeof("seq_file"))
    sf = m.struct("seq_file", addr)
    sf.buf = m.heap.kzalloc(size)
    sf.size = size
    return addr


def seq_file_text(m: Machine, addr: int) -> str:
    sf = m.struct("seq_file", addr)
    return m.mem.read(sf.buf, min(sf.count, sf.size)).decode(errors="replace")


def free_seq_file(m: Machine, addr: int) -> None:
    m.heap.free(m.struct("seq_file", addr).buf)
    m.heap.free(addr)


# --- where an address is -------------------------------------------------------------------------


@dataclass
class _Tramp:
    start: int
    end: int
    template: str
    op_ptr: int  # offsets from start, the same in the template and its copies
    call_slot: int
    ops: str | None  # the owner of a private trampoline


class _Map:
    """What the labeller needs to know about the kernel's ftrace state, taken before the call."""

    def __init__(self, m: Machine):
        self.m = m
        ft = m.kernel.ftrace
        img = m.image
        self.int3_entry = img.addr("asm_exc_int3")
        self.tramps: list[_Tramp] = []
        templates = {}
        for start, end, op_ptr, call_slot in ft.tramps.templates.values():
            name = self.name(start)
            templates[end - start] = (name, op_ptr - start, call_slot - start)
            self.tramps.append(_Tramp(start, end, name, op_ptr - start, call_slot - start, None))
        kprobes = m.kernel.kprobes
        # The probes' handlers and out-of-line slots, so their steps can be named.
        self.handler_roles: dict[int, str] = {}
        self.slots: dict[int, int] = {}  # slot -> probed address
        for kp, probe in kprobes.probes.items():
            v = kprobes.view(kp)
            if probe.kind == "r":
                rp = m.struct("kretprobe", probe.rp)
                for role, fn in (("ret", rp.handler), ("entry", rp.entry_handler)):
                    if fn:
                        self.handler_roles.setdefault(fn, role)
            for role, fn in (("pre", v.pre_handler), ("post", v.post_handler)):
                if fn and fn not in (kprobes.aggr_pre_handler, kprobes.aggr_post_handler):
                    self.handler_roles.setdefault(fn, role)
        for p in kprobes.table():
            v = kprobes.view(p)
            if v.ainsn.insn:
                self.slots[v.ainsn.insn] = v.addr
        self.kretprobe_trampoline = img.addr(KRETPROBE_TRAMPOLINE)
        self.ops_names: dict[int, str] = {}
        for ops in ft.ops:
            self.ops_names[ops.addr] = ops.name
            view = ops.struct
            if view.trampoline and view.trampoline_size - 8 in templates:
                name, op_ptr, call_slot = templates[view.trampoline_size - 8]
                self.tramps.append(
                    _Tramp(
                        view.trampoline, view.trampoline + view.trampoline_size - 8, name, op_ptr, call_slot, ops.name
                    )
                )

    def slot_at(self, addr: int) -> int | None:
        """The probed address whose out-of-line copy (or its closing int3) is at addr."""
        for slot, probed in self.slots.items():
            if slot <= addr <= slot + 16:
                return probed
        return None

    def tramp_at(self, addr: int) -> _Tramp | None:
        for t in self.tramps:
            if t.start <= addr < t.end:
                return t
        return None

    def where(self, addr: int) -> str:
        t = self.tramp_at(addr)
        if t is not None and t.ops is not None:
            return f"ftrace_trampoline+0x{addr - t.start:x} [{t.ops}]"
        sym = self.m.image.function_at(addr)
        if sym is None:
            return f"0x{addr:x}"
        return f"{sym.name}+0x{addr - sym.addr:x}"

    def name(self, addr: int) -> str:
        sym = self.m.image.function_at(addr)
        return sym.name if sym is not None else f"0x{addr:x}"

    def ops_name(self, addr: int) -> str:
        return self.ops_names.get(addr) or (
            "ftrace_list_end" if addr == self.m.var_addr("ftrace_list_end") else f"0x{addr:x}"
        )


def _tramp_phase(t: _Tramp, addr: int, raw: bytes) -> str:
    off = addr - t.start
    if raw == b"\xc3":
        return "return"
    if off < t.op_ptr:
        return "save regs"
    if off <= t.call_slot:
        return "call handler"
    return "restore regs"


def _tramp_detail(t: _Tramp) -> str:
    if t.ops is None:
        return f"{t.template} (shared)"
    return f"private trampoline of ops '{t.ops}' at 0x{t.start:x}, a copy of {t.template}"


# --- labelling -----------------------------------------------------------------------------------


@dataclass
class _Frame:
    label: str
    detail: str
    entry_rsp: int


def _site_kind(mp: _Map, st: Step) -> str:
    if st.raw == NOP5:
        return "a NOP5: no ops traces it"
    if st.raw[:1] == b"\xcc":
        return "an int3: text_poke is rewriting it"
    if st.raw[:1] == b"\xe8" and len(st.raw) == 5:
        target = st.addr + 5 + int.from_bytes(st.raw[1:], "little", signed=True)
        t = mp.tramp_at(target)
        return f"a call to {_tramp_detail(t) if t is not None else mp.m.image.symbolize(target)}"
    return st.text


# The rules below are data: ordered (predicate, label, detail) triples over one step's
# context, so a new part of the path is a new row, not another branch in the loop.

Text = str | Callable[["_At"], str]  # a fixed text, or one made from the step's context


@dataclass
class _At:
    """What the rules see of one step: the step, the registers around it, the one before it,
    and the stack of call frames (the outermost is the traced call's)."""

    mp: _Map
    func: str
    site: int
    st: Step
    regs: tuple
    after: tuple  # the registers after the step
    prev: Step | None
    prev_regs: tuple | None
    frames: list[_Frame]

    name: str = field(init=False)  # the function the step is in
    tramp: _Tramp | None = field(init=False)
    probed: int | None = field(init=False)  # the probed address, for a step out of line

    def __post_init__(self) -> None:
        self.name = self.mp.name(self.st.addr)
        self.tramp = self.mp.tramp_at(self.st.addr)
        self.probed = self.mp.slot_at(self.st.addr) if self.tramp is None else None

    @property
    def caller(self) -> str:
        """The label of the step that made the call."""
        return self.prev.label if self.prev is not None else ""

    @property
    def top(self) -> _Frame:
        return self.frames[-1]

    @property
    def outermost(self) -> bool:
        return len(self.frames) == 1

    def ops(self, regs: tuple, reg: int = _RDX) -> str:
        return self.mp.ops_name(regs[reg])

    def symbolize(self, addr: int) -> str:
        return self.mp.m.image.symbolize(addr)


class _Rule(NamedTuple):
    when: Callable[[_At], bool]
    label: Text
    detail: Text = ""


def _text(t: Text, at: _At) -> str:
    return t(at) if callable(t) else t


def _first(rules: tuple[_Rule, ...], at: _At) -> tuple[str, str]:
    rule = next(r for r in rules if r.when(at))
    return _text(rule.label, at), _text(rule.detail, at)


def _entered(at: _At) -> bool:
    """Is this step the first of a function: a call went there (pushed a return address and
    did not fall through), or the CPU took an int3?"""
    prev, prev_regs = at.prev, at.prev_regs
    called = (
        prev is not None
        and prev.text.startswith("call")
        and prev_regs is not None
        and at.regs[_RSP] == prev_regs[_RSP] - 8
        and at.st.addr != prev.addr + len(prev.raw)
    )
    return called or (at.name == "asm_exc_int3" and at.st.addr == at.mp.int3_entry)


def _after_kprobe(at: _At) -> bool:
    """Did the int3 come from a probe's int3, or from the int3 closing an out-of-line step?"""
    prev = at.prev
    return prev is not None and bool(at.mp.m.kernel.kprobes.get_kprobe(prev.addr) or at.mp.slot_at(prev.addr))


def _same_detail(at: _At) -> str:
    return at.top.detail


def _tramp(at: _At) -> _Tramp:
    assert at.tramp is not None
    return at.tramp


def _call_slot(t: _Tramp) -> str:
    return "ftrace_regs_call" if t.template == "ftrace_regs_caller" else "ftrace_call"


def _tramp_return(at: _At) -> str:
    dest = at.after[_RIP]
    if at.mp.m.kernel.ftrace.records.find(dest - 5) is not None:
        return f"back to {at.mp.where(dest)}, after the site"
    return f"to {at.mp.where(dest)}: regs->ip, where the handler redirected"


# The part a function belongs to when it is entered; the first rule that holds decides.
# Callees of a part stay in it (the last rule) unless they are a part themselves.
_CALLEE_RULES: tuple[_Rule, ...] = (
    _Rule(lambda a: a.tramp is not None, "trampoline"),
    _Rule(lambda a: a.name in LIST_FUNCS and a.caller == "list function", "list function", _same_detail),
    _Rule(lambda a: a.name in LIST_FUNCS, "list function", "ftrace_ops_list_func walks ftrace_ops_list"),
    _Rule(lambda a: a.name in ASSIST_FUNCS, "assist", lambda a: f"ftrace_ops_assist_func guards ops '{a.ops(a.regs)}'"),
    _Rule(lambda a: "recursion" in a.name, "recursion", lambda a: a.name),
    _Rule(
        lambda a: a.name == HOST_FUNC,
        "python handler",
        lambda a: f"{HOST_FUNC} hands the call to the Python callback of ops '{a.ops(a.regs)}'",
    ),
    _Rule(
        lambda a: a.st.addr in a.mp.handler_roles and not a.caller.startswith("trampoline"),
        lambda a: f"{HANDLER_ROLES[a.mp.handler_roles[a.st.addr]]}: {a.name}",
        lambda a: f"called by {a.mp.name(a.prev.addr) if a.prev is not None else '?'}",
    ),
    _Rule(
        lambda a: a.name in KPROBE_INT3_FUNCS and a.caller == "kprobe int3 handler",
        "kprobe int3 handler",
        _same_detail,
    ),
    _Rule(lambda a: a.name in KPROBE_INT3_FUNCS, "kprobe int3 handler", "kprobe_int3_handler: the int3 was a kprobe's"),
    _Rule(lambda a: a.name in INT3_FUNCS and a.caller == "int3 handler", "int3 handler", _same_detail),
    _Rule(
        lambda a: a.name in INT3_FUNCS and _after_kprobe(a),
        "int3 handler",
        "a kprobe's int3: do_int3 passes it to kprobe_int3_handler",
    ),
    _Rule(
        lambda a: a.name in INT3_FUNCS,
        "int3 handler",
        "the site is being rewritten: the int3 handler emulates its new instruction",
    ),
    _Rule(
        lambda a: a.caller.startswith("trampoline") or a.caller in DISPATCH,
        lambda a: f"handler: {a.name}",
        lambda a: f"the handler of ops '{a.ops(a.regs)}'",
    ),
    _Rule(lambda a: True, lambda a: a.top.label, _same_detail),
)

# What the traced call turns out to be running, outside any callee: every rule that holds
# relabels the outermost frame, in order.
_OUTERMOST_RULES: tuple[_Rule, ...] = (
    _Rule(
        lambda a: (
            a.outermost and a.tramp is None and a.name == KRETPROBE_TRAMPOLINE and a.top.label != "kretprobe trampoline"
        ),
        "kretprobe trampoline",
        "the call returned into __kretprobe_trampoline, not to its caller",
    ),
    _Rule(
        lambda a: a.outermost and a.tramp is None and a.name == RETURN_TO_HANDLER and a.top.label != "graph return",
        "graph return",
        "the call returned into return_to_handler (function_graph), not to its caller",
    ),
    _Rule(
        lambda a: (
            a.outermost
            and a.tramp is None
            and a.probed is None
            and a.st.addr not in (a.site, a.site + 5)
            and a.prev is not None
            and a.prev.label == "trampoline: return"
        ),
        lambda a: f"new function: {a.name}",
        lambda a: f"the handler redirected the call to {a.symbolize(a.st.addr)}",
    ),
)

# The step's own label; the first rule that holds decides.
_STEP_RULES: tuple[_Rule, ...] = (
    _Rule(
        lambda a: a.tramp is not None,
        lambda a: f"trampoline: {_tramp_phase(_tramp(a), a.st.addr, a.st.raw)}",
        lambda a: _tramp_detail(_tramp(a)),
    ),
    _Rule(
        lambda a: a.probed is not None,
        "kprobe: out-of-line step",
        lambda a: f"the copy of the instruction probed at {a.symbolize(a.probed or 0)}, then an int3",
    ),
    _Rule(
        lambda a: a.outermost and a.st.addr == a.site,
        "site",
        lambda a: f"{a.func}'s fentry site, {_site_kind(a.mp, a.st)}",
    ),
    _Rule(lambda a: True, lambda a: a.top.label, _same_detail),
)

# A note on the step, after it is labelled; the first rule that holds decides.
_NOTE_RULES: tuple[tuple[Callable[[_At], bool], Text], ...] = (
    (
        lambda a: a.tramp is not None and a.st.addr - a.tramp.start == a.tramp.op_ptr,
        lambda a: f"{_tramp(a).template}_op_ptr: rdx = ops '{a.ops(a.after)}'",
    ),
    (
        lambda a: a.tramp is not None and a.st.addr - a.tramp.start == a.tramp.call_slot,
        lambda a: f"{_call_slot(_tramp(a))}: the call slot",
    ),
    (lambda a: a.tramp is not None and a.st.raw == b"\xc3", _tramp_return),
    (
        lambda a: a.st.label.startswith(tuple(HANDLER_ROLES.values())) and a.st.text.startswith("out"),
        "hypercall: the probe's Python handler runs on the host during this instruction",
    ),
    (
        lambda a: a.st.label == "python handler" and a.st.text.startswith("out"),
        lambda a: (
            f"hypercall: the Python callback of ops '{a.ops(a.regs, _RDI)}' runs on the host during this instruction"
        ),
    ),
)


def _label(
    mp: _Map, func: str, site: int, steps: list[Step], before: list[tuple], final: tuple, hostcall_return: int
) -> None:
    """Label, detail and note every step by the rules above, following calls and returns."""
    frames = [_Frame("traced function", f"{func}'s body", before[0][_RSP] if before else 0)]
    prev: Step | None = None
    prev_regs: tuple | None = None
    for i, (st, regs) in enumerate(zip(steps, before, strict=True)):
        while len(frames) > 1 and frames[-1].entry_rsp < regs[_RSP]:
            frames.pop()
        after = before[i + 1] if i + 1 < len(before) else final
        at = _At(mp, func, site, st, regs, after, prev, prev_regs, frames)
        if _entered(at):
            frames.append(_Frame(*_first(_CALLEE_RULES, at), regs[_RSP]))
        for rule in _OUTERMOST_RULES:
            if rule.when(at):
                at.top.label, at.top.detail = _text(rule.label, at), _text(rule.detail, at)
        st.label, st.detail = _first(_STEP_RULES, at)
        st.note = next((_text(note, at) for when, note in _NOTE_RULES if when(at)), st.note)
        prev, prev_regs = st, regs
    if steps and final[_RIP] == hostcall_return and steps[-1].raw == b"\xc3" and len(frames) == 1:
        steps[-1].label = "return"
        steps[-1].detail = "to the caller (the host call's return address)"
        if mp.name(steps[-1].addr) == KRETPROBE_TRAMPOLINE:
            steps[-1].detail = "from __kretprobe_trampoline to the real return address (the host call's)"
        if mp.name(steps[-1].addr) == RETURN_TO_HANDLER:
            steps[-1].detail = "from return_to_handler to the real return address (the host call's)"


def _decode(raw: bytes, addr: int) -> str:
    insn = next(_cs().disasm(raw, addr), None)
    return "(bad)" if insn is None else f"{insn.mnemonic:<7} {insn.op_str}".rstrip()


def _changes(a: tuple, b: tuple) -> list[tuple[str, int]]:
    return [(n, y) for n, x, y in zip(_REG_NAMES, a, b, strict=True) if n != "rip" and x != y]


# --- the call ------------------------------------------------------------------------------------


def site_of(m: Machine, func: str) -> int:
    """The fentry site of func (its first bytes), or KlpemuError(EINVAL) if it is not traceable."""
    sym = m.image.lookup(func)
    ft = m.kernel.ftrace
    for ip in range(sym.addr, sym.addr + min(sym.size, 16)):
        if ft.records.find(ip) is not None:
            return ip
    why = "ftrace is disabled" if ft.disabled else "notrace, or not in __mcount_loc"
    raise KlpemuError(f"{func}: not traceable (no ftrace site at its entry: {why})", EINVAL)


def trace_call(
    m: Machine,
    func: str,
    args: list[int] | tuple[int, ...] = (),
    *,
    cpu: int = 0,
    seq_file: bool = False,
    max_insns: int = DEFAULT_MAX_INSNS,
) -> TraceCall:
    """Run one call of func on cpu, recording and labelling every instruction.

    With seq_file a zeroed struct seq_file (with a 4096-byte buffer) is the first argument and
    its text is returned in the result. If the call crashes the machine, TraceCallError (EIO)
    carries the instructions up to the crash.
    """
    if m.stopped:
        raise KlpemuError("the machine stopped after an oops; it cannot run a call", EIO)
    if not m.booted:
        raise KlpemuError("the machine has not booted yet", EAGAIN)
    if not 0 <= cpu < len(m.cpus) or not m.cpus[cpu].online:
        raise KlpemuError(f"no CPU {cpu} online", EINVAL)
    sym = m.image.lookup(func)
    site = site_of(m, func)
    sf = make_seq_file(m) if seq_file else None
    call_args = ([sf] if sf is not None else []) + [int(a) for a in args]
    if len(call_args) > 6:
        if sf is not None:
            free_seq_file(m, sf)
        raise KlpemuError("at most six arguments", EINVAL)
    call_args += [0] * (6 - len(call_args))  # the arguments not given are zero
    mp = _Map(m)
    hostcall_return = m.image.addr("hostcall_return")
    executed: list[tuple[int, bytes]] = []
    before: list[tuple] = []
    uc = m.uc
    read = m.mem.read

    def hook(uc_, address, size, _ud):
        if address == hostcall_return:
            return
        executed.append((address, read(address, size)))
        before.append(tuple(uc_.reg_read_batch(_REG_IDS)))

    h = uc.hook_add(UC_HOOK_CODE, hook, None, 1, 0)
    # (mypy reads unicorn's Python 2 Uc, which lacks ctl_flush_tb and reg_read_batch)
    uc.ctl_flush_tb()  # type: ignore[attr-defined]
    ret = None
    crashed = None
    try:
        ret = m.call(sym.addr, *call_args, cpu=cpu, budget=max_insns)
    except GuestStopped as e:
        crashed = e
    finally:
        uc.hook_del(h)
        uc.ctl_flush_tb()  # type: ignore[attr-defined]
    final = tuple(uc.reg_read_batch(_REG_IDS))  # type: ignore[attr-defined]
    steps = []
    for addr, executed_bytes in executed:
        _, raw, text = insn_at(m, addr)
        note = ""
        if raw != executed_bytes:  # rewritten since (a Python callback poked text, say)
            raw, text, note = executed_bytes, _decode(executed_bytes, addr), "rewritten since it ran"
        steps.append(Step(addr, raw, text, mp.where(addr), note=note))
    for i, st in enumerate(steps):
        st.changes = _changes(before[i], before[i + 1] if i + 1 < len(before) else final)
    _label(mp, func, site, steps, before, final, hostcall_return)
    result = TraceCall(func, cpu, call_args, steps, ret)
    if sf is not None:
        result.seq_text = seq_file_text(m, sf)
        free_seq_file(m, sf)
    if crashed is not None:
        result.ret = None
        result.oops = str(m.oops) if m.oops is not None else str(crashed)
        if steps:
            steps[-1].note = (steps[-1].note + "; " if steps[-1].note else "") + "the machine stopped here"
        raise TraceCallError(f"{func} crashed the machine: {crashed}", EIO, result)
    return result
