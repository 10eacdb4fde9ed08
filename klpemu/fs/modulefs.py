"""/sys/module/<mod>/, /proc/modules and /proc/kallsyms: the loaded modules, as Linux shows them."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from .vfs import VFS, Dir, File

if TYPE_CHECKING:
    from ..kernel.kallsyms import Kallsyms
    from ..kernel.module import Module, Modules, Param
    from ..machine.machine import Machine

INITSTATE = {"MODULE_STATE_LIVE": "live", "MODULE_STATE_COMING": "coming", "MODULE_STATE_GOING": "going"}
PROC_STATE = {"MODULE_STATE_LIVE": "Live", "MODULE_STATE_COMING": "Loading", "MODULE_STATE_GOING": "Unloading"}


def proc_modules(mods: Modules, show_value: bool) -> str:
    """m_show: `name size refcount holders, state address (taints)`, newest first; the address
    is zero for a reader kallsyms_show_value refuses."""
    lines = []
    for mod in mods.list():
        state = mods.state(mod)
        if state == "MODULE_STATE_UNFORMED":
            continue
        users = "".join(f"{h.name}," for h in mod.holders)
        view = mod.struct
        if view.init and not view.exit:
            users += "[permanent],"
        flags = mods.module_flags(mod)
        lines.append(
            f"{mod.name} {mod.core_size} {mods.refcount(mod)} {users or '-'} {PROC_STATE[state]} "
            f"0x{mod.mem['MOD_TEXT'][0] if show_value else 0:016x}{f' {flags}' if flags else ''}\n"
        )
    return "".join(lines)


def _param_file(mods: Modules, mod: Module, p: Param) -> File:
    def read() -> str:
        return mods.param_get(mod, p)

    def write(data: str) -> None:
        mods.param_set(mod, p, data)

    return File(p.name, p.perm & 0o777, read if p.perm & 0o444 else None, write if p.perm & 0o222 else None)


def module_dir(mods: Modules, mod: Module, kallsyms: Kallsyms) -> Dir:
    d = Dir(mod.name, 0o755)
    d.add(File("coresize", 0o444, lambda: f"{mod.core_size}\n"))
    d.add(File("initsize", 0o444, lambda: f"{mod.init_size}\n"))
    d.add(File("initstate", 0o444, lambda: INITSTATE.get(mods.state(mod), "unformed") + "\n"))
    d.add(File("refcnt", 0o444, lambda: f"{mods.refcount(mod)}\n"))
    d.add(File("taint", 0o444, lambda: mod.taint_letters + "\n"))
    holders = d.add(Dir("holders", 0o755))
    holders.dynamic = lambda: {h.name: Dir(h.name, 0o755) for h in mod.holders}  # symlinks in Linux
    sections = d.add(Dir("sections", 0o755))
    for name, addr in sorted(mod.sections.items()):
        sections.add(File(name, 0o400, partial(_section_address, kallsyms, addr)))
    shown = [p for p in mod.params if p.perm]
    if shown:
        params = d.add(Dir("parameters", 0o755))
        for p in shown:
            params.add(_param_file(mods, mod, p))
    return d


def _section_address(kallsyms: Kallsyms, addr: int) -> str:
    """module_sect_read: the address, or zero for a reader kallsyms_show_value refuses."""
    return f"0x{addr if kallsyms.show_value() else 0:016x}\n"


def mount(vfs: VFS, machine: Machine) -> None:
    mods = machine.kernel.modules
    kallsyms = machine.kernel.kallsyms
    sysmod = vfs.makedirs("/sys/module", 0o755)
    sysmod.dynamic = lambda: {
        mod.name: module_dir(mods, mod, kallsyms) for mod in mods.list() if mods.state(mod) != "MODULE_STATE_UNFORMED"
    }
    vfs.add_file("/proc/modules", File("modules", 0o444, lambda: proc_modules(mods, kallsyms.show_value())))
    vfs.add_file("/proc/kallsyms", File("kallsyms", 0o444, kallsyms.proc_kallsyms))
