"""The livepatch core (kernel/livepatch/core.c): checking and initialising a patch, enabling and
disabling it, the objects of modules that come and go, and the list of patches.

The patch, its objects and funcs are guest structs (built by a livepatch module, or from Python
with KlpBuilder); the core fills their internal fields there, keeps klp_patches and
klp_transition_patch in guest memory, and has the guest run the object callbacks (guestcall.py).
The operations that may need a callback are generators; `enable`, `disable` and the sysfs
writes run them from host context.
"""

from __future__ import annotations

from errno import EBUSY, EEXIST, EINVAL, ENODEV, ENOENT
from typing import TYPE_CHECKING

from ...abi import MODULE_NAME_LEN
from ...errors import KlpemuError
from ...machine.kstr import kstr
from ...machine.types import Pointer
from ..guestlist import GuestList
from ..kobject import kobject_name
from ..printk import LogLevel, log_store
from . import callbacks
from .guestcall import CallbackGen, GuestCalls
from .models import check_model, kpatch_log
from .patch import KlpPatchLayer
from .relocs import KlpRelocs
from .replace import Nops
from .state import is_patch_compatible
from .transition import PATCHED, UNPATCHED, Transition

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..module import Module, Modules

KSYM_NAME_LEN = 512


class Livepatch:
    def __init__(self, machine: Machine, patch_layer: KlpPatchLayer, modules: Modules):
        self.m = machine
        self.patch_layer = patch_layer
        self.modules = modules
        self.calls = GuestCalls(machine)
        self.transition = Transition(machine, self)
        self.nops = Nops(machine, self)
        self.relocs = KlpRelocs(machine, self)
        self.names: dict[int, str] = {}  # patches built from Python, which have no module
        self.list = GuestList(machine.mem)
        self._head = machine.var_addr("klp_patches")
        self._list_off = machine.types.offsetof("klp_patch", "list")
        machine.hypercalls.register("HC_KLP_ENABLE_PATCH", self._hc_enable)
        modules.add_notifier(self.module_coming, self.module_going)

    def set_consistency_model(self, model: str, stack_check: bool = True) -> None:
        """The model the next transitions follow (and, for debugging, whether linux's checks
        stacks); not while one is under way, which began under the model it has."""
        if self.transition.patch is not None:
            raise KlpemuError("a transition is under way", EBUSY)
        self.transition.model = check_model(model)
        self.transition.check_stacks = stack_check
        self.m.config.consistency_model = model
        self.m.config.klp_stack_check = stack_check

    def name_patch(self, patch: Pointer, name: str) -> None:
        """The name of a patch built from Python, which has no module to take it from."""
        self.names[patch] = name

    def log(self, text: str, level: int) -> None:
        log_store(self.m, f"livepatch: {text}", level)

    # --- klp_patches, in guest memory ------------------------------------------------------------

    @property
    def patches(self) -> list[Pointer]:
        """klp_patches, oldest first: every patch from its init until it is freed."""
        return list(self.m.list_for_each_entry("klp_patch", self._head, "list"))

    def _add_patch(self, patch: Pointer) -> None:
        self.list.add_tail(patch + self._list_off, self._head)

    def _free_patch(self, patch: Pointer) -> None:
        """klp_free_patch: off the list (its sysfs directory goes), its nops freed, its module
        reference dropped unless it was ever forced."""
        self.list.delete(patch + self._list_off)
        self.nops.free(patch)
        for obj in self.objects(patch):
            self._free_object_loaded(obj)
        if patch.mod and not patch.forced:
            self._module_get(patch.mod, -1)

    def _module_get(self, mod: Pointer, delta: int) -> None:
        counter = mod.refcnt
        counter.counter = counter.counter + delta

    # --- walking the guest structs -------------------------------------------------------------

    def name(self, patch: Pointer) -> str:
        mod = patch.mod
        if mod:
            return kstr(mod.name)
        return self.names.get(patch, f"patch@{patch:x}")

    def _array(self, addr: int, struct: str, *members: str) -> list[Pointer]:
        """The entries of a zero-terminated array (klp_for_each_object_static and friends):
        it ends at the first entry whose `members` are all zero."""
        size = self.m.types.sizeof(struct)
        out = []
        while addr:
            entry = self.m.ptr(struct, addr)
            if not any(getattr(entry, member) for member in members):
                break
            out.append(entry)
            addr += size
        return out

    def static_objects(self, patch: Pointer) -> list[Pointer]:
        return self._array(patch.objs, "klp_object", "funcs", "name")

    def objects(self, patch: Pointer) -> list[Pointer]:
        """klp_for_each_object: the static ones in order, then those atomic replace added."""
        return self.static_objects(patch) + self.nops.objects(patch)

    def funcs(self, obj: Pointer) -> list[Pointer]:
        static = [] if obj.dynamic else self._array(obj.funcs, "klp_func", "old_name", "new_func", "old_sympos")
        return static + self.nops.funcs(obj)

    def all_funcs(self, patch: Pointer) -> list[Pointer]:
        return [f for o in self.objects(patch) for f in self.funcs(o)]

    def object_name(self, obj: Pointer) -> str:
        name = obj.name
        return self.m.mem.read_cstr(name, MODULE_NAME_LEN + 1) if name else "vmlinux"

    def is_module(self, obj: Pointer) -> bool:
        return bool(obj.name)

    def is_object_loaded(self, obj: Pointer) -> bool:
        return not self.is_module(obj) or bool(obj.mod)

    def func_name(self, func: Pointer) -> str:
        return self.m.mem.read_cstr(func.old_name, KSYM_NAME_LEN + 1)

    def set_enabled(self, patch: Pointer, value: bool) -> None:
        patch.enabled = int(value)

    # --- klp_init_patch ------------------------------------------------------------------------

    def _check_func(self, func: Pointer) -> None:
        """klp_init_func's checks, made for every func before anything is touched."""
        f = func
        if not f.old_name:
            raise KlpemuError("a func has no old_name", EINVAL)
        old_name = self.func_name(func)
        if not f.new_func and not f.nop:
            raise KlpemuError(f"new_func of '{old_name}' is NULL", EINVAL)
        if len(old_name) >= KSYM_NAME_LEN:
            raise KlpemuError(f"function name too long: {old_name[:32]}...", EINVAL)

    def _find_object_module(self, obj: Pointer) -> None:
        """klp_find_object_module: a module object is loaded if its module is, and may be patched."""
        if not self.is_module(obj):
            return
        mod = self.modules.find(self.object_name(obj))
        if mod is not None and mod.struct.klp_alive:
            obj.mod = mod.addr

    def _init_object_loaded(self, patch: Pointer, obj: Pointer) -> None:
        """klp_init_object_loaded: a module object's klp relocations (vmlinux's were written when
        the patch module was loaded), then each func's address and both sizes, from kallsyms."""
        m = self.m
        objname = self.object_name(obj)
        if self.is_module(obj):
            self.relocs.apply_object_relocs(patch, obj)
        for func in self.funcs(obj):
            f = func
            old_name = self.func_name(func)
            sym = self.find_object_symbol(objname, old_name, f.old_sympos)
            f.old_func = sym.addr
            f.old_size = sym.size
            if f.nop:
                f.new_func = sym.addr
                f.new_size = sym.size
                continue
            new = m.image.function_at(f.new_func)
            f.new_size = new.size if new is not None else 0
            if not f.new_size:
                self.log(f"kallsyms size lookup failed for '{old_name}' replacement", LogLevel.ERR)
                raise KlpemuError(f"kallsyms size lookup failed for '{old_name}' replacement", ENOENT)

    def find_object_symbol(self, objname: str, name: str, sympos: int):
        """klp_find_object_symbol, with its pr_err lines: kallsyms counts every symbol of the
        kernel (data too), and for vmlinux the object's name is NULL, which one line prints."""
        if objname == "vmlinux":
            syms = [s for s in self.m.image.by_name.get(name, []) if s.addr >> 63]
        else:
            mod = self.modules.find(objname)
            syms = mod.kallsyms.by_name.get(name, []) if mod is not None and mod.kallsyms is not None else []
        message = None
        if not syms:
            message = f"symbol '{name}' not found in symbol table"
        elif sympos == 0 and len(syms) > 1:
            shown = "(null)" if objname == "vmlinux" else objname
            message = f"unresolvable ambiguity for symbol '{name}' in object '{shown}'"
        elif sympos > len(syms):
            message = f"symbol position {sympos} for symbol '{name}' in object '{objname}' not found"
        if message:
            self.log(message, LogLevel.ERR)
            raise KlpemuError(message, EINVAL)
        return syms[max(sympos, 1) - 1]

    def _free_object_loaded(self, obj: Pointer) -> None:
        """klp_free_object_loaded: a module object forgets its module and the addresses in it."""
        view = obj
        if not view.name:
            return
        view.mod = 0
        for func in self.funcs(obj):
            f = func
            f.old_func = 0
            if f.nop:
                f.new_func = 0

    def _sysfs_add(self, names: set[str], path: str) -> None:
        """kobject_add: a second entry of the same name in one directory is refused."""
        if path in names:
            log_store(self.m, f"sysfs: cannot create duplicate filename '{path}'", LogLevel.WARNING)
            leaf = path.rsplit("/", 1)[1]
            log_store(
                self.m,
                f"kobject: kobject_add_internal failed for {leaf} with -EEXIST, don't try to "
                "register things with the same name in the same directory.",
                LogLevel.ERR,
            )
            raise KlpemuError(f"cannot create duplicate filename '{path}'", EEXIST)
        names.add(path)

    def _init_patch(self, patch: Pointer) -> None:
        """klp_init_patch: the nops of atomic replace, then object by object its checks, its sysfs
        names and, if it is loaded, its addresses. On failure everything it set up is undone."""
        if patch.replace:
            self.nops.add(patch)
        names: set[str] = set()
        try:
            for obj in self.objects(patch):
                objname = self.object_name(obj)
                if self.is_module(obj) and len(objname) >= MODULE_NAME_LEN:
                    raise KlpemuError(f"object name too long: {objname}", EINVAL)
                self._find_object_module(obj)
                objdir = f"/kernel/livepatch/{kobject_name(self.name(patch))}/{kobject_name(objname)}"
                self._sysfs_add(names, objdir)
                for func in self.funcs(obj):
                    self._check_func(func)
                    sympos = func.old_sympos
                    self._sysfs_add(names, f"{objdir}/{kobject_name(self.func_name(func))},{sympos or 1}")
                if self.is_object_loaded(obj):
                    self._init_object_loaded(patch, obj)
        except KlpemuError:
            for obj in self.objects(patch):
                self.relocs.clear_object_relocs(patch, obj)
                self._free_object_loaded(obj)
            self.nops.free(patch)
            raise

    # --- klp_enable_patch ----------------------------------------------------------------------

    def _hc_enable(self, patch: Pointer, *_args) -> int:
        """klp_enable_patch from a livepatch module's init; the callbacks run in the guest."""
        return self.calls.start_in_guest(self._enable_from_module(self.m.ptr("klp_patch", patch)))

    def _enable_from_module(self, patch: Pointer) -> CallbackGen:
        mod = patch.mod
        if not mod or not patch.objs:
            return -EINVAL
        if not mod.klp:
            self.log(f"module {self.name(patch)} is not marked as a livepatch module", LogLevel.ERR)
            return -EINVAL
        try:
            yield from self._enable(patch)
        except KlpemuError as e:
            return -(e.errno or EINVAL)
        return 0

    def enable(self, patch: Pointer) -> None:
        """klp_enable_patch from host context (a patch built in Python, say)."""
        self.calls.run(self._enable(patch))

    def _enable(self, patch: Pointer) -> CallbackGen:
        """klp_enable_patch: every check before anything changes; then __klp_enable_patch."""
        m = self.m
        if not patch or not patch.objs:
            raise KlpemuError("patch or its objects are NULL", EINVAL)
        if any(not obj.funcs for obj in self.static_objects(patch)):
            raise KlpemuError("an object has no funcs", EINVAL)  # klp_init_patch_early
        if patch in self.patches:
            raise KlpemuError(f"'{self.name(patch)}' is already enabled", EINVAL)
        name = self.name(patch)
        if not is_patch_compatible(m, patch, self.patches):
            message = f"Livepatch patch ({name}) is not compatible with the already installed livepatches."
            self.log(message, LogLevel.ERR)
            raise KlpemuError(message, EINVAL)
        mod = patch.mod
        if mod and mod.state == m.types.enum("MODULE_STATE_GOING"):
            raise KlpemuError(f"module of '{name}' is going away", ENODEV)  # try_module_get
        self._init_patch(patch)
        if mod:
            self._module_get(mod, +1)
        self._add_patch(patch)
        try:
            return (yield from self._enable_patch(patch))
        except KlpemuError:
            self._free_patch(patch)
            raise

    def _enable_patch(self, patch: Pointer) -> CallbackGen:
        """__klp_enable_patch."""
        if self.transition.patch is not None:
            raise KlpemuError("another patch is in transition", EBUSY)
        name = self.name(patch)
        self.log(f"enabling patch '{name}'", LogLevel.NOTICE)
        self.transition.init(patch, PATCHED)
        for obj in self.objects(patch):
            if not self.is_object_loaded(obj):
                continue
            ret = yield from callbacks.pre_patch(self.m, obj)
            error = None
            if ret:
                self.log(f"pre-patch callback failed for object '{self.object_name(obj)}'", LogLevel.WARNING)
                error = KlpemuError(f"pre-patch callback failed for object '{self.object_name(obj)}'", -ret)
            else:
                try:
                    self.patch_object(obj)
                except KlpemuError as e:
                    self.log(f"failed to patch object '{self.object_name(obj)}'", LogLevel.WARNING)
                    error = e
            if error is not None:
                self.log(f"failed to enable patch '{name}'", LogLevel.WARNING)
                yield from self.transition.cancel()
                raise error
        if self.transition.model == "stop_machine":
            return (yield from self._stop_machine_enable(patch))
        self.transition.start()
        self.set_enabled(patch, True)
        yield from self.transition.try_complete()
        return 0

    def _stop_machine_enable(self, patch: Pointer) -> CallbackGen:
        """kpatch_register: the funcs are in place (each task still runs the old code); under
        stop_machine every stack is checked and all switch at once, or nothing stays."""
        if not self.transition.stop_machine_check():
            yield from self.transition.cancel()
            raise KlpemuError("activeness safety check failed", EBUSY)
        self.transition.switch_all("stop_machine")
        self.set_enabled(patch, True)
        yield from self.transition.complete()
        self.transition_done(patch)
        kpatch_log(self.m, f"loaded patch module '{self.name(patch)}'")
        return 0

    # --- objects -------------------------------------------------------------------------------

    def patch_object(self, obj: Pointer) -> None:
        """klp_patch_object: every func on its stack, or none. The sites of all its functions
        change in one text_poke batch (no code runs between its registrations)."""
        done: list[Pointer] = []
        with self.patch_layer.ftrace.batched_update():
            try:
                for func in self.funcs(obj):
                    self.patch_layer.patch_func(func)
                    done.append(func)
            except KlpemuError:
                for func in reversed(done):
                    self.patch_layer.unpatch_func(func)
                raise
        obj.patched = 1

    def unpatch_object(self, obj: Pointer, nops_only: bool = False) -> None:
        with self.patch_layer.ftrace.batched_update():
            for func in self.funcs(obj):
                f = func
                if f.patched and (f.nop or not nops_only):
                    self.patch_layer.unpatch_func(func)
        if not nops_only or obj.dynamic:
            obj.patched = 0

    def unpatch_objects(self, patch: Pointer, nops_only: bool = False) -> None:
        with self.patch_layer.ftrace.batched_update():
            for obj in self.objects(patch):
                if obj.patched:
                    self.unpatch_object(obj, nops_only)

    # --- disable -------------------------------------------------------------------------------

    def disable(self, patch: Pointer) -> None:
        self.calls.run(self._disable(patch))

    def _disable(self, patch: Pointer) -> CallbackGen:
        """__klp_disable_patch (a 0 written to enabled)."""
        if patch not in self.patches or not patch.enabled:
            raise KlpemuError(f"'{self.name(patch)}' is not enabled", EINVAL)
        if self.transition.patch is not None:
            raise KlpemuError("another patch is in transition", EBUSY)
        self.transition.init(patch, UNPATCHED)
        if self.transition.model == "stop_machine" and not self.transition.stop_machine_check():
            self.transition.abandon()  # kpatch_unregister: the patch stays as it was
            raise KlpemuError("activeness safety check failed", EBUSY)
        for obj in self.objects(patch):
            if obj.patched:
                yield from callbacks.pre_unpatch(self.m, obj)
        if self.transition.model == "stop_machine":
            self.transition.switch_all("stop_machine")
            self.set_enabled(patch, False)
            name = self.name(patch)
            yield from self.transition.complete()
            self.transition_done(patch)
            kpatch_log(self.m, f"unloaded patch module '{name}'")
            return 0
        self.transition.start()
        self.set_enabled(patch, False)
        yield from self.transition.try_complete()
        return 0

    def transition_done(self, patch: Pointer) -> None:
        """After klp_complete_transition: a disabled patch is freed, or the patches a replacing
        one has replaced are."""
        if not patch.enabled:
            self._free_patch(patch)
        elif patch.replace:
            for old in self.patches:
                if old == patch:
                    break
                self._free_patch(old)

    # --- modules coming and going --------------------------------------------------------------

    def module_coming(self, mod: Module) -> None:
        self.calls.run(self._module_coming(mod))

    def _module_coming(self, mod: Module) -> CallbackGen:
        """klp_module_coming: patch the new module with every patch that has an object for it."""
        m = self.m
        view = mod.struct
        view.klp_alive = 1
        for patch in self.patches:
            for obj in self.objects(patch):
                if not self.is_module(obj) or self.object_name(obj) != mod.name:
                    continue
                pname = self.name(patch)
                obj.mod = mod.addr
                try:
                    self._init_object_loaded(patch, obj)
                except KlpemuError as e:
                    self.log(
                        f"failed to initialize patch '{pname}' for module '{mod.name}' (-{e.errno})", LogLevel.WARNING
                    )
                    yield from self._refuse_module(mod, patch, obj, e)
                self.log(f"applying patch '{pname}' to loading module '{mod.name}'", LogLevel.NOTICE)
                ret = yield from callbacks.pre_patch(m, obj)
                if ret:
                    self.log(f"pre-patch callback failed for object '{mod.name}'", LogLevel.WARNING)
                    yield from self._refuse_module(mod, patch, obj, KlpemuError("pre-patch callback failed", -ret))
                try:
                    self.patch_object(obj)
                except KlpemuError as e:
                    self.log(f"failed to apply patch '{pname}' to module '{mod.name}' (-{e.errno})", LogLevel.WARNING)
                    yield from callbacks.post_unpatch(m, obj)
                    yield from self._refuse_module(mod, patch, obj, e)
                if patch != self.transition.patch:
                    yield from callbacks.post_patch(m, obj)
                break
        return 0

    def _refuse_module(self, mod: Module, patch: Pointer, obj: Pointer, error: KlpemuError) -> CallbackGen:
        self.log(
            f"patch '{self.name(patch)}' failed for module '{mod.name}', refusing to load module '{mod.name}'",
            LogLevel.WARNING,
        )
        mod.struct.klp_alive = 0
        # Linux leaves the relocations written here; the module could then never load again.
        self.relocs.clear_object_relocs(patch, obj)
        self._free_object_loaded(obj)
        yield from self._cleanup_module_patches(mod, limit=patch)
        raise error

    def module_going(self, mod: Module) -> None:
        self.calls.run(self._module_going(mod))

    def _module_going(self, mod: Module) -> CallbackGen:
        """klp_module_going: every patch lets go of the module's object."""
        mod.struct.klp_alive = 0
        yield from self._revert_own_patches(mod)
        yield from self._cleanup_module_patches(mod, limit=None)
        return 0

    def _revert_own_patches(self, mod: Module) -> CallbackGen:
        """A module going with its own patch still registered can only be one whose init failed
        after klp_enable_patch: the patch lives in memory about to be freed. Linux keeps it (a
        use-after-free); we take it down as if it had never been enabled."""
        for patch in self.patches:
            if patch.mod != mod.addr:
                continue
            name = self.name(patch)
            self.log(f"'{name}': module init failed after klp_enable_patch(), reverting the patch", LogLevel.WARNING)
            if self.transition.patch is None:
                self.transition.init(patch, UNPATCHED)
                for obj in self.objects(patch):
                    if obj.patched:
                        yield from callbacks.pre_unpatch(self.m, obj)
            elif self.transition.patch != patch:
                # Another patch in transition (started from the host while init ran): ours is off
                # its stacks at once, since its code goes with the module, consistency or not.
                for obj in self.objects(patch):
                    if obj.patched:
                        yield from callbacks.pre_unpatch(self.m, obj)
                self.set_enabled(patch, False)
                self.unpatch_objects(patch)
                for obj in self.objects(patch):
                    if self.is_object_loaded(obj):
                        yield from callbacks.post_unpatch(self.m, obj)
                self._free_patch(patch)
                continue
            self.transition.target = UNPATCHED
            self.set_enabled(patch, False)
            yield from self.transition.complete()
            self._free_patch(patch)
        return 0

    def _cleanup_module_patches(self, mod: Module, limit: Pointer | None) -> CallbackGen:
        """klp_cleanup_module_patches_limited: the patches before `limit` (all if None)."""
        m = self.m
        for patch in self.patches:
            if patch == limit:
                break
            for obj in self.objects(patch):
                if not self.is_module(obj) or self.object_name(obj) != mod.name:
                    continue
                if not obj.mod:
                    break
                if patch != self.transition.patch:
                    yield from callbacks.pre_unpatch(m, obj)
                self.log(f"reverting patch '{self.name(patch)}' on unloading module '{mod.name}'", LogLevel.NOTICE)
                if obj.patched:
                    self.unpatch_object(obj)
                yield from callbacks.post_unpatch(m, obj)
                self.relocs.clear_object_relocs(patch, obj)
                self._free_object_loaded(obj)
                break
        return 0

    # --- sysfs: /sys/kernel/livepatch/<patch>/enabled and force --------------------------------

    def write_enabled(self, patch: Pointer, value: bool) -> None:
        self.calls.run(self._write_enabled(patch, value))

    def _write_enabled(self, patch: Pointer, value: bool) -> CallbackGen:
        """enabled_store."""
        enabled = bool(patch.enabled)
        if value == enabled:
            raise KlpemuError("enabled already has that value", EINVAL)
        if self.transition.patch == patch:
            self.transition.reverse()  # the queued retry carries on, towards the new target
        elif value:
            raise KlpemuError("a disabled patch cannot be re-enabled", EINVAL)
        else:
            yield from self._disable(patch)
        return 0

    def write_force(self, patch: Pointer, value: bool) -> None:
        """force_store: the remaining tasks switch now; the transition completes at the next
        attempt of the queued retry, within a second."""
        if not value:
            return
        if self.transition.patch != patch:
            raise KlpemuError("patch is not in transition", EINVAL)
        self.transition.force()

    def stack_order(self, patch: Pointer) -> int:
        return self.patches.index(patch) + 1
