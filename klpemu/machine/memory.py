"""Guest physical memory and the 4-level page tables that give the kernel its addresses.

With paging on, Unicorn runs kernel addresses at full speed, but its mem_read/mem_write take
physical addresses; this module keeps the virtual-to-physical map the host uses for its own
accesses. Kernel text is mapped read-only, so only the host (the text_poke path) can change it.
"""

from __future__ import annotations

import struct
from errno import EFAULT, ENOMEM

from unicorn import Uc, UcError

from ..errors import KlpemuError
from .kstr import kstr

PAGE_SIZE = 0x1000
PAGE_MASK = ~(PAGE_SIZE - 1)

PTE_PRESENT = 1 << 0
PTE_RW = 1 << 1
PTE_USER = 1 << 2

PT_POOL_START = 0x100000  # physical: page-table pages
PT_POOL_END = 0x400000
ALLOC_START = 0x1000000  # physical: everything else, from 16 MiB up


class GuestMemory:
    def __init__(self, uc: Uc, ram_size: int):
        self.uc = uc
        self.ram_size = ram_size
        uc.mem_map(0, ram_size)
        self._pt_next = PT_POOL_START
        self._alloc_next = ALLOC_START
        self.pml4 = self._alloc_table()
        self._pages: dict[int, tuple[int, int]] = {}  # virtual page -> (physical page, pte flags)
        self._leaf_tables: dict[int, int] = {}  # va >> 21 -> the page table mapping it

    # --- physical allocation and page tables ----------------------------------------------------

    def _alloc_table(self) -> int:
        if self._pt_next >= PT_POOL_END:
            raise KlpemuError("out of page-table pages", ENOMEM)
        pa = self._pt_next
        self._pt_next += PAGE_SIZE
        return pa

    def alloc_phys(self, size: int) -> int:
        size = (size + PAGE_SIZE - 1) & PAGE_MASK
        if self._alloc_next + size > self.ram_size:
            raise KlpemuError("guest out of physical memory", ENOMEM)
        pa = self._alloc_next
        self._alloc_next += size
        return pa

    def map_page(self, va: int, pa: int, flags: int) -> None:
        # The page table of each 2 MiB the host has mapped into, kept: a range maps page after
        # page into the same one, without walking the upper levels again.
        table = self._leaf_tables.get(va >> 21)
        if table is None:
            table = self.pml4
            for shift in (39, 30, 21):
                slot = table + ((va >> shift) & 511) * 8
                entry = struct.unpack("<Q", self.uc.mem_read(slot, 8))[0]
                if not entry & PTE_PRESENT:
                    nxt = self._alloc_table()
                    entry = nxt | PTE_PRESENT | PTE_RW | PTE_USER  # the leaf decides the rights
                    self.uc.mem_write(slot, struct.pack("<Q", entry))
                table = entry & 0x000FFFFFFFFFF000
            self._leaf_tables[va >> 21] = table
        self.uc.mem_write(table + ((va >> 12) & 511) * 8, struct.pack("<Q", pa | flags | PTE_PRESENT))
        self._pages[va & PAGE_MASK] = (pa, flags | PTE_PRESENT)

    def map_range(self, va: int, size: int, flags: int, data: bytes = b"") -> int:
        """Back [va, va+size) with fresh physical pages, copy data to its start; returns the physical base."""
        start = va & PAGE_MASK
        npages = (va + size - start + PAGE_SIZE - 1) // PAGE_SIZE
        pa = self.alloc_phys(npages * PAGE_SIZE)
        for i in range(npages):
            self.map_page(start + i * PAGE_SIZE, pa + i * PAGE_SIZE, flags)
        if data:
            self.uc.mem_write(pa + (va - start), data)
        return pa

    def allocated(self) -> list[tuple[int, int]]:
        """The physical ranges handed out so far, as [start, end): no mapping reaches the rest of
        RAM, so it still holds the zeroes it was mapped with."""
        return [(PT_POOL_START, self._pt_next), (ALLOC_START, self._alloc_next)]

    def is_mapped(self, va: int) -> bool:
        return (va & PAGE_MASK) in self._pages

    def page_flags(self, va: int) -> int:
        return self._pages.get(va & PAGE_MASK, (0, 0))[1]

    def mapped_pages(self) -> list[tuple[int, int, int]]:
        """Every mapped virtual page as (virtual, physical, pte flags), by address."""
        return sorted((va, pa, flags) for va, (pa, flags) in self._pages.items())

    # --- virtual access, as the host sees guest memory ------------------------------------------

    def phys(self, va: int) -> int:
        try:
            return self._pages[va & PAGE_MASK][0] + (va & (PAGE_SIZE - 1))
        except KeyError:
            raise KlpemuError(f"guest address 0x{va:x} is not mapped", EFAULT) from None

    def read(self, va: int, size: int) -> bytes:
        offset = va & (PAGE_SIZE - 1)
        if offset + size <= PAGE_SIZE:  # within one page: most reads, a member or a record
            try:
                return bytes(self.uc.mem_read(self._pages[va - offset][0] + offset, size))
            except KeyError:
                raise KlpemuError(f"guest address 0x{va:x} is not mapped", EFAULT) from None
        out = bytearray()
        while size > 0:
            chunk = min(size, PAGE_SIZE - (va & (PAGE_SIZE - 1)))
            out += self.uc.mem_read(self.phys(va), chunk)
            va += chunk
            size -= chunk
        return bytes(out)

    def write(self, va: int, data: bytes) -> None:
        """Host write, bypassing page protections. Code writes must also invalidate translations."""
        pos = 0
        while pos < len(data):
            chunk = min(len(data) - pos, PAGE_SIZE - ((va + pos) & (PAGE_SIZE - 1)))
            self.uc.mem_write(self.phys(va + pos), bytes(data[pos : pos + chunk]))
            pos += chunk

    def read_u64(self, va: int) -> int:
        return struct.unpack("<Q", self.read(va, 8))[0]

    def read_u32(self, va: int) -> int:
        return struct.unpack("<I", self.read(va, 4))[0]

    def write_u64(self, va: int, value: int) -> None:
        self.write(va, struct.pack("<Q", value & (2**64 - 1)))

    def read_cbytes(self, va: int, limit: int = 4096) -> bytes:
        """A C string's bytes, without its NUL; at most limit, and none past unmapped memory."""
        data = self.read(va, limit) if self.is_mapped(va + limit - 1) else self._read_until_unmapped(va, limit)
        return data.split(b"\0", 1)[0]

    def read_cstr(self, va: int, limit: int = 4096) -> str:
        """A C string as host text (kstr: never fails, shows bytes that are not UTF-8 as \\xNN)."""
        return kstr(self.read_cbytes(va, limit))

    def _read_until_unmapped(self, va: int, limit: int) -> bytes:
        out = b""
        while limit > 0 and self.is_mapped(va):
            chunk = min(limit, PAGE_SIZE - (va & (PAGE_SIZE - 1)))
            out += self.read(va, chunk)
            if b"\0" in out:
                break
            va += chunk
            limit -= chunk
        return out

    def try_read_u64(self, va: int) -> int | None:
        """A read that may fail, as copy_from_kernel_nofault: None for an unmapped address."""
        if not (self.is_mapped(va) and self.is_mapped(va + 7)):
            return None
        try:
            return self.read_u64(va)
        except UcError:
            return None
