"""kprobe_table: the registered probes hashed by address, one per address (kernel/kprobes.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...abi import KPROBE_HASH_BITS, KPROBE_TABLE_SIZE

if TYPE_CHECKING:
    from ...machine.machine import Machine


def kprobe_hash(addr: int) -> int:
    return (addr ^ (addr >> KPROBE_HASH_BITS) ^ (addr >> (2 * KPROBE_HASH_BITS))) & (KPROBE_TABLE_SIZE - 1)


class KprobeTable:
    """The guest's buckets, which machine code walks to find the probe an int3 or ftrace call
    belongs to; so every change is published by the one store that links it."""

    def __init__(self, machine: Machine):
        self.m = machine
        self._table = machine.var_addr("kprobe_table")
        self._next_off = machine.types.offsetof("kprobe", "hlist_next")

    def _bucket(self, addr: int) -> int:
        return self._table + 8 * kprobe_hash(addr)

    def _next(self, p: int) -> int:
        return self.m.mem.read_u64(p + self._next_off)

    def get(self, addr: int) -> int:
        """get_kprobe: the probe (an aggregate, if several) at addr, or 0."""
        p = self.m.mem.read_u64(self._bucket(addr))
        while p:
            if self.m.struct("kprobe", p).addr == addr:
                return p
            p = self._next(p)
        return 0

    def add(self, p: int, addr: int) -> None:
        bucket = self._bucket(addr)
        self.m.mem.write_u64(p + self._next_off, self.m.mem.read_u64(bucket))
        self.m.mem.write_u64(bucket, p)

    def replace(self, old: int, new: int, addr: int) -> None:
        self.m.mem.write_u64(new + self._next_off, self._next(old))
        self._link_to(old, new, addr)

    def delete(self, p: int, addr: int) -> None:
        self._link_to(p, self._next(p), addr)

    def _link_to(self, old: int, new: int, addr: int) -> None:
        """Make whatever points at old point at new."""
        mem = self.m.mem
        slot = self._bucket(addr)
        while mem.read_u64(slot) != old:
            slot = mem.read_u64(slot) + self._next_off
        mem.write_u64(slot, new)

    def all(self) -> list[int]:
        """Every probe in the table, bucket by bucket (aggregates, not their children)."""
        out = []
        # one read of every bucket: asked at each livepatch registration, mostly of an empty table
        heads = memoryview(self.m.mem.read(self._table, 8 * KPROBE_TABLE_SIZE)).cast("Q")
        for head in heads:
            p = head
            while p:
                out.append(p)
                p = self._next(p)
        return out
