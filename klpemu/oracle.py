"""The consistency oracle: what each task actually ran, checked against a model's promise.

It knows nothing of the transition: not patch_state, not TIF_PATCH_PENDING, not func_stack. It
is given the function pairs of one patch by name (old, new) and watches the machine execute them,
with code hooks on each function's first instruction after its fentry site (the body runs: the
call was not redirected away) and on each of its `ret`s, keeping per task the activations it has
seen, as a shadow stack. Two rules, the promise of `linux` and `stop_machine` (and of `lazy`, whose
promise within each kernel entry they imply, a kernel thread's entry being its loop):
- no task has an old and a new function of the patch on its stack at once;
- a task that has run a function of the new side never again enters one of the old side (of the
  new side, when unpatching).
`immediate` promises neither, and the oracle reports what it allows.

A violation names the task, both functions, the emulated time and the stack, unwound from the
CPU's live registers at that instruction. The hooks exist only while an oracle is attached: the
machine without one runs the same instructions at the same speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import UC_HOOK_CODE
from unicorn import x86_const as x

from .kernel.stacktrace import Unwinder

if TYPE_CHECKING:
    from .kernel.module import Module
    from .machine.machine import Machine

OLD, NEW = "old", "new"
_cs = Cs(CS_ARCH_X86, CS_MODE_64)
FENTRY_SITE_LEN = 5


@dataclass(frozen=True)
class Violation:
    rule: str  # "mixed" (both sides on one stack) or "went back" (the side it left, again)
    pid: int
    comm: str
    entered: str  # "new cc_callee"
    other: str  # the function of the other side: on the stack, or run before
    ns: int
    stack: tuple[str, ...]

    def format(self) -> str:
        what = (
            f"entered {self.entered} with {self.other} on its stack"
            if self.rule == "mixed"
            else f"entered {self.entered} after running {self.other}"
        )
        lines = [f"[{self.ns / 1e9:12.6f}] {self.comm}:{self.pid} {what} ({self.rule})"]
        lines += [f"    {frame}" for frame in self.stack]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "rule": self.rule,
            "pid": self.pid,
            "comm": self.comm,
            "entered": self.entered,
            "other": self.other,
            "emulated_ns": self.ns,
            "stack": list(self.stack),
        }


@dataclass
class _Activation:
    side: str
    name: str
    rsp: int  # the slot of its return address: it has returned once rsp is above it


@dataclass
class _TaskView:
    stack: list[_Activation] = field(default_factory=list)
    ran: dict[str, str] = field(default_factory=dict)  # side -> first function of it run


class ConsistencyOracle:
    """Attach to a machine with the (old, new) function names of one patch; `direction` is
    "patch" (old to new) or "unpatch"; `detach()` removes every hook."""

    def __init__(self, machine: Machine, pairs: list[tuple[str, str]], direction: str = "patch"):
        self.m = machine
        self.pairs = pairs
        self.direction = direction
        self.violations: list[Violation] = []
        self.entries = 0
        self.returns = 0
        self._tasks: dict[int, _TaskView] = {}
        self._hooks: list[int] = []
        self._watched: set[int] = set()  # function addresses hooked
        self._targets: dict[int, tuple[str, str]] = {}  # entry address -> (side, name)
        self._rets: set[int] = set()
        self._notifier = (self._module_coming, self._module_going)
        self._seen: set[tuple[str, int, str]] = set()  # (rule, task, entered): one report each
        self._hook_what_is_loaded()
        machine.kernel.modules.notifiers.append(self._notifier)

    # --- hooks ---------------------------------------------------------------------------------

    def _hook_what_is_loaded(self) -> None:
        for old, new in self.pairs:
            for side, name in ((OLD, old), (NEW, new)):
                sym = self._symbol(name)
                if sym is not None and sym.addr not in self._watched:
                    self._watch(side, name, sym.addr, sym.size)

    def _symbol(self, name: str):
        image = self.m.image
        syms = image.by_name.get(name) or [s for k in image.module_kallsyms for s in k.by_name.get(name, ())]
        return syms[0] if len(syms) == 1 else None

    def _watch(self, side: str, name: str, addr: int, size: int) -> None:
        uc = self.m.uc
        code = bytes(self.m.mem.read(addr, size))
        insns = list(_cs.disasm(code, addr))
        body = addr + FENTRY_SITE_LEN if insns and insns[0].size == FENTRY_SITE_LEN else addr
        self._targets[body] = (side, name)
        self._watched.add(addr)
        self._hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_entry, None, body, body))
        uc.ctl_remove_cache(body, body + 1)  # blocks translated before the hook lack it
        for insn in insns:
            if insn.mnemonic == "ret":
                self._rets.add(insn.address)
                self._hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_return, None, insn.address, insn.address))
                uc.ctl_remove_cache(insn.address, insn.address + 1)

    def _module_coming(self, _mod: Module) -> None:
        self._hook_what_is_loaded()

    def _module_going(self, _mod: Module) -> None:
        pass

    def detach(self) -> None:
        for h in self._hooks:
            self.m.uc.hook_del(h)
        self._hooks.clear()
        if self._notifier in self.m.kernel.modules.notifiers:
            self.m.kernel.modules.notifiers.remove(self._notifier)

    # --- what runs -----------------------------------------------------------------------------

    def _current(self) -> tuple[int, int] | None:
        cpu = self.m.running_cpu
        if cpu is None:  # a host call: the control plane's own, not a task's
            return None
        return cpu.index, self.m.pcpu(cpu.index).current_task

    def _view(self, task: int, rsp: int) -> _TaskView:
        view = self._tasks.setdefault(task, _TaskView())
        # Activations left by a tail call or a jump out (no ret seen) are gone once rsp is above.
        while view.stack and view.stack[-1].rsp < rsp:
            view.stack.pop()
        return view

    def _on_entry(self, uc, addr: int, _size, _ud) -> None:
        cur = self._current()
        if cur is None:
            return
        _cpu, task = cur
        side, name = self._targets[addr]
        rsp = uc.reg_read(x.UC_X86_REG_RSP)
        view = self._view(task, rsp)
        self.entries += 1
        other = OLD if side == NEW else NEW
        on_stack = next((a for a in view.stack if a.side == other), None)
        if on_stack is not None:
            self._report("mixed", task, f"{side} {name}", f"{other} {on_stack.name}")
        left = OLD if self.direction == "patch" else NEW
        if side == left and (OLD if left == NEW else NEW) in view.ran:
            self._report("went back", task, f"{side} {name}", f"{other} {view.ran[other]}")
        view.ran.setdefault(side, name)
        view.stack.append(_Activation(side, name, rsp))

    def _on_return(self, uc, addr: int, _size, _ud) -> None:
        cur = self._current()
        if cur is None:
            return
        _cpu, task = cur
        rsp = uc.reg_read(x.UC_X86_REG_RSP)
        view = self._view(task, rsp)
        if view.stack and view.stack[-1].rsp == rsp:
            view.stack.pop()
            self.returns += 1

    def _report(self, rule: str, task: int, entered: str, other: str) -> None:
        key = (rule, task, entered)
        if key in self._seen:
            return
        self._seen.add(key)
        m = self.m
        t = m.struct("task_struct", task)
        uc = m.uc
        ip, sp, bp = (uc.reg_read(r) for r in (x.UC_X86_REG_RIP, x.UC_X86_REG_RSP, x.UC_X86_REG_RBP))
        lo = t.stack
        trace = Unwinder(m).from_regs(ip, sp, bp, lo, lo + m.thread_size)
        from .machine.kstr import kstr

        self.violations.append(
            Violation(rule, t.pid, kstr(t.comm), entered, other, m.now, tuple(f.symbol for f in trace.kernel_frames))
        )

    def report(self) -> str:
        return "\n".join(v.format() for v in self.violations)
