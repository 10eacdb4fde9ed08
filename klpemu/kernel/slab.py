"""kmalloc and kfree for the guest (mm/slab_common.c): objects from the machine's data heap.

The guest's kmalloc and kfree are one hypercall each. The host keeps the size of every live object,
so a kfree of something kmalloc never returned, or of an object already freed, is caught where it
happens: the machine stops with an oops naming the pointer, as a slab debugging kernel would. Freed
objects are poisoned (SLUB's POISON_FREE), so a use after free reads 0x6b bytes, not stale data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import KlpemuError

if TYPE_CHECKING:
    from ..machine.machine import Machine

POISON_FREE = 0x6B


class Slab:
    def __init__(self, machine: Machine):
        self.m = machine
        self.objects: dict[int, int] = {}  # live kmalloc objects: address -> size
        self._freed: set[int] = set()  # freed and not handed out again: a second kfree is a double free
        machine.hypercalls.register("HC_KMALLOC", self._hc_kmalloc)
        machine.hypercalls.register("HC_KFREE", self._hc_kfree)

    def _hc_kmalloc(self, size: int, gfp: int, *_unused: int) -> int:
        try:
            addr = self.m.heap.kmalloc(size)
        except KlpemuError:  # the heap is full: kmalloc fails with NULL, as under memory pressure
            return 0
        self.objects[addr] = size
        self._freed.discard(addr)
        return addr

    def _hc_kfree(self, ptr: int, *_unused: int) -> int:
        size = self.objects.pop(ptr, None)
        if size is None:
            self.m.stop_in_hypercall(self._bad_free(ptr))
            return 0
        self.m.mem.write(ptr, bytes([POISON_FREE]) * size)
        self.m.heap.free(ptr)
        self._freed.add(ptr)
        return 0

    def _bad_free(self, ptr: int) -> str:
        if ptr in self._freed:
            return f"BUG: double kfree() of 0x{ptr:x}: the object was already freed"
        inside = next((a for a, n in self.objects.items() if a < ptr < a + n), None)
        if inside is not None:
            return (
                f"BUG: kfree() of 0x{ptr:x}: not the start of an object "
                f"(inside the {self.objects[inside]}-byte object at 0x{inside:x})"
            )
        return f"BUG: kfree() of 0x{ptr:x}: not an object kmalloc() returned"
