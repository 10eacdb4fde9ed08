"""struct dyn_ftrace records in guest memory: one per fentry site, sorted by ip."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from ...abi import DYN_FTRACE_OFFSET

if TYPE_CHECKING:
    from ...machine.machine import Machine

FLAGS = DYN_FTRACE_OFFSET["flags"]  # read and written for every record on each update


class Records:
    """A view: the guest's ftrace_records array is the only copy of each site's state."""

    def __init__(self, machine: Machine):
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
        return self.m.mem.read_u64(self._addr(i) + FLAGS)

    def set_flags(self, i: int, flags: int) -> None:
        self.m.mem.write_u64(self._addr(i) + FLAGS, flags)

    def append(self, ip: int, flags: int = 0) -> int:
        n = len(self)
        if n >= self.capacity:
            raise OverflowError("ftrace_records is full")
        self.m.mem.write_u64(self._addr(n), ip)
        self.m.mem.write_u64(self._addr(n) + FLAGS, flags)
        self.m.mem.write_u64(self.m.var_addr("ftrace_nr_records"), n + 1)
        self._ips.append(ip)
        return n

    def _rewrite_from(self, first: int, entries: list[tuple[int, int]], old_len: int) -> None:
        """Write entries[first:] over the array from index first; clear slots past the new end."""
        data = b"".join(ip.to_bytes(8, "little") + flags.to_bytes(8, "little") for ip, flags in entries[first:])
        data += bytes(self.size * max(0, old_len - len(entries)))
        if data:
            self.m.mem.write(self._addr(first), data)
        self.m.mem.write_u64(self.m.var_addr("ftrace_nr_records"), len(entries))
        self._ips = [ip for ip, _ in entries]

    def insert(self, ips: list[int], flags: int = 0) -> None:
        """Records for new sites (a module's, as ftrace_process_locs adds them), kept sorted by ip."""
        n = len(self)
        if n + len(ips) > self.capacity:
            raise OverflowError("ftrace_records is full")
        if not ips:
            return
        entries = [(ip, self.flags(i)) for i, ip in enumerate(self._ips)] + [(ip, flags) for ip in ips]
        entries.sort()
        self._rewrite_from(bisect.bisect_left(self._ips, min(ips)), entries, n)

    def remove(self, start: int, end: int) -> list[int]:
        """Drop the records of [start, end) (ftrace_release_mod, ftrace_free_mem); returns their ips."""
        lo, hi = bisect.bisect_left(self._ips, start), bisect.bisect_left(self._ips, end)
        if lo == hi:
            return []
        n = len(self)
        gone = self._ips[lo:hi]
        entries = [(ip, self.flags(i)) for i, ip in enumerate(self._ips) if not lo <= i < hi]
        self._rewrite_from(lo, entries, n)
        return gone

    def find(self, ip: int) -> int | None:
        """The record index of an ftrace location (ftrace_location), or None."""
        i = bisect.bisect_left(self._ips, ip)
        return i if i < len(self._ips) and self._ips[i] == ip else None

    def ips(self) -> list[int]:
        return list(self._ips)
