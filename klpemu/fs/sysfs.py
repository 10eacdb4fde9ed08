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


def _livepatch_dirs(machine: Machine) -> dict[str, Dir]:
    """/sys/kernel/livepatch/: one directory per patch in klp_patches."""
    dirs = (_patch_dir(machine, patch) for patch in machine.kernel.livepatch.patches)
    return {d.name: d for d in dirs}


def mount(vfs: VFS, machine: Machine) -> None:
    vfs.makedirs("/sys/kernel", 0o755)
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
