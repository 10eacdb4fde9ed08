"""The function tracer: its ops and the filter files.

Tracing itself is machine code (function_trace_call writes TRACE_FN records into the guest's
ring buffer); the host registers the tracer's ops when current_tracer says `function` (or, with
the handler ftrace_graph_func, `function_graph`), and its trace array formats the records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .filter_commands import FilterFile
from .function_probes import FunctionProbes

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .core import Ftrace
    from .ops import FtraceOps
    from .ring_buffer import RingBuffer
    from .trace_array import TraceArray
    from .trace_output import Record


class FunctionTracer:
    """One trace array's function ops and its filters (set_ftrace_filter, set_ftrace_notrace);
    the tracer switch, the ring and the text are its trace array's (trace_array.py)."""

    def __init__(self, machine: Machine, ftrace: Ftrace, tr: TraceArray, ops: FtraceOps | None = None):
        self.m = machine
        self.ft = ftrace
        self.tr = tr
        self._ops = ops  # None: the top level's, function_trace_ops (kernel core data)
        self.probes = FunctionProbes(machine, ftrace, tr.addr, tr.alloc_snapshot)
        self.filters = FilterFile(machine, ftrace, self, probes=self.probes)
        self.notrace_filters = FilterFile(machine, ftrace, self, notrace=True)

    @property
    def ops(self) -> FtraceOps:
        if self._ops is None:
            self._ops = self.ft.static_ops("function", "function_trace_ops")
        return self._ops

    # --- current_tracer and the filters --------------------------------------------------------

    @property
    def current(self) -> str:
        return self.tr.current

    def set_tracer(self, name: str) -> None:
        self.tr.set_tracer(name)

    def set_filter(self, text: str, *, append: bool, notrace: bool = False) -> None:
        """A write to set_ftrace_filter / set_ftrace_notrace (filter_commands.py)."""
        (self.notrace_filters if notrace else self.filters).write(text, append=append)

    def filter_text(self, notrace: bool = False) -> str:
        return (self.notrace_filters if notrace else self.filters).text()

    # --- the ring buffer -----------------------------------------------------------------------

    @property
    def buffer(self) -> RingBuffer:
        return self.tr.buffer

    @property
    def tracing_on(self) -> bool:
        return self.tr.tracing_on

    @tracing_on.setter
    def tracing_on(self, value: bool) -> None:
        self.tr.tracing_on = value

    def reset(self) -> None:
        self.tr.buffer.reset()

    def entries(self) -> list[tuple[int, int, Record]]:
        """(ts, cpu, record) of the TRACE_FN records still in the ring, oldest first."""
        fn = self.m.types.enum("TRACE_FN")
        return [(r.ts, r.cpu, r) for r in self.tr.records() if r.type == fn]

    def text(self) -> str:
        """The `trace` file."""
        return self.tr.text()
