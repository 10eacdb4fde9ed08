"""The trace ring buffer's host side (kernel/trace/ring_buffer.c's reader and resizer).

The guest writes records (firmware/kernel/trace/ring_buffer.c); the host maps each CPU's pages,
sizes the rings (buffer_size_kb), resets them, and reads the committed records back, oldest
first. Each (buffer, CPU) ring lives in its own window of virtual addresses, backed by physical
pages as it grows: RAM is never given back, so a ring that shrinks keeps its pages for later.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from errno import ENOMEM
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ...machine.memory import PAGE_SIZE, PTE_RW

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import View

TRACE_BUFFER_VADDR = 0xFFFFCA0000000000  # rings, one window per (buffer, CPU)
WINDOW = 64 << 20  # the most one CPU's ring can grow to
BUF_PAGE_HDR_SIZE = 16  # struct buffer_data_page: time_stamp, commit, entries
BUF_PAGE_SIZE = PAGE_SIZE - BUF_PAGE_HDR_SIZE
EVENT_HDR_SIZE = 16  # struct ring_buffer_event: len, committed, ts
MIN_PAGES = 2  # a ring's size before tracing first asks for the full one (Linux's minimum)
DEFAULT_SIZE_KB = 1408  # trace_buf_size's default, 1441792 bytes
CLOCKS = ("local", "global", "counter")  # enum trace_clock_id, in order


@dataclass(frozen=True)
class RawRecord:
    ts: int
    cpu: int
    entry: bytes  # the record from its struct trace_entry on


def pages_for(size_kb: int) -> int:
    return max(MIN_PAGES, -(-(size_kb << 10) // BUF_PAGE_SIZE))


class RingBuffer:
    """One struct trace_buffer: a ring per possible CPU, mapped for the machine's CPUs."""

    def __init__(self, machine: Machine, addr: int, slot: int, mapped: list[int] | None = None):
        """addr: the guest's struct trace_buffer; slot: a number no other live buffer of the
        machine has, which places its windows; mapped: the pages each of the slot's windows
        already has (a slot used before keeps them)."""
        self.m = machine
        self.addr = addr
        self.slot = slot
        self.ncpus = len(machine.cpus)
        self.expanded = False
        self._bases = [TRACE_BUFFER_VADDR + (slot * self.ncpus + cpu) * WINDOW for cpu in range(self.ncpus)]
        self._mapped = mapped if mapped is not None else [0] * self.ncpus  # pages backed in each window
        # What trace_pipe consumed of each CPU's ring: (page number, bytes into it)
        self._consumed = [(0, 0)] * self.ncpus
        # The snapshot buffer paired with this one: the guest may trade rings with it
        # (tracing_snapshot_instance), and the bookkeeping here follows on the next look
        self.partner: RingBuffer | None = None
        self._set_pages(MIN_PAGES)

    @property
    def view(self) -> View:
        return self.m.struct("trace_buffer", self.addr)

    def cpu_buffers(self) -> list[View]:
        bufs = self.view.buffers
        return [bufs[cpu] for cpu in range(self.ncpus)]

    # --- size --------------------------------------------------------------------------------

    @property
    def nr_pages(self) -> int:
        return int(self.cpu_buffers()[0].nr_pages)

    def size_kb(self) -> int:
        """buffer_size_kb's number: what the ring holds, as ring_buffer_size() counts it."""
        return (self.nr_pages * BUF_PAGE_SIZE) >> 10

    def resize(self, size_kb: int) -> None:
        """buffer_size_kb: every CPU's ring to hold size_kb (rounded up to whole pages); clears
        the rings. ENOMEM, and nothing changed, when RAM cannot back it."""
        self.sync()
        nr = pages_for(size_kb)
        if nr * PAGE_SIZE > WINDOW:
            raise KlpemuError("Cannot allocate memory", ENOMEM)
        missing = sum(max(0, nr - mapped) for mapped in self._mapped) * PAGE_SIZE
        mem = self.m.mem
        if missing > mem.ram_size - mem.allocated()[-1][1]:
            raise KlpemuError("Cannot allocate memory", ENOMEM)
        self._set_pages(nr)
        self.expanded = True

    def expand(self) -> None:
        """tracing_update_buffers(): the first tracer or event to need the ring gives it its
        full default size."""
        self.sync()
        if not self.expanded:
            self.resize(DEFAULT_SIZE_KB)

    def _set_pages(self, nr: int) -> None:
        mem = self.m.mem
        for cpu, base in enumerate(self._bases):
            have = self._mapped[cpu]
            if nr > have:
                pa = mem.alloc_phys((nr - have) * PAGE_SIZE)
                for i in range(nr - have):
                    mem.map_page(base + (have + i) * PAGE_SIZE, pa + i * PAGE_SIZE, PTE_RW)
                self._mapped[cpu] = nr
        for cpu, rb in enumerate(self.cpu_buffers()):
            rb.pages = self._bases[cpu]
            rb.nr_pages = nr
        self.reset()

    # --- state -------------------------------------------------------------------------------

    @property
    def record_on(self) -> bool:
        return not self.view.record_disabled

    @record_on.setter
    def record_on(self, on: bool) -> None:
        self.view.record_disabled = 0 if on else 1

    @property
    def clock(self) -> str:
        return CLOCKS[self.view.clock]

    @clock.setter
    def clock(self, name: str) -> None:
        self.view.clock = CLOCKS.index(name)
        self.reset()  # stamps of two clocks do not sort together (Linux resets too)

    def reset(self) -> None:
        self.sync()
        for rb in self.cpu_buffers():
            rb.tail = 0
            rb.tail_page = 0
            rb.entries = 0
            rb.overrun = 0
        view = self.view
        view.counter = 0
        view.global_last = 0
        self._consumed = [(0, 0)] * self.ncpus

    def consume(self) -> None:
        """trace_pipe read everything there is: the records are gone from `trace` too."""
        self.sync()
        for cpu, rb in enumerate(self.cpu_buffers()):
            tail = int(rb.tail)
            if tail and rb.tail_page:
                self._consumed[cpu] = (tail - 1, self.m.mem.read_u32(int(rb.tail_page) + 8))

    def swap(self, other: RingBuffer) -> None:
        """The snapshot's swap (update_max_tr) done from the host, as the guest's
        tracing_snapshot_instance does it: the two buffers trade rings, contents and all; each
        keeps its own switches (record_disabled, clock)."""
        self.sync()
        fields = ("pages", "nr_pages", "tail", "tail_page", "entries", "overrun")
        for a, b in zip(self.cpu_buffers(), other.cpu_buffers(), strict=True):
            va = [int(getattr(a, f)) for f in fields]
            vb = [int(getattr(b, f)) for f in fields]
            for f, x, y in zip(fields, va, vb, strict=True):
                setattr(a, f, y)
                setattr(b, f, x)
        self._trade(other)

    def sync(self) -> None:
        """Catch up with swaps the guest made: its rings are the partner's windows now."""
        other = self.partner
        if other is not None and int(self.cpu_buffers()[0].pages) != self._bases[0]:
            self._trade(other)

    def _trade(self, other: RingBuffer) -> None:
        self._bases, other._bases = other._bases, self._bases
        self._mapped, other._mapped = other._mapped, self._mapped
        self.slot, other.slot = other.slot, self.slot
        self.expanded, other.expanded = other.expanded, self.expanded
        self._consumed, other._consumed = other._consumed, self._consumed

    # --- writing from the host -----------------------------------------------------------------

    def _clock(self) -> int:
        view = self.view
        clock = view.clock
        if clock == CLOCKS.index("counter"):
            n = int(view.counter)
            view.counter = n + 1
            return n
        now = self.m.now
        if clock == CLOCKS.index("global"):
            now = max(now, int(view.global_last))
            view.global_last = now
        return now

    def write(self, cpu: int, entry: bytes) -> bool:
        """One record (entry: its struct trace_entry and fields) on CPU cpu's ring, as
        trace_buffer_lock_reserve and trace_buffer_unlock_commit would write it there; the
        guest does not run meanwhile. False when nothing may be recorded."""
        view = self.view
        rb = self.cpu_buffers()[cpu]
        length = (EVENT_HDR_SIZE + len(entry) + 7) & ~7
        if view.record_disabled or rb.record_disabled or not rb.nr_pages or length > BUF_PAGE_SIZE:
            return False
        mem = self.m.mem
        ts = self._clock()
        page = int(rb.tail_page)
        commit = mem.read_u32(page + 8) if page else 0
        if not page or commit + length > BUF_PAGE_SIZE:
            n, nr = int(rb.tail), int(rb.nr_pages)
            page = int(rb.pages) + (n % nr) * PAGE_SIZE
            if n >= nr:
                rb.overrun = int(rb.overrun) + mem.read_u32(page + 12)
            rb.tail = n + 1
            mem.write(page, struct.pack("<QII", ts, 0, 0))
            rb.tail_page = page
            commit = 0
        entries = mem.read_u32(page + 12)
        at = page + BUF_PAGE_HDR_SIZE + commit
        mem.write(at, struct.pack("<IIQ", length, 1, ts) + entry)
        mem.write(page + 8, struct.pack("<II", commit + length, entries + 1))
        rb.entries = int(rb.entries) + 1
        return True

    def entries_written(self) -> int:
        return sum(int(rb.entries) for rb in self.cpu_buffers())

    def overrun(self) -> int:
        return sum(int(rb.overrun) for rb in self.cpu_buffers())

    # --- reading -----------------------------------------------------------------------------

    def cpu_records(self, cpu: int) -> list[RawRecord]:
        """What CPU cpu's ring holds, oldest first; records not yet committed are left out."""
        self.sync()
        rb = self.cpu_buffers()[cpu]
        nr, tail, base = int(rb.nr_pages), int(rb.tail), int(rb.pages)
        out: list[RawRecord] = []
        if not nr:
            return out
        read = self.m.mem.read
        seen_page, seen_off = self._consumed[cpu]
        for n in range(max(0, tail - nr, seen_page), tail):
            page = read(base + (n % nr) * PAGE_SIZE, PAGE_SIZE)
            commit = struct.unpack_from("<I", page, 8)[0]
            off = BUF_PAGE_HDR_SIZE
            end = BUF_PAGE_HDR_SIZE + min(commit, BUF_PAGE_SIZE)
            while off + EVENT_HDR_SIZE <= end:
                length, committed, ts = struct.unpack_from("<IIQ", page, off)
                if length < EVENT_HDR_SIZE or off + length > end:
                    break
                if committed and (n > seen_page or off - BUF_PAGE_HDR_SIZE >= seen_off):
                    out.append(RawRecord(ts, cpu, page[off + EVENT_HDR_SIZE : off + length]))
                off += length
        return out

    def records(self) -> list[RawRecord]:
        """Every CPU's records, merged by timestamp (then CPU), as `trace` shows them."""
        out = [r for cpu in range(self.ncpus) for r in self.cpu_records(cpu)]
        out.sort(key=lambda r: (r.ts, r.cpu))
        return out
