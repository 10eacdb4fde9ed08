"""The function profiler: function_profile_enabled and trace_stat/function<cpu> (kernel/trace/
ftrace.c, the "function profiler" part).

Its ops, ftrace_profile_ops, is guest data whose handler function_profile_call counts each call
in the CPU's table of records (kernel/trace/ftrace_profile.c); it traces what set_ftrace_filter
says, as Linux's shares global_ops' hash. The host allocates the tables, resets them when
profiling starts, and prints them sorted by hits.
"""

from __future__ import annotations

import struct
from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .core import Ftrace
    from .filter_commands import FilterFile
    from .ops import FtraceOps

PROFILE_RECORDS = 2048  # per CPU, a power of two: twice the kernel's ftrace records

HEADER = "  Function                               Hit\n  --------                               ---\n"


class FunctionProfile:
    def __init__(self, machine: Machine, ftrace: Ftrace, global_filter: FilterFile):
        self.m = machine
        self.ft = ftrace
        self.global_filter = global_filter
        self._ops: FtraceOps | None = None
        types = machine.types
        self._records_at = types.offsetof("ftrace_profile_stat", "records")
        self._record_size = types.sizeof("ftrace_profile")

    @property
    def ops(self) -> FtraceOps:
        if self._ops is None:
            self._ops = self.ft.static_ops("function_profile", "ftrace_profile_ops")
        return self._ops

    @property
    def enabled(self) -> bool:
        return bool(self.m.read_var_int("ftrace_profile_enabled"))

    def _set_enabled_var(self, value: bool) -> None:
        self.m.mem.write(self.m.var_addr("ftrace_profile_enabled"), int(value).to_bytes(4, "little"))

    def write_enabled(self, text: str) -> None:
        """ftrace_profile_write: kstrtoul, then any nonzero value starts and 0 stops."""
        value = text.strip()
        if not value.isdigit():
            raise KlpemuError("function_profile_enabled takes a number", EINVAL)
        on = int(value) != 0
        if on == self.enabled:
            return
        if on:
            self._reset()
            self.global_filter.share_with(self.ops)
            self.ft.register(self.ops)
            self._set_enabled_var(True)
        else:
            self._set_enabled_var(False)
            self.ft.unregister(self.ops)
            self.global_filter.unshare(self.ops)

    def _stats(self) -> list[int]:
        base = self.m.var_addr("ftrace_profile_stats")
        return [self.m.mem.read_u64(base + 8 * cpu) for cpu in range(len(self.m.cpus))]

    def _reset(self) -> None:
        """ftrace_profile_reset, allocating each CPU's table the first time."""
        m = self.m
        size = self._records_at + PROFILE_RECORDS * self._record_size
        base = m.var_addr("ftrace_profile_stats")
        for cpu, stat in enumerate(self._stats()):
            if not stat:
                stat = m.heap.kzalloc(size)
                m.mem.write_u64(base + 8 * cpu, stat)
            else:
                m.mem.write(stat, bytes(size))
            m.mem.write_u64(stat, PROFILE_RECORDS)

    def records(self, cpu: int) -> list[tuple[int, int]]:
        """(ip, hits) of every function the CPU profiled."""
        stat = self._stats()[cpu]
        if not stat:
            return []
        raw = self.m.mem.read(stat + self._records_at, PROFILE_RECORDS * self._record_size)
        out = []
        for at in range(0, len(raw), self._record_size):
            ip, counter = struct.unpack_from("<QQ", raw, at)
            if ip and counter:
                out.append((ip, counter))
        return out

    def text(self, cpu: int) -> str:
        """trace_stat/function<cpu>: function_stat_show's rows, most hits first."""
        rows = sorted(((self.ft.symbol_of(ip), hits) for ip, hits in self.records(cpu)), key=lambda r: (-r[1], r[0]))
        return HEADER + "".join(f"  {name[:30]:<30}  {hits:10d}\n" for name, hits in rows)
