"""User processes started after boot: the image's extra user programs, what a shell's `PROG &`
and `kill PID` do for them.

The kernel has no fork or exec: a program is a function in the image's user text, started as a
new task (user_task_create) on one of init's spare user stacks. A program's SIGTERM handler is
a flag per pid in its own data, which `kill` sets; it then leaves through exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from errno import EAGAIN, EINVAL, EPERM, ESRCH
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .tasks import Task, all_tasks, find_task

if TYPE_CHECKING:
    from ..machine.machine import Machine

USER_STACK_SIZE = 8192  # init/main.c's
BOOT_USER_STACKS = 3  # init, sysmon and sh have the first ones


@dataclass(frozen=True)
class Program:
    name: str
    entry: str  # its main function in the user text
    stop_flags: str  # char[] indexed by pid: set means "terminate"


PROGRAMS = {p.name: p for p in (Program("test_klp-call_getpid", "call_getpid_main", "call_getpid_stop"),)}


def _comm(name: str) -> str:
    return name[:15]  # TASK_COMM_LEN - 1


def _started(m: Machine) -> list[Task]:
    comms = {_comm(p) for p in PROGRAMS}
    return [t for t in all_tasks(m) if not t.is_kthread and t.comm in comms]


def stack_slot(m: Machine, task: Task, base: int) -> int:
    """Which user stack a live task runs on, from its user stack pointer."""
    cpu = task.running_on
    if cpu is not None and m.cpus[cpu].user_mode:
        sp = m.cpus[cpu].reg("rsp")
    else:
        sp = m.struct("pt_regs", task.pt_regs).sp
    return (sp - 1 - base) // USER_STACK_SIZE


def spawn(m: Machine, name: str) -> Task:
    """Start `name` as a new user task; its Task (a slot never comes back: tasks are not freed)."""
    prog = PROGRAMS.get(name)
    if prog is None:
        raise KlpemuError(f"{name}: command not found (programs: {', '.join(PROGRAMS)})", EINVAL)
    stacks = m.image.lookup("user_stacks")
    used = {stack_slot(m, t, stacks.addr) for t in _started(m)}
    free = [s for s in range(BOOT_USER_STACKS, stacks.size // USER_STACK_SIZE) if s not in used]
    if not free:
        raise KlpemuError("fork: retry: Resource temporarily unavailable (no user stack left)", EAGAIN)
    slot = free[0]
    comm = m.heap.kzalloc(len(name) + 1)
    try:
        m.mem.write(comm, name.encode() + b"\0")
        task = m.call("user_task_create", m.image.addr(prog.entry), stacks.addr + (slot + 1) * USER_STACK_SIZE, comm)
    finally:
        m.heap.free(comm)
    return Task(m, task)


def kill(m: Machine, pid: int) -> None:
    """SIGTERM to a started program: its handler's flag. Other tasks have no handler here."""
    task = find_task(m, pid)
    if task is None or task.is_idle:
        raise KlpemuError(f"({pid}) - No such process", ESRCH)
    prog = next((p for p in PROGRAMS.values() if _comm(p.name) == task.comm and not task.is_kthread), None)
    if prog is None:
        raise KlpemuError(f"({pid}) - Operation not permitted", EPERM)
    flags = m.image.lookup(prog.stop_flags)
    if pid >= flags.size:  # its handler's flags stop there
        raise KlpemuError(f"({pid}) - Operation not permitted", EPERM)
    m.mem.write(flags.addr + pid, b"\1")
