"""What insmod finds and says: the .ko files shipped with klpemu, kmod's words for an errno (kmod tools/insmod.c)."""

from __future__ import annotations

import errno
import os
from importlib import resources
from pathlib import Path


def shipped_modules_dir() -> Path:
    return Path(str(resources.files("klpemu") / "images" / "modules"))


def is_host_file(path: Path) -> bool:
    """Path.is_file, except that a name the host cannot look up at all (ENAMETOOLONG, a NUL)
    is no file either: the caller then says "not found", as kmod does, not a traceback."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def shipped_module(name: str) -> Path | None:
    """The .ko of a module shipped with klpemu (`hello`, `hello.ko`), or None."""
    stem = name.removesuffix(".ko")
    if not stem or "/" in stem:
        return None
    path = shipped_modules_dir() / f"{stem}.ko"
    return path if is_host_file(path) else None


def mod_strerror(err: int) -> str:
    """What kmod's insmod says for an init_module error."""
    return {
        errno.ENOEXEC: "Invalid module format",
        errno.ENOENT: "Unknown symbol in module",
        errno.ESRCH: "Module has wrong symbol version",
        errno.EINVAL: "Invalid parameters",
    }.get(err, os.strerror(err))
