"""The function tracer: its ops, the global filter files, and the `trace` text.

Tracing itself is machine code (function_trace_call writes the guest's per-CPU rings); the host
registers the tracer's ops when current_tracer says `function`, and formats what the rings hold
the way Linux's trace output looks.
"""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ..tasks import all_tasks
from .filter_commands import FilterFile
from .function_probes import FunctionProbes

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import View
    from .core import Ftrace

TRACERS = ("function", "nop")
IRQS_OFF, NEED_RESCHED, HARDIRQ, SOFTIRQ, PREEMPT_RESCHED = 0x01, 0x04, 0x08, 0x10, 0x20

HEADER = """\
# tracer: {tracer}
#
# entries-in-buffer/entries-written: {shown}/{written}   #P:{cpus}
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""


def flag_chars(flags: int, preempt: int) -> str:
    irqs = "d" if flags & IRQS_OFF else "."
    if flags & NEED_RESCHED and flags & PREEMPT_RESCHED:
        resched = "N"
    elif flags & NEED_RESCHED:
        resched = "n"
    elif flags & PREEMPT_RESCHED:
        resched = "p"
    else:
        resched = "."
    hard, soft = flags & HARDIRQ, flags & SOFTIRQ
    irq = "H" if hard and soft else "h" if hard else "s" if soft else "."
    depth = f"{preempt & 0xF:x}" if preempt & 0xF else "."
    return f"{irqs}{resched}{irq}{depth}."


class FunctionTracer:
    def __init__(self, machine: Machine, ftrace: Ftrace):
        self.m = machine
        self.ft = ftrace
        self.current = "nop"
        self._ops = None
        self.probes = FunctionProbes(machine, ftrace)
        self.filters = FilterFile(machine, ftrace, self, probes=self.probes)
        self.notrace_filters = FilterFile(machine, ftrace, self, notrace=True)

    @property
    def ops(self):
        if self._ops is None:
            self._ops = self.ft.static_ops("function", "function_trace_ops")
        return self._ops

    # --- current_tracer and the filters --------------------------------------------------------

    def set_tracer(self, name: str) -> None:
        if name not in TRACERS:
            raise KlpemuError(f"{name}: no such tracer", EINVAL)
        if name == self.current:
            return
        if name == "function":
            self.ft.register(self.ops)
        else:
            self.ft.unregister(self.ops)
        self.current = name

    def set_filter(self, text: str, *, append: bool, notrace: bool = False) -> None:
        """A write to set_ftrace_filter / set_ftrace_notrace (filter_commands.py)."""
        (self.notrace_filters if notrace else self.filters).write(text, append=append)

    def filter_text(self, notrace: bool = False) -> str:
        return (self.notrace_filters if notrace else self.filters).text()

    # --- the ring buffers ----------------------------------------------------------------------

    @property
    def tracing_on(self) -> bool:
        return bool(self.m.read_var_int("tracing_on"))

    @tracing_on.setter
    def tracing_on(self, value: bool) -> None:
        self.m.mem.write(self.m.var_addr("tracing_on"), int(value).to_bytes(4, "little"))

    def _rings(self) -> list[View]:
        bufs = self.m.var("trace_buffers")
        return [bufs[c.index] for c in self.m.cpus if c.online]

    def entries(self) -> list[tuple[int, int, View]]:
        """(ts, cpu, entry view) of everything still in the rings, oldest first."""
        out = []
        for cpu, ring in enumerate(self._rings()):
            size = len(ring.ring)
            written = ring.entries
            for n in range(max(0, written - size), written):
                e = ring.ring[n % size]
                out.append((e.ts, cpu, e))
        out.sort(key=lambda t: (t[0], t[1]))
        return out

    def reset(self) -> None:
        for ring in self._rings():
            ring.entries = 0
            ring.overrun = 0

    def text(self) -> str:
        """The `trace` file."""
        comms = {t.pid: t.comm for t in all_tasks(self.m) if not t.is_idle}
        entries = self.entries()
        written = sum(r.entries for r in self._rings())
        lines = [
            HEADER.format(
                tracer=self.current, shown=len(entries), written=written, cpus=sum(1 for c in self.m.cpus if c.online)
            )
        ]
        for ts, cpu, e in entries:
            comm = "<idle>" if e.pid == 0 else comms.get(e.pid, "<...>")
            sec, ns = divmod(ts, 1_000_000_000)
            func = self.ft.symbol_of(e.ip)
            parent = self.m.image.function_at(e.parent_ip)
            lines.append(
                f"{comm:>16}-{e.pid:<7} [{cpu:03d}] {flag_chars(e.flags, e.preempt_count)} "
                f"{sec:5d}.{ns // 1000:06d}: {func} <-{parent.name if parent else hex(e.parent_ip)}\n"
            )
        return "".join(lines)
