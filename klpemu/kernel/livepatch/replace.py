"""Atomic replace (kernel/livepatch/core.c: klp_add_nops, klp_discard_nops): a replacing patch
gets a nop func for every function an installed patch changes and it does not, so that during
its transition each task runs what its state says, and afterwards the original code.

The nop funcs and the objects made to hold them are guest structs on the kernel heap, like
Linux's dynamic ones; which patch and object own them is kept here, in the order they were
added (after the static ones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import Pointer
    from .core import Livepatch


def _same_sympos(a: int, b: int) -> bool:
    """0 (the only one) and 1 (the first) name the same symbol when it is unique."""
    return a == b or {a, b} == {0, 1}


class Nops:
    def __init__(self, machine: Machine, lp: Livepatch):
        self.m = machine
        self.lp = lp
        self._objects: dict[int, list[Pointer]] = {}  # patch -> its dynamic klp_objects
        self._funcs: dict[int, list[Pointer]] = {}  # klp_object -> its nop klp_funcs

    def objects(self, patch: Pointer) -> list[Pointer]:
        return list(self._objects.get(patch, []))

    def funcs(self, obj: Pointer) -> list[Pointer]:
        return list(self._funcs.get(obj, []))

    def _cstring(self, addr: int, limit: int) -> int:
        """kstrdup: the dynamic structs must not point into a module that may go first."""
        if not addr:
            return 0
        data = self.m.mem.read_cbytes(addr, limit) + b"\0"
        copy = self.m.heap.kzalloc(len(data))
        self.m.mem.write(copy, data)
        return copy

    def _find_object(self, patch: Pointer, name: str) -> Pointer | None:
        return next((o for o in self.lp.objects(patch) if self.lp.object_name(o) == name), None)

    def _has_func(self, obj: Pointer, old_name: str, old_sympos: int) -> bool:
        return any(
            self.lp.func_name(f) == old_name and _same_sympos(f.old_sympos, old_sympos) for f in self.lp.funcs(obj)
        )

    def add(self, patch: Pointer) -> None:
        """klp_add_nops: for each object and func of every installed patch."""
        m = self.m
        for old_patch in self.lp.patches:
            for old_obj in self.lp.objects(old_patch):
                name = self.lp.object_name(old_obj)
                obj = self._find_object(patch, name)
                if obj is None:
                    obj = m.ptr("klp_object", m.heap.kzalloc(m.types.sizeof("klp_object")))
                    obj.name = self._cstring(old_obj.name, 64)
                    obj.dynamic = 1
                    self._objects.setdefault(patch, []).append(obj)
                for old_func in self.lp.funcs(old_obj):
                    if self._has_func(obj, self.lp.func_name(old_func), old_func.old_sympos):
                        continue
                    func = m.ptr("klp_func", m.heap.kzalloc(m.types.sizeof("klp_func")))
                    func.old_name = self._cstring(old_func.old_name, 512)
                    func.old_sympos = old_func.old_sympos
                    func.nop = 1
                    self._funcs.setdefault(obj, []).append(func)

    def free(self, patch: Pointer) -> None:
        """klp_free_objects_dynamic: the nop funcs, then the objects made for them."""
        m = self.m
        for obj in self.lp.objects(patch):
            for func in self._funcs.pop(obj, []):
                m.heap.free(func.old_name)
                m.heap.free(func)
        for obj in self._objects.pop(patch, []):
            name = obj.name
            if name:
                m.heap.free(name)
            m.heap.free(obj)

    def discard(self, patch: Pointer) -> None:
        """klp_discard_nops: once the replaced patches are gone, the nops have nothing to hide."""
        self.lp.unpatch_objects(patch, nops_only=True)
        self.free(patch)
