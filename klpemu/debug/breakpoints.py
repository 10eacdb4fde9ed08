"""Breakpoints, watchpoints and single steps on the running machine.

Breakpoints are Unicorn code hooks bounded to their address, never int3 bytes: the text that
ftrace checks and text_poke rewrites stays exactly what the kernel wrote, and reading memory
shows it. A hook fires before its instruction runs, so a stopped CPU's pc is the breakpoint's
address. Watchpoints are memory hooks bounded to the watched bytes; they stop after the access.
With nothing set no hook is installed, so the run loop costs what it costs without a debugger.

Hits count only in the CPUs' own slices: a host call (Machine.call, the control plane's work)
runs through breakpoints without stopping, since stopping it would leave the host half-done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from errno import EFAULT, EINVAL, ENOENT
from typing import TYPE_CHECKING

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE

from ..disasm import insn_at, where
from ..errors import KlpemuError
from ..machine.memory import PAGE_SIZE
from .role import ftrace_role

if TYPE_CHECKING:
    from ..machine.machine import Machine

WATCH_KINDS = ("write", "read", "access")
WATCH_LENGTHS = (1, 2, 4, 8)  # what an x86 debug register can watch


@dataclass(frozen=True)
class StopReport:
    """Why and where the machine stopped: the CPU, its task, the instruction about to run."""

    cpu: int
    reason: str  # breakpoint, watchpoint, step, interrupt
    pc: int
    pid: int
    comm: str
    where: str  # symbol+off/size
    insn: str
    role: str  # the ftrace part of the pc, as trace-call labels it ("" for none)
    watch: tuple[str, int] | None = None  # (kind, address) of a watchpoint hit

    def format(self) -> str:
        head = f"cpu{self.cpu} [{self.comm}:{self.pid}] {self.reason}"
        if self.watch is not None:
            head += f" ({self.watch[0]} 0x{self.watch[1]:x})"
        role = f"  <{self.role}>" if self.role else ""
        return f"{head} at {self.pc:016x} {self.where}: {self.insn}{role}"


class Debugger:
    """The breakpoint engine of one machine. `attach()` makes it take the machine's stops:
    each one is reported to `on_stop`, which returns when the machine may go on."""

    def __init__(self, machine: Machine, on_stop: Callable[[StopReport], None] | None = None):
        self.m = machine
        self.on_stop = on_stop
        self._breaks: dict[int, tuple[set[int] | None, int]] = {}  # addr -> (cpus or all, hook)
        self._watches: dict[tuple[str, int, int], list[int]] = {}  # (kind, addr, len) -> hook
        self._hit: tuple[int, str, tuple[str, int] | None] | None = None
        self._suspended = False
        self.last: StopReport | None = None

    # --- attaching -------------------------------------------------------------------------------

    def attach(self) -> None:
        if self.m.stop_handler is not None:
            raise KlpemuError("a debugger is attached to this machine already", EINVAL)
        self.m.stop_handler = self._take_stop

    def detach(self) -> None:
        """Remove every breakpoint and watchpoint; the machine runs on without a debugger."""
        for addr in list(self._breaks):
            self.remove_breakpoint(addr)
        for key in list(self._watches):
            self.remove_watchpoint(*key)
        if self.m.stop_handler == self._take_stop:
            self.m.stop_handler = None

    # --- breakpoints -----------------------------------------------------------------------------

    @property
    def breakpoints(self) -> dict[int, set[int] | None]:
        return {addr: cpus for addr, (cpus, _) in self._breaks.items()}

    def insert_breakpoint(self, addr: int, cpu: int | None = None) -> None:
        """Stop any CPU (or only `cpu`) before it runs the instruction at addr. Inserting twice
        is harmless (a debugger may resend)."""
        if not 0 <= addr < 2**64:
            raise KlpemuError(f"bad address 0x{addr:x}", EINVAL)
        if cpu is not None and not 0 <= cpu < len(self.m.cpus):
            raise KlpemuError(f"no CPU {cpu}", EINVAL)
        if addr in self._breaks:
            cpus, hook = self._breaks[addr]
            if cpus is not None:
                cpus = None if cpu is None else cpus | {cpu}
            self._breaks[addr] = (cpus, hook)
            return
        uc = self.m.uc
        hook = uc.hook_add(UC_HOOK_CODE, self._on_code, None, addr, addr)
        # Blocks translated before the hook existed would run past it.
        uc.ctl_remove_cache(addr, addr + 1)
        self._breaks[addr] = (None if cpu is None else {cpu}, hook)

    def remove_breakpoint(self, addr: int, cpu: int | None = None) -> None:
        if addr not in self._breaks:
            return
        cpus, hook = self._breaks[addr]
        if cpu is not None and cpus is not None and cpus - {cpu}:
            self._breaks[addr] = (cpus - {cpu}, hook)
            return
        del self._breaks[addr]
        self.m.uc.hook_del(hook)
        self.m.uc.ctl_remove_cache(addr, addr + 1)

    def _on_code(self, _uc, addr: int, _size: int, _ud) -> None:
        cpu = self.m.running_cpu
        if cpu is None or self._suspended or self._hit is not None:
            return
        cpus = self._breaks[addr][0] if addr in self._breaks else set()
        if cpus is not None and cpu.index not in cpus:
            return
        self._hit = (cpu.index, "breakpoint", None)
        self.m.request_stop()

    # --- watchpoints -----------------------------------------------------------------------------

    def insert_watchpoint(self, addr: int, length: int, kind: str = "write") -> None:
        if kind not in WATCH_KINDS:
            raise KlpemuError(f"watchpoint kind must be one of {', '.join(WATCH_KINDS)}, not {kind!r}", EINVAL)
        if length not in WATCH_LENGTHS:
            raise KlpemuError(f"a watchpoint covers 1, 2, 4 or 8 bytes, not {length}", EINVAL)
        if not 0 <= addr <= 2**64 - length:
            raise KlpemuError(f"bad address 0x{addr:x}", EINVAL)
        key = (kind, addr, length)
        if key in self._watches:
            return
        if not all(self.m.mem.is_mapped(a) for a in (addr, addr + length - 1)):
            raise KlpemuError(f"cannot watch 0x{addr:x}: not mapped", EFAULT)
        types = {"write": UC_HOOK_MEM_WRITE, "read": UC_HOOK_MEM_READ, "access": UC_HOOK_MEM_WRITE | UC_HOOK_MEM_READ}
        uc = self.m.uc
        # Memory hooks see physical addresses: hook each page's part of the range.
        hooks = []
        a = addr
        while a < addr + length:
            n = min(addr + length, (a | (PAGE_SIZE - 1)) + 1) - a
            pa = self.m.mem.phys(a)
            hooks.append(uc.hook_add(types[kind], self._on_mem, (kind, addr), pa, pa + n - 1))
            a += n
        self._watches[key] = hooks
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # memory hooks are compiled into every block

    def remove_watchpoint(self, kind: str, addr: int, length: int) -> None:
        hooks = self._watches.pop((kind, addr, length), None)
        if hooks is not None:
            for hook in hooks:
                self.m.uc.hook_del(hook)
            self.m.uc.ctl_flush_tb()  # type: ignore[attr-defined]

    def _on_mem(self, _uc, _access: int, _pa: int, _size: int, _value: int, watch: tuple[str, int]) -> None:
        cpu = self.m.running_cpu
        if cpu is None or self._suspended or self._hit is not None:
            return
        self._hit = (cpu.index, "watchpoint", watch)
        self.m.request_stop()

    # --- stops -----------------------------------------------------------------------------------

    def report(self, cpu: int, reason: str, watch: tuple[str, int] | None = None) -> StopReport:
        m = self.m
        pc = m.cpus[cpu].reg("rip")
        pid, comm = m.task_on(cpu) if m.cpus[cpu].online else (0, "")
        try:
            _, _, text = insn_at(m, pc)
        except KlpemuError:
            text = "(unreadable)"
        report = StopReport(cpu, reason, pc, pid, comm, where(m, pc), text, ftrace_role(m, pc), watch)
        self.last = report
        return report

    def _take_stop(self) -> bool:
        hit, self._hit = self._hit, None
        if hit is None:  # asked from outside (an interrupt): name a CPU that was running
            busy = [c.index for c in self.m.cpus if c.online and not c.halted]
            hit = (busy[0] if busy else 0, "interrupt", None)
        if self.on_stop is None:
            return False
        self.on_stop(self.report(*hit))
        self._step_off()
        return True

    def step(self, cpu: int) -> StopReport:
        """Run one instruction on cpu while the other CPUs stay where they are (a halted CPU
        first waits for its next interrupt, the others running meanwhile)."""
        m = self.m
        if not 0 <= cpu < len(m.cpus) or not m.cpus[cpu].online:
            raise KlpemuError(f"no CPU {cpu} online", ENOENT)
        self._suspended = True
        try:
            for _ in m.step(cpu, 1):
                pass
        finally:
            self._suspended = False
            self._hit = None
        return self.report(cpu, "step")

    def _step_off(self) -> None:
        """Before the machine runs on: a CPU stopped at a breakpoint first steps off it, so the
        breakpoint does not hit again at once."""
        last = self.last
        if last is None or last.reason == "interrupt" or self.m.stopped:
            return
        if self.m.cpus[last.cpu].reg("rip") in self._breaks:
            self.step(last.cpu)
