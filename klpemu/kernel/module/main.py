"""The loaded modules: load, unload, lookups, notifiers, reference counts (kernel/module/main.c)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ..printk import log_store
from .internal import (
    EBUSY,
    EINVAL,
    ENOENT,
    ENOSPC,
    LOGLEVEL_ERR,
    LOGLEVEL_WARNING,
    MODULE_REF_BASE,
    TEXT_TYPES,
    Module,
    ModuleError,
)
from .loader import _Loading
from .params import CHARP_MAX, INT_TYPES, Param, _kstrto, _kstrtobool

if TYPE_CHECKING:
    from ...machine.image import Symbol
    from ...machine.machine import Machine
    from ..ftrace.core import Ftrace


class Modules:
    """The loaded modules, newest first (the guest's `modules` list is the same list)."""

    def __init__(self, machine: Machine, ftrace: Ftrace):
        self.m = machine
        self.ft = ftrace
        self.loaded: dict[str, Module] = {}
        self.tainted = 0  # the kernel's taint bits that modules set (the "once" messages)
        self.notifiers: list[tuple[Callable[[Module], None], Callable[[Module], None]]] = []
        self.live_notifiers: list[Callable[[Module], None]] = []
        # klp_apply_section_relocs, set by the livepatch core: the loader has it write the
        # .klp.rela.vmlinux.* sections of a module it loads (objname None).
        self.klp_apply_section_relocs: Callable[..., None] | None = None
        self._console = None

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

    def list(self) -> list[Module]:
        """Newest first, as /proc/modules and lsmod list them."""
        return list(reversed(self.loaded.values()))

    def find(self, name: str) -> Module | None:
        return self.loaded.get(name)

    def find_symbol(self, objname: str | None, name: str, sympos: int = 0) -> Symbol:
        """klp_find_object_symbol: a symbol of vmlinux (objname None or "vmlinux") or of a
        loaded module, by name and 1-based position (0: the name must be unique)."""
        if objname in (None, "vmlinux"):
            return self.m.image.lookup(name, sympos)
        mod = self.find(objname)
        if mod is None:
            raise KlpemuError(f"module {objname} is not loaded", ENOENT)
        return mod.lookup(name, sympos)

    def module_at(self, addr: int) -> Module | None:
        """__module_address: the module whose memory holds addr."""
        for mod in self.loaded.values():
            if any(base <= addr < base + size for base, size in mod.mem.values() if size):
                return mod
        return None

    def state(self, mod: Module) -> str:
        """MODULE_STATE_* of the guest struct, as its enumerator name."""
        value = self.m.struct("module", mod.addr).state
        return next(
            n
            for n in ("MODULE_STATE_LIVE", "MODULE_STATE_COMING", "MODULE_STATE_GOING", "MODULE_STATE_UNFORMED")
            if self.m.types.enum(n) == value
        )

    def refcount(self, mod: Module) -> int:
        """module_refcount: references held (try_module_get, modules using its symbols)."""
        return self.m.struct("module", mod.addr).refcnt.counter - MODULE_REF_BASE

    @property
    def console(self):
        if self._console is None:
            from ...machine.console import Console

            self._console = Console(self.m)
        return self._console

    def _log(self, text: str, level: int = LOGLEVEL_WARNING) -> None:
        log_store(self.m, text, level)

    # --- load ----------------------------------------------------------------------------------

    def load(self, source: bytes | str | Path, args: str | list[str] = "", *, filename: str | None = None) -> Module:
        """insmod: load a relocatable ELF module and run its init in the guest's shell process.

        source is the .ko's bytes or path; args are `name=value` parameters (a string is split
        as a shell would). Raises ModuleError with init_module(2)'s errno; nothing stays loaded.
        """
        if isinstance(source, (str, Path)):
            path = Path(source)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ModuleError(f"could not load module {path}: {e.strerror}", e.errno or ENOENT) from None
            filename = filename or path.name
        else:
            data = bytes(source)
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        self.m._check_running()
        loading = _Loading(self, data, filename or "module.ko", argv)
        return loading.run()

    # --- unload --------------------------------------------------------------------------------

    def unload(self, name: str) -> None:
        """rmmod: kmod's checks, then delete_module(2) in the shell process (exit runs there),
        then free_module on the host."""
        self.m._check_running()
        mod = self.loaded.get(name)
        if mod is None or self.state(mod) == "MODULE_STATE_UNFORMED":
            raise ModuleError(f"Module {name} is not currently loaded", ENOENT)
        if mod.holders:
            raise ModuleError(f"Module {name} is in use by: {' '.join(h.name for h in mod.holders)}", EBUSY)
        if self.refcount(mod) > 0:
            raise ModuleError(f"Module {name} is in use", EBUSY)
        status = self.console.delete_module(name)
        if status < 0:
            import os

            raise ModuleError(f"could not remove module {name}: {os.strerror(-status)}", -status)
        self._going(mod)
        self._free_module(mod)

    def _going(self, mod: Module) -> None:
        """After exit (or a failed init): the going hooks (klp_module_going), ftrace_release_mod."""
        for _, going in reversed(self.notifiers):
            going(mod)
        self._release_records(mod, 0, 1 << 64)

    def _release_records(self, mod: Module, start: int, end: int) -> None:
        for base, size in mod.text_ranges():
            lo, hi = max(base, start), min(base + size, end)
            if lo < hi:
                gone = set(self.ft.release(lo, hi))
                mod.records = [ip for ip in mod.records if ip not in gone]

    def _free_module(self, mod: Module) -> None:
        """free_module: sysfs, the list, the references it holds, parameters, kallsyms, memory."""
        m = self.m
        view = m.struct("module", mod.addr)
        view.state = m.types.enum("MODULE_STATE_UNFORMED")
        self.loaded.pop(mod.name, None)
        for used in mod.uses:  # module_unload_free
            if mod in used.holders:
                used.holders.remove(mod)
            uv = m.struct("module", used.addr)
            uv.refcnt.counter = uv.refcnt.counter - 1
        mod.uses.clear()
        for addr in mod._charp.values():  # destroy_params
            m.heap.free(addr)
        mod._charp.clear()
        self._unlink(mod)
        if mod.kallsyms in m.image.module_kallsyms:
            m.image.module_kallsyms.remove(mod.kallsyms)
        for mem_type in list(mod.mem):
            self._free_mem(mod, mem_type)

    def _free_mem(self, mod: Module, mem_type: str) -> None:
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

    def _link(self, mod: Module) -> None:
        """list_add_rcu(&mod->list, &modules): at the head, newest first."""
        m = self.m
        head = m.var_addr("modules")
        node = m.struct("module", mod.addr).addr_of("list")
        first = m.mem.read_u64(head)
        m.mem.write_u64(node, first)
        m.mem.write_u64(node + 8, head)
        m.mem.write_u64(first + 8, node)
        m.mem.write_u64(head, node)  # the store that publishes it

    def _unlink(self, mod: Module) -> None:
        m = self.m
        node = m.struct("module", mod.addr).addr_of("list")
        nxt, prev = m.mem.read_u64(node), m.mem.read_u64(node + 8)
        if not nxt:
            return
        m.mem.write_u64(nxt + 8, prev)
        m.mem.write_u64(prev, nxt)
        m.mem.write_u64(node, 0)
        m.mem.write_u64(node + 8, 0)

    # --- parameters ----------------------------------------------------------------------------

    def param_get(self, mod: Module, p: Param) -> str:
        """param_get_<type>: the text of /sys/module/<mod>/parameters/<param>."""
        mem = self.m.mem
        if p.type in INT_TYPES:
            size, signed = INT_TYPES[p.type]
            return f"{int.from_bytes(mem.read(p.arg, size), 'little', signed=signed)}\n"
        if p.type in ("bool", "invbool"):
            value = mem.read(p.arg, 1)[0] != 0
            return ("Y" if value != (p.type == "invbool") else "N") + "\n"
        if p.type == "charp":
            ptr = mem.read_u64(p.arg)
            return (mem.read_cstr(ptr, CHARP_MAX + 1) if ptr else "(null)") + "\n"
        raise KlpemuError(f"{mod.name}: parameter {p.name} has unknown type {p.type}", EINVAL)

    def param_set(self, mod: Module, p: Param, value: str | None) -> None:
        """param_set_<type>: raises KlpemuError with the errno Linux's setter returns."""
        m = self.m
        if p.type in INT_TYPES:
            if value is None:
                raise KlpemuError("missing value", EINVAL)
            size, signed = INT_TYPES[p.type]
            n = _kstrto(value, size, signed)
            m.mem.write(p.arg, n.to_bytes(size, "little", signed=signed))
        elif p.type in ("bool", "invbool"):
            b = _kstrtobool(value)
            m.mem.write(p.arg, bytes([int(b != (p.type == "invbool"))]))
        elif p.type == "charp":
            if value is None:
                raise KlpemuError("missing value", EINVAL)
            raw = value.encode()
            if len(raw) > CHARP_MAX:
                raise KlpemuError("too large", ENOSPC)
            addr = m.heap.kzalloc(len(raw) + 1)
            m.mem.write(addr, raw + b"\0")
            m.mem.write_u64(p.arg, addr)
            old = mod._charp.pop(p.arg, None)
            if old is not None:
                m.heap.free(old)
            mod._charp[p.arg] = addr
        else:
            raise KlpemuError(f"{mod.name}: parameter {p.name} has unknown type {p.type}", EINVAL)

    def _parse_args(self, mod: Module, argv: list[str]) -> None:
        """parse_args for a module: unknown names are ignored with a warning, bad values refuse."""
        by_name = {p.name.replace("-", "_"): p for p in mod.params}
        for arg in argv:
            name, eq, value = arg.partition("=")
            p = by_name.get(name.replace("-", "_"))
            if p is None:
                self._log(f"{mod.name}: unknown parameter '{name}' ignored")
                continue
            try:
                self.param_set(mod, p, value if eq else None)
            except KlpemuError as e:
                if e.errno == ENOSPC:
                    self._log(f"{mod.name}: `{value}' too large for parameter `{name}'", LOGLEVEL_ERR)
                else:
                    self._log(f"{mod.name}: `{value}' invalid for parameter `{name}'", LOGLEVEL_ERR)
                raise ModuleError(f"{mod.name}: `{value}' invalid for parameter `{name}'", e.errno) from None
