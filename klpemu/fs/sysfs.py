"""/sys: the directories later subsystems fill (livepatch, tracing) and a few machine facts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..kernel.kstrtox import kstrtobool
from ..kernel.printk import LogLevel
from .vfs import VFS, Dir, File

if TYPE_CHECKING:
    from ..machine.machine import Machine


def _cpu_list(cpus: list[int]) -> str:
    if not cpus:
        return "\n"
    return (f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"{cpus[0]}") + "\n"


def _livepatch_dirs(machine: Machine) -> dict[str, Dir]:
    """/sys/kernel/livepatch/<patch>/: one directory per patch in klp_patches."""
    lp = machine.kernel.livepatch
    out: dict[str, Dir] = {}
    for patch in lp.patches:
        view = lambda p=patch: machine.struct("klp_patch", p)  # noqa: E731
        d = Dir(lp.name(patch), 0o755)
        d.add(
            File(
                "enabled",
                0o644,
                lambda v=view: f"{v().enabled}\n",
                lambda data, p=patch: lp.write_enabled(p, kstrtobool(data)),
            )
        )
        d.add(File("transition", 0o444, lambda p=patch: f"{int(lp.transition.patch == p)}\n"))
        d.add(File("force", 0o200, None, lambda data, p=patch: lp.write_force(p, kstrtobool(data))))
        d.add(File("replace", 0o444, lambda v=view: f"{v().replace}\n"))
        d.add(File("stack_order", 0o444, lambda p=patch: f"{lp.stack_order(p)}\n"))
        for obj in lp.objects(patch):
            od = d.mkdir(lp.object_name(obj), 0o755)
            od.add(File("patched", 0o444, lambda o=obj: f"{machine.struct('klp_object', o).patched}\n"))
            for func in lp.funcs(obj):
                f = machine.struct("klp_func", func)
                name = machine.mem.read_cstr(f.old_name, 512)
                od.mkdir(f"{name},{f.old_sympos or 1}", 0o755)
        out[d.name] = d
    return out


def mount(vfs: VFS, machine: Machine) -> None:
    vfs.makedirs("/sys/kernel", 0o755)
    vfs.makedirs("/sys/kernel/livepatch", 0o755).dynamic = lambda: _livepatch_dirs(machine)
    vfs.makedirs("/sys/kernel/debug", 0o700)
    from ..kernel.printk import log_store

    # /dev/kmsg: what a process writes there becomes a kernel log line (the selftests' markers).
    vfs.makedirs("/dev", 0o755).add(
        File(
            "kmsg",
            0o644,
            None,
            lambda data: [log_store(machine, line, LogLevel.WARNING) for line in data.splitlines() if line],
        )
    )
    cpus = vfs.makedirs("/sys/devices/system/cpu", 0o755)
    cpus.add(File("online", 0o444, lambda: _cpu_list([c.index for c in machine.cpus if c.online])))
    cpus.add(File("possible", 0o444, lambda: _cpu_list([c.index for c in machine.cpus])))
