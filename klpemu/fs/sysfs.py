"""/sys: the directories later subsystems fill (livepatch, tracing) and a few machine facts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .vfs import VFS, File

if TYPE_CHECKING:
    from ..machine.machine import Machine


def _cpu_list(cpus: list[int]) -> str:
    if not cpus:
        return "\n"
    return (f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"{cpus[0]}") + "\n"


def mount(vfs: VFS, machine: "Machine") -> None:
    vfs.makedirs("/sys/kernel", 0o755)
    vfs.makedirs("/sys/kernel/livepatch", 0o755)
    vfs.makedirs("/sys/kernel/debug", 0o700)
    cpus = vfs.makedirs("/sys/devices/system/cpu", 0o755)
    cpus.add(File("online", 0o444, lambda: _cpu_list([c.index for c in machine.cpus if c.online])))
    cpus.add(File("possible", 0o444, lambda: _cpu_list([c.index for c in machine.cpus])))
