"""The function tracer: its ops, the global filter files, and the `trace` text.

Tracing itself is machine code (function_trace_call writes TRACE_FN records into the guest's
ring buffer); the host registers the tracer's ops when current_tracer says `function`, and
formats the records the way Linux's trace output looks.
"""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from .filter_commands import FilterFile
from .function_probes import FunctionProbes
from .ring_buffer import RingBuffer

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .core import Ftrace
    from .trace_output import Record, TraceOutput

TRACERS = ("function", "nop")


class FunctionTracer:
    def __init__(self, machine: Machine, ftrace: Ftrace, output: TraceOutput):
        self.m = machine
        self.ft = ftrace
        self.output = output
        self.current = "nop"
        self._ops = None
        tr = machine.var_addr("global_trace")
        self.buffer = RingBuffer(machine, tr + machine.types.offsetof("trace_array", "buffer"), slot=0)
        output.register(machine.types.enum("TRACE_FN"), "ftrace_entry", self._print_fn)
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
            self.buffer.expand()
            self.ft.register(self.ops)
        else:
            self.ft.unregister(self.ops)
        self.current = name

    def set_filter(self, text: str, *, append: bool, notrace: bool = False) -> None:
        """A write to set_ftrace_filter / set_ftrace_notrace (filter_commands.py)."""
        (self.notrace_filters if notrace else self.filters).write(text, append=append)

    def filter_text(self, notrace: bool = False) -> str:
        return (self.notrace_filters if notrace else self.filters).text()

    # --- the ring buffer -----------------------------------------------------------------------

    @property
    def tracing_on(self) -> bool:
        return self.buffer.record_on

    @tracing_on.setter
    def tracing_on(self, value: bool) -> None:
        self.buffer.record_on = value

    def reset(self) -> None:
        self.buffer.reset()

    def entries(self) -> list[tuple[int, int, Record]]:
        """(ts, cpu, record) of the TRACE_FN records still in the ring, oldest first."""
        fn = self.m.types.enum("TRACE_FN")
        recs = (self.output.record(r) for r in self.buffer.records())
        return [(r.ts, r.cpu, r) for r in recs if r.type == fn]

    def _print_fn(self, rec: Record) -> str:
        """A TRACE_FN record: `func <-parent`."""
        parent = self.m.image.function_at(rec.parent_ip)
        return f"{self.ft.symbol_of(rec.ip)} <-{parent.name if parent else hex(rec.parent_ip)}"

    def text(self) -> str:
        """The `trace` file."""
        return self.output.text(self.current, self.buffer)
