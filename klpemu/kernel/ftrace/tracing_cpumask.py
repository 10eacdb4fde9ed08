"""tracing_cpumask: the CPUs whose calls the function tracer records (kernel/trace/trace.c).

A CPU left out of the mask has its ring's record_disabled set, so no writer reserves room there,
as tracing_set_cpumask disables the CPU's buffer in Linux.
"""

from __future__ import annotations

from errno import EINVAL, EOVERFLOW
from typing import TYPE_CHECKING

from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.machine import Machine


class TracingCpumask:
    def __init__(self, machine: Machine):
        self.m = machine
        self.nr_cpu_ids = len(machine.cpus)
        self.mask = (1 << self.nr_cpu_ids) - 1

    def text(self) -> str:
        """%*pb: hex, in 32-bit groups separated by commas."""
        width = -(-self.nr_cpu_ids // 4)
        digits = f"{self.mask:0{width}x}"
        groups: list[str] = []
        while digits:
            groups.insert(0, digits[-8:])
            digits = digits[:-8]
        return ",".join(groups) + "\n"

    def write(self, text: str) -> None:
        """bitmap_parse: hex digits, in comma-separated 32-bit groups."""
        value = 0
        groups = text.strip().split(",")
        for group in groups:
            if not group or len(group) > 8 or any(c not in "0123456789abcdefABCDEF" for c in group):
                raise KlpemuError(f"{text.strip()}: not a CPU mask", EINVAL)
            value = value << 32 | int(group, 16)
        if value >> self.nr_cpu_ids:
            raise KlpemuError(f"{text.strip()}: CPUs beyond the last", EOVERFLOW)
        self.mask = value
        for cpu, ring in enumerate(self.m.kernel.function_tracer.buffer.cpu_buffers()):
            ring.record_disabled = 0 if value >> cpu & 1 else 1
