"""Files the guest kernel implements itself (show/write handlers), read from its entry table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..machine.console import Console
from .vfs import VFS, File

if TYPE_CHECKING:
    from ..machine.machine import Machine


def guest_entries(machine: "Machine") -> list[tuple[str, int]]:
    """(path, mode) of every entry between __start_proc_entries and __stop_proc_entries."""
    start = machine.image.addr("__start_proc_entries")
    stop = machine.image.addr("__stop_proc_entries")
    size = machine.types.sizeof("proc_dir_entry")
    out = []
    for addr in range(start, stop, size):
        de = machine.struct("proc_dir_entry", addr)
        out.append((machine.mem.read_cstr(de.name, 256), de.mode))
    return out


def mount(vfs: VFS, machine: "Machine", console: Console) -> None:
    for path, mode in guest_entries(machine):
        name = path.rsplit("/", 1)[-1]

        def read(p: str = path) -> str:
            return console.read_file(p)

        def write(data: str, p: str = path) -> None:
            console.write_file(p, data)

        vfs.add_file(path, File(name, mode, read if mode & 0o444 else None, write if mode & 0o222 else None))
