"""The stack tracer (kernel/trace/trace_stack.c): stack_tracer_enabled, stack_max_size,
stack_trace and stack_trace_filter.

Its ops, stack_trace_ops, is guest data with a guest handler (kernel/trace/trace_stack.c), which
measures the stack at every call it sees and keeps the deepest chain; the host registers the ops
when the sysctl says so and formats what the guest recorded.
"""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from .filter_commands import FilterFile

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .core import Ftrace
    from .ops import FtraceOps

DISABLED = """\
#
#  Stack tracer disabled
#
# To enable the stack tracer, either add 'stacktrace' to the
# kernel command line
# or 'echo 1 > /proc/sys/kernel/stack_tracer_enabled'
#
"""


class StackTracer:
    def __init__(self, machine: Machine, ftrace: Ftrace):
        self.m = machine
        self.ft = ftrace
        self.enabled = 0  # /proc/sys/kernel/stack_tracer_enabled, as written
        self._ops: FtraceOps | None = None
        self.filters = FilterFile(machine, ftrace, self, commands=False)

    @property
    def ops(self) -> FtraceOps:
        if self._ops is None:
            self._ops = self.ft.static_ops("stack_trace", "stack_trace_ops")
        return self._ops

    def set_enabled(self, text: str) -> None:
        """stack_trace_sysctl: proc_dointvec, then the ops follows whether the value is nonzero."""
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise KlpemuError("stack_tracer_enabled takes an integer", EINVAL) from None
        if not -(2**31) <= value < 2**31:
            raise KlpemuError("stack_tracer_enabled takes an integer", EINVAL)
        was = bool(self.enabled)
        if bool(value) != was:
            if value:
                self.ft.register(self.ops)
            else:
                self.ft.unregister(self.ops)
        self.enabled = value

    @property
    def max_size(self) -> int:
        return self.m.read_var_int("stack_trace_max_size")

    def set_max_size(self, text: str) -> None:
        """stack_max_size_write: kstrtoul base 10; 0 starts the measuring again."""
        value = text.strip()
        if not value.isdigit() or int(value) >= 1 << 64:
            raise KlpemuError("stack_max_size takes a number", EINVAL)
        self.m.mem.write_u64(self.m.var_addr("stack_trace_max_size"), int(value))

    def entries(self) -> list[tuple[int, int]]:
        """(depth, return address) of each recorded frame, deepest first."""
        m = self.m
        n = m.read_var_int("stack_trace_nr_entries")
        trace, index = m.var("stack_dump_trace"), m.var("stack_trace_index")
        return [(index[i], trace[i]) for i in range(n)]

    def text(self) -> str:
        """stack_trace: t_show's table, or how to enable the tracer."""
        entries = self.entries()
        out = [f"        Depth    Size   Location    ({len(entries)} entries)\n        -----    ----   --------\n"]
        if not self.enabled and not self.max_size:
            out.append(DISABLED)
        for i, (depth, addr) in enumerate(entries):
            size = depth - entries[i + 1][0] if i + 1 < len(entries) else depth
            out.append(f"{i:3d}) {depth:8d}   {size:5d}   {self.m.image.symbolize(addr)}\n")
        return "".join(out)
