"""`mkdir` and `rmdir`: directories the kernel makes on request (tracefs' instances/)."""

from __future__ import annotations

import os

from ..errors import KlpemuError
from .core import Shell, UsageError, command


@command("mkdir", "mkdir DIR...")
def cmd_mkdir(sh: Shell, args: list[str]) -> int:
    """Make a directory where the kernel makes them: /sys/kernel/tracing/instances/NAME is a new
    trace array with its own ring buffer, tracer and filters."""
    if not args:
        raise UsageError("missing operand")
    status = 0
    for path in args:
        try:
            sh.system.vfs.mkdir(path)
        except KlpemuError as e:
            status = sh.error(f"mkdir: cannot create directory '{path}': {os.strerror(e.errno)}")
    return status


@command("rmdir", "rmdir DIR...")
def cmd_rmdir(sh: Shell, args: list[str]) -> int:
    """Remove a directory the kernel made (a trace instance: refused while it is in use)."""
    if not args:
        raise UsageError("missing operand")
    status = 0
    for path in args:
        try:
            sh.system.vfs.rmdir(path)
        except KlpemuError as e:
            status = sh.error(f"rmdir: failed to remove '{path}': {os.strerror(e.errno)}")
    return status
