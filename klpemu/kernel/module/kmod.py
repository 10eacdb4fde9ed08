"""What insmod finds and says: the .ko files shipped with klpemu, kmod's words for an errno (kmod tools/insmod.c)."""

from __future__ import annotations

import errno
import os
from importlib import resources
from pathlib import Path


def shipped_modules_dir() -> Path:
    return Path(str(resources.files("klpemu") / "images" / "modules"))


def shipped_module(name: str) -> Path | None:
    """The .ko of a module shipped with klpemu (`hello`, `hello.ko`), or None."""
    stem = name.removesuffix(".ko")
    if not stem or "/" in stem:
        return None
    path = shipped_modules_dir() / f"{stem}.ko"
    return path if path.is_file() else None


def mod_strerror(err: int) -> str:
    """What kmod's insmod says for an init_module error."""
    return {
        errno.ENOEXEC: "Invalid module format",
        errno.ENOENT: "Unknown symbol in module",
        errno.ESRCH: "Module has wrong symbol version",
        errno.EINVAL: "Invalid parameters",
    }.get(err, os.strerror(err))
