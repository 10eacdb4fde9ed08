"""Building a livepatch from Python: the same guest structs a livepatch module's C declares.

b = KlpBuilder(kernel.livepatch)
patch = b.patch("livepatch_sample", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])])
kernel.livepatch.enable(patch)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...machine.kstr import kbytes

if TYPE_CHECKING:
    from ...machine.types import Pointer
    from .core import Livepatch


@dataclass
class FuncSpec:
    old_name: str
    new_func: int
    old_sympos: int = 0


@dataclass
class ObjectSpec:
    name: str | None
    funcs: list[FuncSpec]


class KlpBuilder:
    def __init__(self, livepatch: Livepatch):
        self.m = livepatch.m
        self.livepatch = livepatch

    def cstring(self, text: str) -> int:
        data = kbytes(text) + b"\0"
        addr = self.m.heap.kzalloc(len(data))
        self.m.mem.write(addr, data)
        return addr

    def func(self, old_name: str, new_func: str | int, old_sympos: int = 0) -> FuncSpec:
        addr = self.m.image.addr(new_func) if isinstance(new_func, str) else new_func
        return FuncSpec(old_name, addr, old_sympos)

    def object(self, name: str | None, funcs: list[FuncSpec]) -> ObjectSpec:
        return ObjectSpec(name, funcs)

    def patch(
        self,
        name: str,
        objects: list[ObjectSpec],
        replace: bool = False,
        states: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
    ) -> Pointer:
        """A struct klp_patch (with its zero-terminated object, func and state arrays); returns its
        address. `name` is what Linux takes from the module: the patch's sysfs directory.
        `states` are (id, version) pairs."""
        m, t = self.m, self.m.types
        fsize, osize = t.sizeof("klp_func"), t.sizeof("klp_object")
        objs = m.heap.kzalloc(osize * (len(objects) + 1))
        for i, spec in enumerate(objects):
            funcs = m.heap.kzalloc(fsize * (len(spec.funcs) + 1))
            for j, f in enumerate(spec.funcs):
                func = m.ptr("klp_func", funcs + j * fsize)
                func.old_name = self.cstring(f.old_name)
                func.new_func = f.new_func
                func.old_sympos = f.old_sympos
            obj = m.ptr("klp_object", objs + i * osize)
            obj.name = self.cstring(spec.name) if spec.name else 0
            obj.funcs = funcs
        patch = m.ptr("klp_patch", m.heap.kzalloc(t.sizeof("klp_patch")))
        patch.objs = objs
        patch.replace = int(replace)
        if states:
            ssize = t.sizeof("klp_state")
            patch.states = m.heap.kzalloc(ssize * (len(states) + 1))
            for i, (state_id, version) in enumerate(states):
                st = m.ptr("klp_state", patch.states + i * ssize)
                st.id = state_id
                st.version = version
        self.livepatch.name_patch(patch, name)
        return patch
