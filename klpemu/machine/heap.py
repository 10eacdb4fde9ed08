"""Guest memory the host hands out: kmalloc-like data, executable text (trampolines, modules) and
module data.

Structures the host builds for machine code to read (ftrace ops and hashes, klp_ops, private
trampolines) live here, in guest memory, so there is one copy of them. The data region is
writable by the guest; the text region is not (like kernel text, only the host writes it).
The module data region holds loaded modules' data, rodata and struct module: writable, and
16 MiB above the text region, inside the top 2 GiB, so the 32-bit sign-extended and
PC-relative relocations of -mcmodel=kernel code reach it (the kmalloc-like data region at
VMALLOC_START does not).

The data region starts at 1 MiB, which a boot never fills, and grows a mebibyte at a time while
physical memory lasts: a module starting thousands of kernel threads takes their task_structs and
stacks from it (firmware/kernel/fork.c).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from errno import ENOMEM
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .memory import PTE_RW

if TYPE_CHECKING:
    from .memory import GuestMemory

VMALLOC_START = 0xFFFFC90000000000  # data
MODULES_VADDR = 0xFFFFFFFFA0000000  # text: trampolines and modules, within ±2 GiB of the kernel
MODULES_DATA_VADDR = MODULES_VADDR + (16 << 20)  # module data: reachable by 32-bit relocations
DATA_MAX = 1 << 30  # how far the data region may grow
DATA_GROW = 1 << 20
ALIGN = 16


@dataclass
class Region:
    base: int
    size: int
    free: list[tuple[int, int]] = field(default_factory=list)  # (addr, size), sorted by addr

    def __post_init__(self) -> None:
        self.free = [(self.base, self.size)]

    def alloc(self, size: int, align: int = ALIGN) -> int:
        """The lowest free block of size bytes starting at a multiple of align (a power of two)."""
        size = (max(size, 1) + ALIGN - 1) & ~(ALIGN - 1)
        align = max(align, ALIGN)
        for i, (addr, avail) in enumerate(self.free):
            start = (addr + align - 1) & ~(align - 1)
            pad = start - addr
            if avail >= pad + size:
                pieces = [(addr, pad)] if pad else []
                if avail > pad + size:
                    pieces.append((start + size, avail - pad - size))
                self.free[i : i + 1] = pieces
                return start
        raise KlpemuError(f"guest memory region at 0x{self.base:x} is full", ENOMEM)

    def contains(self, addr: int) -> bool:
        return self.base <= addr < self.base + self.size

    def extend(self, size: int) -> None:
        """size more bytes at the region's end, already backed by the caller."""
        end = self.base + self.size
        self.size += size
        if self.free and sum(self.free[-1]) == end:
            self.free[-1] = (self.free[-1][0], self.free[-1][1] + size)
        else:
            self.free.append((end, size))

    def release(self, addr: int, size: int) -> None:
        size = (max(size, 1) + ALIGN - 1) & ~(ALIGN - 1)
        self.free.append((addr, size))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for a, s in self.free:
            if merged and merged[-1][0] + merged[-1][1] == a:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((a, s))
        self.free = merged


class GuestHeap:
    def __init__(
        self, mem: GuestMemory, data_size: int = 1 << 20, text_size: int = 1 << 20, module_data_size: int = 1 << 20
    ):
        self.mem = mem
        mem.map_range(VMALLOC_START, data_size, PTE_RW)
        mem.map_range(MODULES_VADDR, text_size, 0)
        mem.map_range(MODULES_DATA_VADDR, module_data_size, PTE_RW)
        self.data = Region(VMALLOC_START, data_size)
        self.text = Region(MODULES_VADDR, text_size)
        self.module_data = Region(MODULES_DATA_VADDR, module_data_size)
        self._sizes: dict[int, int] = {}

    def kzalloc(self, size: int) -> int:
        addr = self.kmalloc(size)
        self.mem.write(addr, bytes(size))
        return addr

    def kmalloc(self, size: int) -> int:
        """Data memory as its last user left it, the way kmalloc hands it out (no zeroing)."""
        try:
            addr = self.data.alloc(size)
        except KlpemuError:
            self._grow_data(size)
            addr = self.data.alloc(size)
        self._sizes[addr] = size
        return addr

    def _grow_data(self, size: int) -> None:
        grow = -(-(size + ALIGN) // DATA_GROW) * DATA_GROW
        if self.data.size + grow > DATA_MAX:
            raise KlpemuError(f"guest memory region at 0x{self.data.base:x} is full", ENOMEM)
        self.mem.map_range(self.data.base + self.data.size, grow, PTE_RW)  # ENOMEM past the RAM
        self.data.extend(grow)

    def alloc_text(self, size: int, align: int = ALIGN) -> int:
        addr = self.text.alloc(size, align)
        self._sizes[addr] = size
        self.mem.write(addr, b"\xcc" * size)
        return addr

    def alloc_module_data(self, size: int, align: int = ALIGN) -> int:
        """Zeroed, guest-writable memory within reach of -mcmodel=kernel code (module data)."""
        addr = self.module_data.alloc(size, align)
        self._sizes[addr] = size
        self.mem.write(addr, bytes(size))
        return addr

    def free(self, addr: int) -> None:
        size = self._sizes.pop(addr)
        region = next(r for r in (self.text, self.module_data, self.data) if r.contains(addr))
        region.release(addr, size)

    def is_text(self, addr: int) -> bool:
        return self.text.base <= addr < self.text.base + self.text.size
