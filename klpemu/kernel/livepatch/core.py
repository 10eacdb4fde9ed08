"""The livepatch core (kernel/livepatch/core.c): checking and initialising a patch, enabling and
disabling it, the list of patches, and the /sys/kernel/livepatch view of them.

The patch, its objects and funcs are guest structs (built by a livepatch module, or from Python
with KlpBuilder); the core fills their internal fields there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ..printk import log_store
from .patch import KlpPatchLayer
from .transition import IDLE, PATCHED, UNPATCHED, Transition

if TYPE_CHECKING:
    from ...machine.machine import Machine

EINVAL, EBUSY, ENOENT = 22, 16, 2
KSYM_NAME_LEN = 512
MODULE_NAME_LEN = 56


class Livepatch:
    def __init__(self, machine: "Machine", patch_layer: KlpPatchLayer):
        self.m = machine
        self.patch_layer = patch_layer
        self.transition = Transition(machine, self)
        self.patches: list[int] = []  # klp_patches, oldest first
        self.names: dict[int, str] = {}
        self.forced: set[int] = set()
        machine.hypercalls[machine.types.enum("HC_KLP_ENABLE_PATCH")] = self._hc_enable

    def _hc_enable(self, patch: int, *_args) -> int:
        """klp_enable_patch from a livepatch module's init: the patch is named after its
        module, which stays pinned (try_module_get) while the patch exists."""
        m = self.m
        mod = m.struct("klp_patch", patch).mod if patch else 0
        if not mod or not m.struct("module", mod).klp:
            return -EINVAL  # not a livepatch module
        self.names[patch] = m.struct("module", mod).name.decode()
        self._module_get(mod, +1)
        try:
            self.enable(patch)
        except KlpemuError as e:
            self._module_get(mod, -1)
            del self.names[patch]
            return -(e.errno or EINVAL)
        return 0

    def _module_get(self, mod: int, delta: int) -> None:
        counter = self.m.struct("module", mod).refcnt
        counter.counter = counter.counter + delta

    # --- walking the guest structs -------------------------------------------------------------

    def name(self, patch: int) -> str:
        return self.names.get(patch, f"patch@{patch:x}")

    def _array(self, addr: int, struct: str, sentinel: str) -> list[int]:
        """The entries of a zero-terminated array (klp_for_each_object_static and friends):
        it ends at the first entry whose `sentinel` member is NULL."""
        size = self.m.types.sizeof(struct)
        out = []
        while addr and getattr(self.m.struct(struct, addr), sentinel):
            out.append(addr)
            addr += size
        return out

    def objects(self, patch: int) -> list[int]:
        return self._array(self.m.struct("klp_patch", patch).objs, "klp_object", "funcs")

    def funcs(self, obj: int) -> list[int]:
        return self._array(self.m.struct("klp_object", obj).funcs, "klp_func", "old_name")

    def all_funcs(self, patch: int) -> list[int]:
        return [f for o in self.objects(patch) for f in self.funcs(o)]

    def object_name(self, obj: int) -> str:
        name = self.m.struct("klp_object", obj).name
        return self.m.mem.read_cstr(name, MODULE_NAME_LEN + 1) if name else "vmlinux"

    def set_enabled(self, patch: int, value: bool) -> None:
        self.m.struct("klp_patch", patch).enabled = int(value)

    def mark_forced(self, patch: int) -> None:
        self.forced.add(patch)

    # --- klp_init_patch ------------------------------------------------------------------------

    def _init_func(self, func: int, obj_name: str) -> None:
        m = self.m
        f = m.struct("klp_func", func)
        old_name = m.mem.read_cstr(f.old_name, KSYM_NAME_LEN + 1)
        if not f.new_func and not f.nop:
            raise KlpemuError(f"new_func of '{old_name}' is NULL", EINVAL)
        if len(old_name) >= KSYM_NAME_LEN:
            raise KlpemuError(f"function name too long: {old_name[:32]}...", EINVAL)
        syms = [s for s in m.image.by_name.get(old_name, []) if s.kind == "func"]
        if not syms:
            raise KlpemuError(f"symbol '{old_name}' not found in symbol table", EINVAL)
        pos = f.old_sympos
        if pos == 0 and len(syms) > 1:
            raise KlpemuError(f"unresolvable ambiguity for symbol '{old_name}' in object '{obj_name}'", EINVAL)
        if pos > len(syms):
            raise KlpemuError(f"symbol position {pos} for symbol '{old_name}' in object '{obj_name}' not found",
                              EINVAL)
        sym = syms[max(pos, 1) - 1]
        f.old_func = sym.addr
        f.old_size = sym.size
        if f.nop:
            f.new_func = sym.addr
            f.new_size = sym.size
        else:
            new = m.image.function_at(f.new_func)
            f.new_size = new.size if new is not None else 0
            if not f.new_size:
                raise KlpemuError(f"size of new function for '{old_name}' unknown", ENOENT)

    def _init_patch(self, patch: int) -> None:
        m = self.m
        if not patch or not m.struct("klp_patch", patch).objs:
            raise KlpemuError("patch or its objects are NULL", EINVAL)
        objects = self.objects(patch)
        if not objects:
            raise KlpemuError("patch has no objects", EINVAL)
        for obj in objects:
            name = self.object_name(obj)
            if name != "vmlinux":
                raise KlpemuError(f"object '{name}': patching modules is not supported yet", EINVAL)
            for func in self.funcs(obj):
                self._init_func(func, name)

    # --- enable and disable --------------------------------------------------------------------

    def enable(self, patch: int) -> None:
        """klp_enable_patch: checks first, so that a failure leaves nothing behind."""
        name = self.name(patch)
        if self.transition.patch is not None:
            raise KlpemuError("another patch is in transition", EBUSY)
        if patch in self.patches:
            raise KlpemuError(f"'{name}' is already enabled", EINVAL)
        self._init_patch(patch)
        log_store(self.m, f"livepatch: enabling patch '{name}'", 5)
        self.patches.append(patch)
        self.transition.init(patch, PATCHED)
        patched: list[int] = []
        try:
            for obj in self.objects(patch):
                for func in self.funcs(obj):
                    self.patch_layer.patch_func(func)
                    patched.append(func)
                self.m.struct("klp_object", obj).patched = 1
        except KlpemuError as e:
            log_store(self.m, f"livepatch: failed to patch object '{self.object_name(obj)}'", 3)
            log_store(self.m, f"livepatch: failed to enable patch '{name}'", 4)
            for func in reversed(patched):
                self.patch_layer.unpatch_func(func)
            self._cancel(patch)
            raise e
        self.transition.start()
        self.set_enabled(patch, True)
        self.transition.try_complete()

    def _cancel(self, patch: int) -> None:
        """klp_cancel_transition before the start: undo as klp_complete_transition would."""
        log_store(self.m, f"livepatch: '{self.name(patch)}': canceling patching transition, going to unpatch", 7)
        for obj in self.objects(patch):
            self.m.struct("klp_object", obj).patched = 0
        for func in self.all_funcs(patch):
            self.m.struct("klp_func", func).transition = 0
        for t in self.transition._tasks():
            t.view.patch_state = IDLE
        log_store(self.m, f"livepatch: '{self.name(patch)}': completing unpatching transition", 7)
        self.transition.target = IDLE
        self.transition.patch = None
        self.patches.remove(patch)
        log_store(self.m, f"livepatch: '{self.name(patch)}': unpatching complete", 5)

    def disable(self, patch: int) -> None:
        """__klp_disable_patch (a 0 written to enabled)."""
        if patch not in self.patches or not self.m.struct("klp_patch", patch).enabled:
            raise KlpemuError(f"'{self.name(patch)}' is not enabled", EINVAL)
        if self.transition.patch is not None:
            raise KlpemuError("another patch is in transition", EBUSY)
        self.transition.init(patch, UNPATCHED)
        self.transition.start()
        self.set_enabled(patch, False)
        self.transition.try_complete()

    def unpatch_objects(self, patch: int) -> None:
        for obj in self.objects(patch):
            for func in self.funcs(obj):
                if self.m.struct("klp_func", func).patched:
                    self.patch_layer.unpatch_func(func)
            self.m.struct("klp_object", obj).patched = 0

    def transition_done(self, patch: int, target: int) -> None:
        if target == UNPATCHED and patch in self.patches:
            self.patches.remove(patch)  # freed: its sysfs directory goes
            mod = self.m.struct("klp_patch", patch).mod
            if mod and patch not in self.forced:  # a forced patch keeps its module for good
                self._module_get(mod, -1)

    # --- sysfs: /sys/kernel/livepatch/<patch>/enabled -------------------------------------------

    def write_enabled(self, patch: int, value: bool) -> None:
        enabled = bool(self.m.struct("klp_patch", patch).enabled)
        if value == enabled:
            raise KlpemuError("enabled already has that value", EINVAL)
        if self.transition.patch == patch:
            self.transition.reverse()
            self.transition.try_complete()
        elif value:
            raise KlpemuError("a disabled patch cannot be re-enabled", EINVAL)
        else:
            self.disable(patch)

    def write_force(self, patch: int, value: bool) -> None:
        if not value:
            return
        if self.transition.patch != patch:
            raise KlpemuError("patch is not in transition", EINVAL)
        self.transition.force()
        self.transition.try_complete()

    def stack_order(self, patch: int) -> int:
        return self.patches.index(patch) + 1
