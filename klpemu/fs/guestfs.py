"""Files the guest kernel implements itself (show/write handlers), read from its entry table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..machine.console import Console
from .vfs import VFS, Dir, File

if TYPE_CHECKING:
    from ..machine.machine import Machine


def guest_entries(machine: Machine) -> list[tuple[str, int]]:
    """(path, mode) of every entry between __start_proc_entries and __stop_proc_entries."""
    start = machine.image.addr("__start_proc_entries")
    stop = machine.image.addr("__stop_proc_entries")
    size = machine.types.sizeof("proc_dir_entry")
    out = []
    for addr in range(start, stop, size):
        de = machine.struct("proc_dir_entry", addr)
        out.append((machine.mem.read_cstr(de.name, 256), de.mode))
    return out


def dynamic_entries(machine: Machine) -> list[tuple[str, int]]:
    """(path, mode) of the entries made at run time (proc_create_single), from proc_dynamic."""
    out = []
    table = machine.var("proc_dynamic")
    for i in range(len(table)):  # by index: a View iterates through __getitem__, which mypy does not follow
        e = table[i]
        if e.de.name:
            out.append((machine.mem.read_cstr(e.de.name, 256), e.de.mode))
    return out


def _file(console: Console, path: str, mode: int) -> File:
    def read() -> str:
        return console.read_file(path)

    def write(data: str) -> None:
        console.write_file(path, data)

    return File(path.rsplit("/", 1)[-1], mode, read if mode & 0o444 else None, write if mode & 0o222 else None)


def mount(vfs: VFS, machine: Machine, console: Console) -> None:
    for path, mode in guest_entries(machine):
        vfs.add_file(path, _file(console, path, mode))

    # Run-time entries appear in /proc as their modules make them (only /proc itself holds any).
    proc = vfs.makedirs("/proc")
    before = proc.dynamic

    def listing() -> dict[str, File | Dir]:
        out: dict[str, File | Dir] = dict(before()) if before is not None else {}
        for path, mode in dynamic_entries(machine):
            parent, name = path.rsplit("/", 1)
            if parent == "/proc":
                out[name] = _file(console, path, mode)
        return out

    proc.dynamic = listing
