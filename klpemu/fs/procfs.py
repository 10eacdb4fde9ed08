"""/proc/<pid>/: the per-task files the host implements from the guest's task structs."""

from __future__ import annotations

from errno import ESRCH
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from ..kernel.stacktrace import unwind_task
from ..kernel.tasks import Task, all_tasks, find_task
from .vfs import VFS, Dir, File

if TYPE_CHECKING:
    from ..machine.machine import Machine

STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)", "X": "X (dead)"}


def _status(task: Task) -> str:
    letter = task.state_letter()
    return (
        f"Name:\t{task.comm}\n"
        f"State:\t{STATE_NAMES.get(letter, letter)}\n"
        f"Tgid:\t{task.view.tgid}\n"
        f"Pid:\t{task.pid}\n"
        f"Kthread:\t{1 if task.is_kthread else 0}\n"
        f"voluntary_ctxt_switches:\t{task.view.nvcsw}\n"
        f"nonvoluntary_ctxt_switches:\t{task.view.nivcsw}\n"
    )


def pid_dir(machine: Machine, pid: int) -> Dir:
    def task() -> Task:
        t = find_task(machine, pid)
        if t is None:
            raise KlpemuError(f"/proc/{pid}", ESRCH)  # ESRCH: the task exited meanwhile
        return t

    d = Dir(str(pid), 0o555)
    d.add(File("comm", 0o644, lambda: task().comm + "\n"))
    d.add(File("stack", 0o400, lambda: unwind_task(machine, task()).proc_stack()))
    d.add(File("patch_state", 0o444, lambda: f"{task().patch_state}\n"))
    d.add(File("status", 0o444, lambda: _status(task())))
    return d


def mount(vfs: VFS, machine: Machine) -> None:
    proc = vfs.makedirs("/proc")

    def pids() -> dict[str, Dir]:
        return {str(t.pid): pid_dir(machine, t.pid) for t in all_tasks(machine) if not t.is_idle}

    proc.dynamic = pids
