"""/sys/kernel/debug/kprobes: the probes (list), arming them all (enabled), and the blacklist."""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .vfs import VFS, File

if TYPE_CHECKING:
    from ..machine.machine import Machine


def mount(vfs: VFS, machine: Machine) -> None:
    kprobes = machine.kernel.kprobes
    d = vfs.makedirs("/sys/kernel/debug/kprobes", 0o700)

    def write_enabled(data: str, append: bool = False) -> None:
        first = data[:1]
        if first in ("y", "Y", "1"):
            kprobes.arm_all()
        elif first in ("n", "N", "0"):
            kprobes.disarm_all()
        else:
            raise KlpemuError("enabled takes 0 or 1", EINVAL)

    d.add(File("list", 0o400, kprobes.list_text))
    d.add(File("enabled", 0o600, lambda: "0\n" if kprobes.all_disarmed else "1\n", write_enabled))
    d.add(File("blacklist", 0o400, kprobes.blacklist_text))
