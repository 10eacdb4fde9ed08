"""The shell's debugger: numbered breakpoints and watchpoints over the machine's breakpoint
engine (klpemu/debug/breakpoints.py), and the stop itself.

A command that runs the machine (`cat`, `sleep`, `insmod`) is not cut short by a stop: the
engine calls back between two rounds of the run, and the shell reads commands right there, with
the machine frozen mid-run, until `continue`; the command then goes on to its end. The commands
read at a stop come first from the rest of the line or script, then from the terminal; with no
input left, the breakpoints are deleted and the run goes on, so that a script never hangs.
"""

from __future__ import annotations

from dataclasses import dataclass
from errno import EINVAL, ENOENT
from typing import TYPE_CHECKING

from ..errors import Interrupted, KlpemuError

if TYPE_CHECKING:
    from ..debug.breakpoints import Debugger, StopReport
    from .core import Shell

STOP_PROMPT = "(stopped) # "


@dataclass
class Breakpoint:
    number: int
    kind: str  # breakpoint, watchpoint
    addr: int
    where: str  # as the user named it, resolved: func+off
    cpu: int | None = None
    task: int | None = None  # a pid: stop only when this task runs into it
    temporary: bool = False
    length: int = 0  # a watchpoint's bytes
    hits: int = 0


class ShellDebugger:
    def __init__(self, shell: Shell):
        from ..debug.breakpoints import Debugger

        self.shell = shell
        self.machine = shell.machine
        self.engine: Debugger = Debugger(shell.machine, on_stop=self._on_stop)
        self.engine.attach()
        self.points: dict[int, Breakpoint] = {}
        self._next = 1
        self.stopped: StopReport | None = None  # where the machine is frozen, while it is
        self.resume_requested = False

    # --- the table -----------------------------------------------------------------------------

    def add_breakpoint(self, addr: int, where: str, cpu: int | None, task: int | None, temporary: bool) -> Breakpoint:
        self.engine.insert_breakpoint(addr, cpu)
        bp = Breakpoint(self._next, "breakpoint", addr, where, cpu, task, temporary)
        self.points[bp.number] = bp
        self._next += 1
        return bp

    def add_watchpoint(self, addr: int, length: int, where: str) -> Breakpoint:
        self.engine.insert_watchpoint(addr, length, "write")
        wp = Breakpoint(self._next, "watchpoint", addr, where, length=length)
        self.points[wp.number] = wp
        self._next += 1
        return wp

    def delete(self, number: int | None = None) -> None:
        numbers = list(self.points) if number is None else [number]
        for n in numbers:
            bp = self.points.pop(n, None)
            if bp is None:
                raise KlpemuError(f"No breakpoint number {n}.", ENOENT)
            if bp.kind == "watchpoint":
                self.engine.remove_watchpoint("write", bp.addr, bp.length)
            elif not any(p.kind == "breakpoint" and p.addr == bp.addr for p in self.points.values()):
                self.engine.remove_breakpoint(bp.addr)
            else:  # another breakpoint still wants this address, perhaps on other CPUs
                self._reinsert(bp.addr)

    def _reinsert(self, addr: int) -> None:
        self.engine.remove_breakpoint(addr)
        for p in self.points.values():
            if p.kind == "breakpoint" and p.addr == addr:
                self.engine.insert_breakpoint(addr, p.cpu)

    # --- the stop ------------------------------------------------------------------------------

    def _matching(self, report: StopReport) -> Breakpoint | None:
        """The breakpoint a stop is for; None when it is not one of ours to stop at (a task
        filter that does not match)."""
        if report.reason == "watchpoint" and report.watch is not None:
            kind, addr = report.watch
            return next(
                (p for p in self.points.values() if p.kind == "watchpoint" and p.addr <= addr < p.addr + p.length),
                None,
            )
        return next(
            (
                p
                for p in self.points.values()
                if p.kind == "breakpoint"
                and p.addr == report.pc
                and (p.cpu is None or p.cpu == report.cpu)
                and (p.task is None or p.task == report.pid)
            ),
            None,
        )

    def _on_stop(self, report: StopReport) -> None:
        if report.reason == "interrupt":  # Ctrl-C: the running command is interrupted, as always
            raise Interrupted()
        bp = self._matching(report)
        if bp is None and report.reason in ("breakpoint", "watchpoint"):
            return  # another task's hit: the engine steps off it, quietly

        sh = self.shell
        if bp is not None:
            bp.hits += 1
            label = "Temporary breakpoint" if bp.temporary else bp.kind.capitalize()
            print(f"\n{label} {bp.number}, {report.format()}", file=sh.out)
            if bp.temporary:
                self.delete(bp.number)
        else:
            print(f"\n{report.format()}", file=sh.out)
        sh.out.flush()
        self.stopped = report
        sh.debug_cpu = report.cpu
        busy = sh.busy
        sh.busy = False  # at the stop's prompt, Ctrl-C clears the line
        try:
            self._read_commands()
        finally:
            self.stopped = None
            sh.debug_cpu = 0
            sh.busy = busy

    def _read_commands(self) -> None:
        sh = self.shell
        self.resume_requested = False
        while not self.resume_requested:
            line = sh.next_input(STOP_PROMPT)
            if line is None:
                if self.points:
                    print("end of input at a stop: breakpoints deleted, the run goes on", file=sh.out)
                    self.delete()
                return
            sh.execute(line)

    def step_report(self, report: StopReport) -> None:
        self.stopped = report
        print(report.format(), file=self.shell.out)

    def require_stop(self, command: str) -> StopReport:
        if self.stopped is None:
            raise KlpemuError(f"{command}: the machine is not stopped (set a breakpoint, then run a command)", EINVAL)
        return self.stopped


def resolve_location(shell: Shell, text: str) -> tuple[int, str]:
    """FUNC[+OFF], FUNC,SYMPOS, a module's function, or an address (0x..., or *EXPR as gdb
    takes it): the address, and a name for it."""
    m = shell.machine
    if text.startswith("*"):
        text = text[1:]
    if text[:1].isdigit():
        try:
            addr = int(text, 0)
        except ValueError:
            raise KlpemuError(f"bad address '{text}'", EINVAL) from None
        return addr, m.image.symbolize(addr)
    name, plus, offset = text.partition("+")
    name, comma, sympos = name.partition(",")
    try:
        off = int(offset, 0) if plus else 0
        pos = int(sympos) if comma else 0
    except ValueError:
        raise KlpemuError(f"bad location '{text}' (FUNC[+OFF], FUNC,SYMPOS or ADDRESS)", EINVAL) from None
    if not m.image.has(name) and not any(name in k.by_name for k in m.image.module_kallsyms):
        raise KlpemuError(f'Function "{name}" not defined.', ENOENT)
    sym = m.image.lookup(name, pos)  # the livepatch rules: an ambiguous name needs its SYMPOS
    return sym.addr + off, m.image.symbolize(sym.addr + off)
