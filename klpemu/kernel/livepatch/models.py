"""The consistency models a transition can follow, beside Linux's own hybrid one.

- `linux`: today's per-task model (transition.py): a stack check per task, the kernel exit and
  the idle loop, retries, fake signals, force.
- `stop_machine`: kpatch's core module (kmod/core/core.c). Every other CPU is stopped (here the
  host holds the whole machine between slices, which is that), every task's stack is walked
  once, reliable or not, and either every task switches at once or the load fails with -EBUSY,
  with kpatch's "activeness safety check failed" report.
- `lazy`: kGraft's per-task universes. A user task switches on its way out of the kernel, an idle
  task in the idle loop, a kernel thread only at an explicit point of its main loop; no stack is
  ever looked at. Here a kernel thread's point is any return into its thread function from a
  call it made: the thread is then at the top of its loop, with nothing of it below.
- `immediate`: livepatch before 4.12: every task runs the new code from the moment the patch is
  registered, wherever it is.
"""

from __future__ import annotations

from errno import EINVAL
from functools import cache
from typing import TYPE_CHECKING

from unicorn import UC_HOOK_CODE

from ...errors import KlpemuError
from ...machine.machine import CONSISTENCY_MODELS
from ..printk import LogLevel, log_store
from ..stacktrace import unwind_task
from ..tasks import TIF_PATCH_PENDING, Task

if TYPE_CHECKING:
    from capstone import Cs

    from ...machine.machine import Machine
    from .transition import Transition

MODELS = CONSISTENCY_MODELS
# kpatch's stack_entries[MAX_STACK_TRACE_DEPTH]: a deeper stack fails the check.
KPATCH_MAX_STACK_ENTRIES = 64


@cache
def _cs() -> Cs:
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    return Cs(CS_ARCH_X86, CS_MODE_64)


def check_model(name: str) -> str:
    if name not in MODELS:
        raise KlpemuError(f"unknown consistency model '{name}' (one of {', '.join(MODELS)})", EINVAL)
    return name


def kpatch_log(m: Machine, text: str, level: int = LogLevel.NOTICE) -> None:
    """pr_fmt of kpatch's core module: KBUILD_MODNAME ": "."""
    log_store(m, f"kpatch: {text}", level)


def kpatch_verify_activeness_safety(tr: Transition) -> bool:
    """kpatch_verify_activeness_safety, under stop_machine: every task's whole stack (its
    reliability does not matter to kpatch) against the code of every function being changed.
    On a hit, kpatch's report goes to the log and False comes back (the caller's -EBUSY)."""
    m = tr.m
    for task in tr._tasks():
        if task.is_idle:  # do_each_thread does not visit the idle tasks
            continue
        trace = unwind_task(m, task)
        frames = trace.kernel_frames
        if len(frames) >= KPATCH_MAX_STACK_ENTRIES:
            kpatch_log(m, f"more than {KPATCH_MAX_STACK_ENTRIES} trace entries!", LogLevel.ERR)
            _report_task(m, task, frames[:KPATCH_MAX_STACK_ENTRIES])
            return False
        hit = tr.check_stack(trace)
        if hit is not None:
            kpatch_log(m, f"activeness safety check failed for {hit}", LogLevel.ERR)
            _report_task(m, task, frames)
            return False
    return True


def _report_task(m: Machine, task: Task, frames) -> None:
    kpatch_log(m, f"PID: {task.pid} Comm: {task.comm[:20]}", LogLevel.ERR)
    for f in frames:
        where = m.image.symbolize(f.addr) if f.kind != "call" else m.image.symbolize_return(f.addr)
        kpatch_log(m, f"  [<{f.addr:016x}>] {where}", LogLevel.ERR)


class KthreadSafePoints:
    """kGraft's explicit switch points of kernel threads, as code hooks on every return site in
    each kernel thread's function, installed only while a lazy transition is under way."""

    def __init__(self, tr: Transition):
        self.tr = tr
        self._hooks: list[int] = []

    @property
    def installed(self) -> bool:
        return bool(self._hooks)

    def install(self) -> None:
        self.remove()
        m = self.tr.m
        sites: set[int] = set()
        for task in self.tr._tasks():
            if task.is_idle or not task.is_kthread:
                continue
            fn = task.view.kthread_fn
            sym = m.image.function_at(fn) if fn else None
            if sym is None or not sym.size:
                continue
            code = bytes(m.mem.read(sym.addr, sym.size))
            for insn in _cs().disasm(code, sym.addr):
                if insn.mnemonic == "call":
                    sites.add(insn.address + insn.size)
        for site in sorted(sites):
            self._hooks.append(m.uc.hook_add(UC_HOOK_CODE, self._at_point, None, site, site))
            m.uc.ctl_remove_cache(site, site + 1)  # blocks translated before the hook lack it

    def remove(self) -> None:
        for h in self._hooks:
            self.tr.m.uc.hook_del(h)
        self._hooks.clear()

    def _at_point(self, _uc, _addr, _size, _ud) -> None:
        m = self.tr.m
        cpu = m.running_cpu
        if cpu is None or self.tr.patch is None:
            return
        task = Task(m, m.pcpu(cpu.index).current_task)
        if not task.is_kthread or not self.tr.pending(task):
            return
        self.tr._flag(task, TIF_PATCH_PENDING, False)
        task.view.patch_state = self.tr.target
        if m.timeline is not None:
            m.timeline.task_state(task, self.tr.target, "kthread safe point")

    def __deepcopy__(self, memo):
        # Unicorn hooks belong to one instance: a copy (a snapshot) starts without them and
        # installs its own at the next attempt of a lazy transition.
        copy = KthreadSafePoints.__new__(KthreadSafePoints)
        memo[id(self)] = copy
        from copy import deepcopy

        copy.tr = deepcopy(self.tr, memo)
        copy._hooks = []
        return copy
