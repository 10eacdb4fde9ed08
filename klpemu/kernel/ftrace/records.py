"""struct dyn_ftrace records in guest memory: one per fentry site, sorted by ip."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...machine.machine import Machine


class Records:
    """A view: the guest's ftrace_records array is the only copy of each site's state."""

    def __init__(self, machine: "Machine"):
        self.m = machine
        self.base = machine.var_addr("ftrace_records")
        self.size = machine.types.sizeof("dyn_ftrace")
        self.capacity = machine.types.variables["ftrace_records"].count
        self._ips: list[int] = []  # the ips never change once a record exists

    def __len__(self) -> int:
        return self.m.read_var_int("ftrace_nr_records")

    def _addr(self, i: int) -> int:
        return self.base + i * self.size

    def ip(self, i: int) -> int:
        return self.m.mem.read_u64(self._addr(i))

    def flags(self, i: int) -> int:
        return self.m.mem.read_u64(self._addr(i) + 8)

    def set_flags(self, i: int, flags: int) -> None:
        self.m.mem.write_u64(self._addr(i) + 8, flags)

    def append(self, ip: int, flags: int = 0) -> int:
        n = len(self)
        if n >= self.capacity:
            raise OverflowError("ftrace_records is full")
        self.m.mem.write_u64(self._addr(n), ip)
        self.m.mem.write_u64(self._addr(n) + 8, flags)
        self.m.mem.write_u64(self.m.var_addr("ftrace_nr_records"), n + 1)
        self._ips.append(ip)
        return n

    def find(self, ip: int) -> int | None:
        """The record index of an ftrace location (ftrace_location), or None."""
        i = bisect.bisect_left(self._ips, ip)
        return i if i < len(self._ips) and self._ips[i] == ip else None

    def ips(self) -> list[int]:
        return list(self._ips)
