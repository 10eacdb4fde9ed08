"""What checkers read from the student's machine: files as the shell shows them, tasks,
livepatches, the kernel log."""

from __future__ import annotations

from ..kernel.printk import records
from ..kernel.tasks import all_tasks
from ..system import System
from .workspace import run_commands


def read_file(system: System, path: str) -> str | None:
    """The file's text, as `cat` shows it; None when there is no such file."""
    status, out, _ = run_commands(system, f"cat {path}")
    return out if status == 0 else None


def tasks_named(system: System, prefix: str) -> dict[str, int]:
    """comm -> pid of the live tasks whose comm starts with prefix."""
    return {t.comm: t.pid for t in all_tasks(system.machine) if t.comm.startswith(prefix) and not t.is_idle}


def patch(system: System, name: str):
    """The klp_patch of the livepatch module name, or None when there is none."""
    lp = system.kernel.livepatch
    return next((p for p in lp.patches if lp.name(p) == name), None)


def module_param(system: System, module: str, param: str) -> str | None:
    text = read_file(system, f"/sys/module/{module}/parameters/{param}")
    return None if text is None else text.strip()


def log(system: System) -> list[str]:
    return [r.text for r in records(system.machine)]
