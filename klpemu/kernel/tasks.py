"""Tasks as the host sees them, read through DWARF from the guest's task_struct."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..abi import (
    PF_IDLE,
    PF_KTHREAD,
    TASK_DEAD,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    TIF_NEED_RESCHED,
    TIF_PATCH_PENDING,
    TIF_SIGPENDING,
)
from ..machine.kstr import kstr

if TYPE_CHECKING:
    from ..machine.machine import Machine
    from ..machine.types import View

# Re-exported for the rest of the control plane: the task states and flags, from DWARF.
__all__ = [
    "PF_IDLE",
    "PF_KTHREAD",
    "TASK_DEAD",
    "TASK_INTERRUPTIBLE",
    "TASK_RUNNING",
    "TASK_UNINTERRUPTIBLE",
    "TIF_NEED_RESCHED",
    "TIF_PATCH_PENDING",
    "TIF_SIGPENDING",
    "Task",
    "all_tasks",
]


@dataclass(frozen=True)
class Task:
    """A snapshot handle on one guest task; fields are read live through `view`."""

    machine: Machine
    addr: int

    @property
    def view(self) -> View:
        return self.machine.struct("task_struct", self.addr)

    @property
    def pid(self) -> int:
        return self.view.pid

    @property
    def comm(self) -> str:
        return kstr(self.view.comm)

    @property
    def state(self) -> int:
        return getattr(self.view, "__state")

    @property
    def flags(self) -> int:
        return self.view.flags

    @property
    def is_kthread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def is_idle(self) -> bool:
        return self.pid == 0

    @property
    def cpu(self) -> int:
        return self.view.cpu

    @property
    def running_on(self) -> int | None:
        """The CPU this task is current on, or None when it is not on a CPU."""
        m = self.machine
        for cpu in m.cpus:
            if cpu.online and m.current_task(cpu.index) == self.addr:
                return cpu.index
        return None

    @property
    def patch_state(self) -> int:
        return self.view.patch_state

    @property
    def stack_base(self) -> int:
        return self.view.stack

    @property
    def stack_top(self) -> int:
        return self.stack_base + self.machine.thread_size

    @property
    def pt_regs(self) -> int:
        return self.stack_top - self.machine.types.sizeof("pt_regs")

    def state_letter(self) -> str:
        """The STATE column of ps: R running or runnable, S sleeping, D uninterruptible."""
        s = self.state
        if s == TASK_RUNNING:
            return "R"
        if s & TASK_UNINTERRUPTIBLE:
            return "D"
        if s & TASK_INTERRUPTIBLE:
            return "S"
        if s & TASK_DEAD:
            return "X"
        return "?"

    def __repr__(self) -> str:
        return f"<task {self.pid} {self.comm}>"


def idle_tasks(machine: Machine) -> Iterator[Task]:
    for cpu in machine.cpus:
        if cpu.online:
            addr = machine.pcpu(cpu.index).idle
            if addr:
                yield Task(machine, addr)


def all_tasks(machine: Machine) -> list[Task]:
    """Idle tasks first (pid 0, one per CPU), then the task list in creation order."""
    tasks = list(idle_tasks(machine))
    tasks += [
        Task(machine, t) for t in machine.list_for_each_entry("task_struct", machine.var_addr("task_list"), "tasks")
    ]
    return tasks


def find_task(machine: Machine, pid: int) -> Task | None:
    for t in all_tasks(machine):
        if t.pid == pid and not t.is_idle:
            return t
    return None
