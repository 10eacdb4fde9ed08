"""/proc/sys: the kernel's tunables that this machine has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .vfs import VFS, File

if TYPE_CHECKING:
    from ..machine.machine import Machine


def _parse_bool01(data: str) -> bool:
    value = data.strip()
    if value not in ("0", "1"):
        raise KlpemuError("ftrace_enabled takes 0 or 1", 22)
    return value == "1"


def mount(vfs: VFS, machine: "Machine") -> None:
    ft = machine.kernel.ftrace
    kernel = vfs.makedirs("/proc/sys/kernel", 0o555)
    kernel.add(File("ftrace_enabled", 0o644, lambda: f"{int(ft.sysctl_enabled)}\n",
                    lambda data: ft.set_sysctl_enabled(_parse_bool01(data))))
