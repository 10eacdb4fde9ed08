"""`spawn` and `kill`: user processes started and stopped from the shell (`PROG &`, `kill PID`)."""

from __future__ import annotations

from ..errors import KlpemuError
from ..kernel.user_programs import kill, spawn
from .core import Shell, UsageError, command


@command("spawn", "spawn PROGRAM")
def cmd_spawn(sh: Shell, args: list[str]) -> int:
    """Start a user process running PROGRAM in the background and print its pid, as `PROGRAM &`
    and `echo $!` would. The programs are the image's own: test_klp-call_getpid (getpid in a
    loop, Linux's livepatch selftest program)."""
    if len(args) != 1:
        raise UsageError("spawn takes one program")
    try:
        task = spawn(sh.machine, args[0])
    except KlpemuError as e:
        return sh.error(f"spawn: {e}")
    print(task.pid, file=sh.out)
    return 0


@command("kill", "kill PID...")
def cmd_kill(sh: Shell, args: list[str]) -> int:
    """Send SIGTERM: a process started by spawn leaves through exit; others have no handler here
    and refuse it."""
    if not args:
        raise UsageError("kill needs a pid")
    status = 0
    for arg in args:
        try:
            kill(sh.machine, int(arg))
        except ValueError:
            status = sh.error(f"kill: {arg}: arguments must be process or job IDs")
        except KlpemuError as e:
            status = sh.error(f"kill: {e}")
    return status
