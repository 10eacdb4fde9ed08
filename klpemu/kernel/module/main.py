"""The loaded modules: load, unload, lookups, notifiers, reference counts (kernel/module/main.c)."""

from __future__ import annotations

import builtins
import errno
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ...abi import MODULE_REF_BASE
from ...errors import KlpemuError
from ...machine.kstr import as_kstr
from ..guestlist import GuestList
from .internal import TEXT_TYPES, Module, ModuleError
from .kallsyms import remove_kallsyms
from .loader import Loader
from .params import Param, destroy_params, param_get, param_set

if TYPE_CHECKING:
    from ...machine.console import Console
    from ...machine.image import Symbol
    from ...machine.machine import Machine
    from ..ftrace.core import Ftrace
    from ..panic import Taint


class Modules:
    """The loaded modules, newest first (the guest's `modules` list is the same list)."""

    def __init__(self, machine: Machine, ftrace: Ftrace, console: Console, taint: Taint):
        self.m = machine
        self.ft = ftrace
        self.console = console  # init_module(2) and delete_module(2) run in its shell process
        self.taint = taint  # the kernel's, which a module's taints join at load
        self.loaded: dict[str, Module] = {}
        self.last_unloaded = ""  # name and taint flags of the last module rmmod removed
        self.notifiers: list[tuple[Callable[[Module], None], Callable[[Module], None]]] = []
        self.live_notifiers: list[Callable[[Module], None]] = []
        # klp_apply_section_relocs, the livepatch core's: the loader has it write the
        # .klp.rela.vmlinux.* sections of a module it loads (objname None). See use_klp_relocs.
        self.klp_apply_section_relocs: Callable[..., None] | None = None
        self._list = GuestList(machine.mem)

    def add_notifier(self, coming: Callable[[Module], None], going: Callable[[Module], None]) -> None:
        """Hooks at Linux's klp_module_coming / klp_module_going places. coming(mod) runs with the
        module in MODULE_STATE_COMING, after ftrace_module_enable and before its parameters and
        init; a KlpemuError from it refuses the module with its errno. going(mod) runs, in reverse
        registration order, for every module whose coming hook succeeded, when it is removed
        (after exit) or fails later (a bad parameter, init returning an error)."""
        self.notifiers.append((coming, going))

    def add_live_notifier(self, live: Callable[[Module], None]) -> None:
        """A hook at the MODULE_STATE_LIVE notification of do_init_module: init returned 0 and
        the module's init memory (text, data, its ftrace records) is about to be freed."""
        self.live_notifiers.append(live)

    # --- lookups -----------------------------------------------------------------------------

    def list(self) -> builtins.list[Module]:
        """Newest first, as /proc/modules and lsmod list them."""
        return list(reversed(self.loaded.values()))

    def find(self, name: str) -> Module | None:
        return self.loaded.get(as_kstr(name))

    def find_symbol(self, objname: str | None, name: str, sympos: int = 0) -> Symbol:
        """klp_find_object_symbol: a symbol of vmlinux (objname None or "vmlinux") or of a
        loaded module, by name and 1-based position (0: the name must be unique)."""
        if objname in (None, "vmlinux"):
            return self.m.image.lookup(name, sympos)
        mod = self.find(objname)
        if mod is None:
            raise KlpemuError(f"module {objname} is not loaded", errno.ENOENT)
        return mod.lookup(name, sympos)

    def module_at(self, addr: int) -> Module | None:
        """__module_address: the module whose memory holds addr."""
        for mod in self.loaded.values():
            if any(base <= addr < base + size for base, size in mod.mem.values() if size):
                return mod
        return None

    def state(self, mod: Module) -> str:
        """MODULE_STATE_* of the guest struct, as its enumerator name; a value no enumerator has
        (the module's own code may have written over its struct) is shown as the number."""
        value = mod.struct.state
        return next(
            (
                n
                for n in ("MODULE_STATE_LIVE", "MODULE_STATE_COMING", "MODULE_STATE_GOING", "MODULE_STATE_UNFORMED")
                if self.m.types.enum(n) == value
            ),
            str(value),
        )

    def module_flags(self, mod: Module, show_state: bool = True) -> str:
        """module_flags: `(` its taint letters, `+` while its init runs or `-` while it goes `)`,
        or nothing when there is none of these."""
        flags = mod.taint_letters
        if show_state:
            state = self.state(mod)
            flags += {"MODULE_STATE_GOING": "-", "MODULE_STATE_COMING": "+"}.get(state, "")
        return f"({flags})" if flags else ""

    def print_modules(self) -> str:
        """print_modules: the `Modules linked in:` line of an oops report."""
        line = "Modules linked in:"
        for mod in self.list():
            if self.state(mod) != "MODULE_STATE_UNFORMED":
                line += f" {mod.name}{self.module_flags(mod)}"
        if self.last_unloaded:
            line += f" [last unloaded: {self.last_unloaded}]"
        return line

    def refcount(self, mod: Module) -> int:
        """module_refcount: references held (try_module_get, modules using its symbols)."""
        return mod.struct.refcnt.counter - MODULE_REF_BASE

    def check_consistency(self) -> builtins.list[str]:
        """Where the host's caches disagree with guest memory: each live module's memory
        against its struct module mem[], and the loaded set against the guest's modules list.
        Empty if none."""
        problems = []
        t = self.m.types
        on_list = {int(p) for p in self.m.list_for_each_entry("module", self.m.var_addr("modules"), "list")}
        for name, mod in self.loaded.items():
            if mod.addr not in on_list:
                problems.append(f"module {name}: not on the guest's modules list")
            view = mod.struct
            for mem_type, (base, size) in mod.mem.items():
                guest = view.mem[t.enum(mem_type)]
                if (guest.base, guest.size) != (base, size) and size:
                    problems.append(f"module {name}: {mem_type} is {base:#x}+{size:#x} here, not in the guest")
        if len(on_list) != len(self.loaded):
            problems.append(f"modules: {len(on_list)} on the guest's list, {len(self.loaded)} loaded here")
        return problems

    def use_klp_relocs(self, apply_section_relocs: Callable[..., None]) -> None:
        """Connect the livepatch core's klp_apply_section_relocs, which is built after this."""
        self.klp_apply_section_relocs = apply_section_relocs

    # --- load ----------------------------------------------------------------------------------

    def load(
        self, source: bytes | str | Path, args: str | builtins.list[str] = "", *, filename: str | None = None
    ) -> Module:
        """insmod: load a relocatable ELF module and run its init in the guest's shell process.

        source is the .ko's bytes or path; args are `name=value` parameters (a string is split
        as a shell would). Raises ModuleError with init_module(2)'s errno; nothing stays loaded.
        """
        if isinstance(source, (str, Path)):
            path = Path(source)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ModuleError(f"could not load module {path}: {e.strerror}", e.errno or errno.ENOENT) from None
            filename = filename or path.name
        else:
            data = bytes(source)
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        self.m.check_running()
        mod = Loader(self, data, filename or "module.ko", argv).run()
        mod.elf = data
        return mod

    # --- unload --------------------------------------------------------------------------------

    def unload(self, name: str) -> None:
        """rmmod: kmod's checks, then delete_module(2) in the shell process (exit runs there),
        then free_module on the host."""
        self.m.check_running()
        name = as_kstr(name)  # raw bytes a person typed name the module as its kstr does
        mod = self.loaded.get(name)
        if mod is None or self.state(mod) == "MODULE_STATE_UNFORMED":
            raise ModuleError(f"Module {name} is not currently loaded", errno.ENOENT)
        if mod.holders:
            raise ModuleError(f"Module {name} is in use by: {' '.join(h.name for h in mod.holders)}", errno.EBUSY)
        if self.refcount(mod) > 0:
            raise ModuleError(f"Module {name} is in use", errno.EBUSY)
        status = self.console.delete_module(mod.name_bytes)
        if status < 0:
            raise ModuleError(f"could not remove module {name}: {os.strerror(-status)}", -status)
        self._going(mod)
        self._free_module(mod)
        self.last_unloaded = mod.name + self.module_flags(mod, show_state=False)

    def _going(self, mod: Module) -> None:
        """After exit (or a failed init): the going hooks (klp_module_going), ftrace_release_mod."""
        for _, going in reversed(self.notifiers):
            going(mod)
        self.ftrace_release_mod(mod)

    def _free_module(self, mod: Module) -> None:
        """free_module: sysfs, the list, the references it holds, parameters, kallsyms, memory."""
        m = self.m
        view = mod.struct
        view.state = m.types.enum("MODULE_STATE_UNFORMED")
        self.mod_tree_remove(mod)
        self.module_unload_free(mod)
        destroy_params(m, mod)
        self.list_del_rcu(mod)
        remove_kallsyms(m, mod)
        for mem_type in list(mod.mem):
            self.module_memory_free(mod, mem_type)

    # --- the steps of load and free that the loader shares -------------------------------------

    def mod_tree_insert(self, mod: Module) -> None:
        """add_unformed_module: from now on a second load of the name gets -EEXIST."""
        self.loaded[mod.name] = mod

    def mod_tree_remove(self, mod: Module) -> None:
        self.loaded.pop(mod.name, None)

    def list_add_rcu(self, mod: Module) -> None:
        """list_add_rcu(&mod->list, &modules): at the head, newest first."""
        self._list.add(mod.struct.addr_of("list"), self.m.var_addr("modules"))

    def list_del_rcu(self, mod: Module) -> None:
        """list_del_rcu(&mod->list), its neighbours found from theirs: the module's own pointers
        live in memory its code can write (a damaged module's init can), and the list must stay
        whole whatever the module did to itself."""
        self._list.delete_rcu_from_neighbours(mod.struct.addr_of("list"), self.m.var_addr("modules"))

    def ref_module(self, mod: Module, owner: Module) -> None:
        """ref_module: mod uses owner's symbols, so holds a reference on it while it is loaded."""
        view = owner.struct
        view.refcnt.counter = view.refcnt.counter + 1
        mod.uses.append(owner)
        owner.holders.append(mod)

    def module_unload_free(self, mod: Module) -> None:
        """module_unload_free: mod drops the references ref_module took."""
        for used in mod.uses:
            if mod in used.holders:
                used.holders.remove(mod)
            uv = used.struct
            uv.refcnt.counter = uv.refcnt.counter - 1
        mod.uses.clear()

    def ftrace_release_mod(self, mod: Module) -> None:
        """ftrace_release_mod: every ftrace record of the module's text goes."""
        self.ftrace_free_mem(mod, 0, 1 << 64)

    def ftrace_free_mem(self, mod: Module, start: int, end: int) -> None:
        """ftrace_free_mem: the records of the module's text in [start, end) go."""
        for text_lo, text_hi in mod.text_ranges():
            lo, hi = max(text_lo, start), min(text_hi, end)
            if lo < hi:
                gone = set(self.ft.release(lo, hi))
                mod.records = [ip for ip in mod.records if ip not in gone]

    def module_memory_free(self, mod: Module, mem_type: str) -> None:
        """module_memory_free: one of the module's allocations goes back to its heap."""
        base, size = mod.mem.pop(mem_type)
        if not size:
            return
        m = self.m
        if mem_type in TEXT_TYPES:  # freed text traps if anything still jumps there
            m.mem.write(base, b"\xcc" * size)
            m.uc.ctl_remove_cache(base, base + size)
        else:
            m.mem.write(base, bytes(size))
        m.heap.free(base)

    # --- parameters ----------------------------------------------------------------------------

    def param_get(self, mod: Module, p: Param) -> str:
        """param_get_<type>: the text of /sys/module/<mod>/parameters/<param>."""
        return param_get(self.m, mod, p)

    def param_set(self, mod: Module, p: Param, value: str | None) -> None:
        """param_set_<type>: raises KlpemuError with the errno Linux's setter returns."""
        param_set(self.m, mod, p, value)
