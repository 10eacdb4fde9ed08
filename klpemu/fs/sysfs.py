"""/sys: the directories later subsystems fill (livepatch, tracing) and a few machine facts."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ..kernel.kobject import kobject_name
from ..kernel.kstrtox import kstrtobool
from ..kernel.printk import LogLevel
from .vfs import VFS, Dir, File

if TYPE_CHECKING:
    from ..machine.machine import Machine
    from ..machine.types import Pointer


def _cpu_list(cpus: list[int]) -> str:
    if not cpus:
        return "\n"
    return (f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"{cpus[0]}") + "\n"


def _patch_dir(machine: Machine, patch: Pointer) -> Dir:
    """/sys/kernel/livepatch/<patch>/: its files read the patch's state at each read."""
    lp = machine.kernel.livepatch
    d = Dir(kobject_name(lp.name(patch)), 0o755)

    def write_enabled(data: str) -> None:
        lp.write_enabled(patch, kstrtobool(data))

    def write_force(data: str) -> None:
        lp.write_force(patch, kstrtobool(data))

    d.add(File("enabled", 0o644, lambda: f"{patch.enabled}\n", write_enabled))
    d.add(File("transition", 0o444, lambda: f"{int(lp.transition.patch == patch)}\n"))
    d.add(File("force", 0o200, None, write_force))
    d.add(File("replace", 0o444, lambda: f"{patch.replace}\n"))
    d.add(File("stack_order", 0o444, lambda: f"{lp.stack_order(patch)}\n"))
    for obj in lp.objects(patch):
        od = d.mkdir(kobject_name(lp.object_name(obj)), 0o755)
        od.add(File("patched", 0o444, partial(_object_patched, obj)))
        for func in lp.funcs(obj):
            name = kobject_name(machine.mem.read_cstr(func.old_name, 512))
            od.mkdir(f"{name},{func.old_sympos or 1}", 0o755)
    return d


def _object_patched(obj: Pointer) -> str:
    return f"{obj.patched}\n"


# include/linux/kobject.h's layout of a module's kobjects (the image has no such type to read
# it from): how many, attributes each, the struct's size and its members' offsets.
MODULE_KOBJECTS, KOBJECT_ATTRS, KOBJ_SIZE, KOBJ_ATTRS, KOBJ_IN_USE = 4, 7, 88, 16, 80
KOBJ_ATTR_SHOW = 16
SHOW_BUF = 4096  # PAGE_SIZE: what a show() may write


def _module_kobjects(machine: Machine) -> dict[str, Dir]:
    """/sys/kernel/<kobject>/: what loaded modules made with kobject_create_and_add."""
    mem = machine.mem
    out: dict[str, Dir] = {}
    for mod in machine.kernel.modules.loaded.values():
        syms = mod.kallsyms.by_name.get("__klpemu_kobjects") if mod.kallsyms is not None else None
        if not syms:
            continue
        for i in range(MODULE_KOBJECTS):
            kobj = syms[0].addr + i * KOBJ_SIZE
            if not mem.read_u32(kobj + KOBJ_IN_USE):
                continue
            d = Dir(kobject_name(mem.read_cstr(mem.read_u64(kobj), 256)), 0o755)
            for j in range(KOBJECT_ATTRS):
                attr = mem.read_u64(kobj + KOBJ_ATTRS + 8 * j)
                if not attr:
                    break
                mode = int.from_bytes(mem.read(attr + 8, 2), "little")
                name = mem.read_cstr(mem.read_u64(attr), 256)
                d.add(File(name, mode & 0o777, partial(_kobj_show, machine, kobj, attr)))
            out[d.name] = d
    return out


def _kobj_show(machine: Machine, kobj: int, attr: int) -> str:
    """sysfs_kf_seq_show: the attribute's show() into a page, run in the guest."""
    show = machine.mem.read_u64(attr + KOBJ_ATTR_SHOW)
    if not show:
        return ""
    buf = machine.heap.kzalloc(SHOW_BUF)
    try:
        n = machine.call(show, kobj, attr, buf)
        n = n - (1 << 64) if n >> 63 else n
        return machine.mem.read(buf, max(0, min(n, SHOW_BUF))).decode(errors="surrogateescape")
    finally:
        machine.heap.free(buf)


def _livepatch_dirs(machine: Machine) -> dict[str, Dir]:
    """/sys/kernel/livepatch/: one directory per patch in klp_patches."""
    dirs = (_patch_dir(machine, patch) for patch in machine.kernel.livepatch.patches)
    return {d.name: d for d in dirs}


def mount(vfs: VFS, machine: Machine) -> None:
    vfs.makedirs("/sys/kernel", 0o755).dynamic = lambda: _module_kobjects(machine)
    vfs.makedirs("/sys/kernel/livepatch", 0o755).dynamic = lambda: _livepatch_dirs(machine)
    vfs.makedirs("/sys/kernel/debug", 0o700)
    from ..kernel.printk import log_store

    # /dev/kmsg: what a process writes there becomes a kernel log line (the selftests' markers).
    def write_kmsg(data: str) -> None:
        for line in data.splitlines():
            if line:
                log_store(machine, line, LogLevel.WARNING)

    vfs.makedirs("/dev", 0o755).add(File("kmsg", 0o644, None, write_kmsg))
    cpus = vfs.makedirs("/sys/devices/system/cpu", 0o755)
    cpus.add(File("online", 0o444, lambda: _cpu_list([c.index for c in machine.cpus if c.online])))
    cpus.add(File("possible", 0o444, lambda: _cpu_list([c.index for c in machine.cpus])))
