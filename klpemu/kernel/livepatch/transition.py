"""The per-task consistency model (kernel/livepatch/transition.c).

A task switches to the target state once its stack holds none of the functions being changed
(checked here, by the host's reliable unwinder, for tasks that are not running), or by itself
on its way out to user mode or in the idle loop (klp_update_patch_state in the guest, driven by
TIF_PATCH_PENDING). Tasks that do not make it are retried once a second; from the 15th retry on,
every 15 retries, they get a fake signal; `force` switches them all.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from ...abi import KLP_TRANSITION_IDLE, KLP_TRANSITION_PATCHED, KLP_TRANSITION_UNPATCHED
from ..printk import LogLevel, log_store
from ..stacktrace import unwind_sleeping_task
from ..tasks import PF_KTHREAD, TASK_INTERRUPTIBLE, TIF_NEED_RESCHED, TIF_PATCH_PENDING, Task, all_tasks
from . import callbacks
from .models import KthreadSafePoints, check_model, kpatch_verify_activeness_safety

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import Pointer
    from .core import Livepatch
    from .guestcall import CallbackGen

IDLE, UNPATCHED, PATCHED = KLP_TRANSITION_IDLE, KLP_TRANSITION_UNPATCHED, KLP_TRANSITION_PATCHED
RETRY_NS = 1_000_000_000  # round_jiffies_relative(HZ)
SIGNALS_EVERY = 15


class Transition:
    def __init__(self, machine: Machine, lp: Livepatch):
        self.m = machine
        self.lp = lp
        self.signals_cnt = 0
        self._retry_pending = False  # klp_transition_work is queued
        self.why: dict[int, str] = {}  # task -> why it has not switched (pr_debug in Linux)
        self._ranges_key: tuple[int, int, int] | None = None
        self._ranges: tuple[list[int], list[tuple[int, int, int]]] = ([], [])
        self._checked_funcs: list[Pointer] = []
        self._ranges_overlap = False
        self.model = check_model(machine.config.consistency_model)
        # A debug switch: without it a task switches whatever its stack holds (what the
        # consistency oracle must then catch).
        self.check_stacks = machine.config.klp_stack_check
        self.safe_points = KthreadSafePoints(self)

    # --- guest state ---------------------------------------------------------------------------

    @property
    def patch(self) -> Pointer | None:
        """klp_transition_patch."""
        value = self.m.read_var_int("klp_transition_patch")
        return self.m.ptr("klp_patch", value) if value else None

    @patch.setter
    def patch(self, value: int | None) -> None:
        self.m.mem.write_u64(self.m.var_addr("klp_transition_patch"), value or 0)

    @property
    def active(self) -> Pointer:
        """klp_transition_patch, where a transition is known to be under way."""
        patch = self.patch
        assert patch is not None, "no livepatch transition is under way"
        return patch

    @property
    def target(self) -> int:
        return self.m.read_var_int("klp_target_state")

    @target.setter
    def target(self, value: int) -> None:
        self.m.mem.write(self.m.var_addr("klp_target_state"), value.to_bytes(4, "little", signed=True))

    def _tasks(self) -> list[Task]:
        return all_tasks(self.m)

    def _flag(self, task: Task, bit: int, on: bool) -> None:
        view = task.view
        flags = view.thread_info.flags
        view.thread_info.flags = flags | (1 << bit) if on else flags & ~(1 << bit)

    def pending(self, task: Task) -> bool:
        return bool(task.view.thread_info.flags >> TIF_PATCH_PENDING & 1)

    # --- the phases ----------------------------------------------------------------------------

    def _log(self, text: str, level: int) -> None:
        """Linux's transition lines; kpatch and livepatch before 4.12 had no transition to tell."""
        if self.model in ("linux", "lazy"):
            log_store(self.m, text, level)

    def init(self, patch: Pointer, state: int) -> None:
        """klp_init_transition: every task starts in the opposite state; every func is marked."""
        name = self.lp.name(patch)
        self._log(f"livepatch: '{name}': initializing {self.verb(state)} transition", LogLevel.DEBUG)
        self.patch = patch
        self.target = state
        start = UNPATCHED if state == PATCHED else PATCHED
        tl = self.m.timeline
        if tl is not None:
            tl.phase("klp_init_transition", patch=name, target=self.verb(state))
        for t in self._tasks():
            t.view.patch_state = start
            if tl is not None:
                tl.task_state(t, start, "klp_init_transition")
        for func in self.lp.all_funcs(patch):
            func.transition = 1

    def abandon(self) -> None:
        """Undo init for an unpatching refused before anything changed (stop_machine's -EBUSY):
        every task back to no transition, the funcs unmarked."""
        for t in self._tasks():
            self._flag(t, TIF_PATCH_PENDING, False)
            t.view.patch_state = IDLE
        for func in self.lp.all_funcs(self.active):
            func.transition = 0
        self.target = IDLE
        self.patch = None

    def start(self) -> None:
        """klp_start_transition: flag every task that still has to switch."""
        name = self.lp.name(self.active)
        self._log(f"livepatch: '{name}': starting {self.verb(self.target)} transition", LogLevel.NOTICE)
        if self.m.timeline is not None:
            self.m.timeline.phase("klp_start_transition", patch=name, target=self.verb(self.target))
        if self.model == "immediate":
            self.switch_all("immediate")
        else:
            for t in self._tasks():
                if t.patch_state != self.target:
                    self._flag(t, TIF_PATCH_PENDING, True)
        if self.model == "lazy":
            # from host context: start() may run inside a hypercall, which cannot call the guest
            self.m.schedule_host_work(0, self._wake_kthreads)
            self.safe_points.install()
        self.signals_cnt = 0

    def switch_all(self, reason: str) -> None:
        """Every task to the target state at once (stop_machine's and immediate's switch)."""
        tl = self.m.timeline
        for t in self._tasks():
            self._flag(t, TIF_PATCH_PENDING, False)
            if t.patch_state != self.target:
                t.view.patch_state = self.target
                if tl is not None:
                    tl.task_state(t, self.target, reason)

    def stop_machine_check(self) -> bool:
        """kpatch's check under stop_machine, for the transition just initialised."""
        if self.m.timeline is not None:
            self.m.timeline.phase("stop_machine")
        return kpatch_verify_activeness_safety(self)

    def _wake_kthreads(self) -> None:
        """kGraft wakes sleeping kernel threads, so that each comes round to its switch point."""
        if self.patch is None:
            return
        for t in self._tasks():
            if t.is_kthread and not t.is_idle and t.running_on is None and self.pending(t):
                self.m.call("wake_up_state", t.addr, TASK_INTERRUPTIBLE)

    @staticmethod
    def verb(state: int) -> str:
        return "patching" if state == PATCHED else "unpatching"

    def try_complete(self) -> CallbackGen:
        """klp_try_complete_transition: switch what can be switched; complete or retry in 1 s."""
        patch = self.patch
        if patch is None:
            return 1
        done = True
        self.why.clear()
        if self.model == "lazy" and not self.safe_points.installed:
            self.safe_points.install()  # a restored snapshot has none of its hooks
        for t in self._tasks():
            if not self.try_switch(t):
                done = False
        tl = self.m.timeline
        if tl is not None:  # which tasks this attempt left blocking, as pr_debug tells them
            blocking = {Task(self.m, addr).comm: why for addr, why in self.why.items()}
            tl.phase("klp_try_complete_transition", complete=done, blocking=blocking)
        if not done:
            if self.signals_cnt and self.signals_cnt % SIGNALS_EVERY == 0:
                self.send_signals()
            self.signals_cnt += 1
            self._schedule_retry()
            return 0
        yield from self.complete()
        self.lp.transition_done(patch)
        return 1

    def _schedule_retry(self) -> None:
        """schedule_delayed_work: a no-op while the work is already queued."""
        if not self._retry_pending:
            self._retry_pending = True
            self.m.schedule_host_work(RETRY_NS, self._retry)

    def _retry(self) -> None:
        """klp_transition_work_fn. It takes klp_mutex: while an operation holds it (waiting for a
        callback the guest runs), the attempt waits too."""
        self._retry_pending = False
        if self.patch is None:
            return
        if self.lp.calls.busy:
            self._schedule_retry()
            return
        self.lp.calls.run(self.try_complete())

    def blockers(self) -> list[tuple[Task, str]]:
        """Each task that has not switched yet and why, checked now without switching anyone:
        what the kernel keeps in pr_debug, and `kgr blocking` shows."""
        if self.patch is None:
            return []
        target = self.target
        return [(t, self.blocker(t)) for t in self._tasks() if t.patch_state != target]

    def blocker(self, task: Task) -> str:
        """Why task, which has not switched, is not switched yet (see blockers)."""
        if self.model == "lazy":
            return "waiting for its switch point" + (" in its loop" if task.is_kthread else "")
        cpu = task.running_on
        if cpu is not None:
            return f"running on cpu{cpu}"
        trace = unwind_sleeping_task(self.m, task)
        if not trace.reliable:
            return f"unreliable stack: {trace.reason}"
        hit = self.check_stack(trace)
        return f"sleeping in function {hit}" if hit else "can switch at the next attempt"

    def try_switch(self, task: Task) -> bool:
        """klp_try_switch_task: a task not on a CPU, whose stack is reliable and holds none of
        the functions being changed, switches now."""
        if task.patch_state == self.target:
            return True
        if self.model == "lazy":  # no stack is ever checked: it switches by itself or not at all
            self.why[task.addr] = "has not reached its switch point"
            if task.is_idle and task.running_on is not None:
                self._wake_up_if_idle(task.running_on)
            return False
        cpu = task.running_on
        if cpu is not None:
            self.why[task.addr] = f"is running on cpu{cpu}"
            if task.is_idle:
                self._wake_up_if_idle(cpu)
            return False
        trace = unwind_sleeping_task(self.m, task)
        if not trace.reliable:
            self.why[task.addr] = f"has an unreliable stack ({trace.reason})"
            return False
        hit = self.check_stack(trace) if self.check_stacks else None
        if hit is not None:
            self.why[task.addr] = f"is sleeping on function {hit}"
            return False
        self._flag(task, TIF_PATCH_PENDING, False)
        task.view.patch_state = self.target
        if self.m.timeline is not None:
            self.m.timeline.task_state(task, self.target, "stack check")
        return True

    def check_stack(self, trace) -> str | None:
        """klp_check_stack_func for every patched func: the name of a function in the way."""
        starts, ranges = self._stack_ranges()
        first = None
        for frame in trace.frames:
            if frame.kind == "user":
                continue
            if self._ranges_overlap:  # rare: a search cannot tell which range holds the frame
                hits = [index for lo, hi, index in ranges if lo <= frame.addr < hi]
            else:
                i = bisect.bisect_right(starts, frame.addr) - 1
                hits = [ranges[i][2]] if i >= 0 and frame.addr < ranges[i][1] else []
            for index in hits:
                first = index if first is None else min(first, index)
        if first is None:
            return None
        return self.m.mem.read_cstr(self._checked_funcs[first].old_name, 512)

    def _stack_ranges(self) -> tuple[list[int], list[tuple[int, int, int]]]:
        """The code no task may be in, as sorted disjoint ranges (start, end, index of the first
        func in patch order that owns it): built once per transition state, so a stack check
        costs a search per frame instead of a pass over every patched function. A function's
        range is the code the task would leave: the new function when unpatching, else what
        runs now (the func below it on the stack, or the original)."""
        key = (int(self.active), self.target, self.lp.patch_layer.generation)
        if self._ranges_key == key:
            return self._ranges
        funcs = [f for o in self.lp.objects(self.active) if o.patched for f in self.lp.funcs(o)]
        owners: dict[tuple[int, int], int] = {}
        for index, f in enumerate(funcs):
            if self.target == UNPATCHED:
                lo, size = f.new_func, f.new_size
            else:
                stack = self.lp.patch_layer.func_stack(f.old_func)
                at = stack.index(f) if f in stack else -1
                below = stack[at + 1] if 0 <= at < len(stack) - 1 else None
                lo, size = (f.old_func, f.old_size) if below is None else (below.new_func, below.new_size)
            if size:
                owners.setdefault((lo, lo + size), index)
        ranges = sorted((lo, hi, index) for (lo, hi), index in owners.items())
        # functions are disjoint or the same one; anything else is checked range by range
        self._ranges_overlap = any(a[1] > b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        self._checked_funcs = funcs
        self._ranges = ([lo for lo, _, _ in ranges], ranges)
        self._ranges_key = key
        return self._ranges

    def _wake_up_if_idle(self, cpu: int) -> None:
        """An idle CPU switches its idle task at the end of an idle-loop pass: make it take one."""
        task = Task(self.m, self.m.pcpu(cpu).current_task)
        if task.is_idle:
            self._flag(task, TIF_NEED_RESCHED, True)
            self.m.raise_irq(cpu, self.m.types.enum("RESCHEDULE_VECTOR"))

    def send_signals(self) -> None:
        """klp_send_signals: kthreads are woken; user tasks get a fake signal."""
        if self.signals_cnt == SIGNALS_EVERY:
            self._log("livepatch: signaling remaining tasks", LogLevel.NOTICE)
        if self.m.timeline is not None:
            self.m.timeline.phase("klp_send_signals")
        for t in self._tasks():
            if t.is_idle or t.patch_state == self.target or not self.pending(t):
                continue
            if t.flags & PF_KTHREAD:
                self.m.call("wake_up_state", t.addr, TASK_INTERRUPTIBLE)
            else:
                self.m.call("signal_wake_up", t.addr)

    def force(self) -> None:
        """klp_force_transition: every remaining task switches, unchecked."""
        log_store(self.m, "livepatch: forcing remaining tasks to the patched state", LogLevel.WARNING)
        tl = self.m.timeline
        if tl is not None:
            tl.phase("klp_force_transition")
        for t in self._tasks():
            if self.pending(t):
                self._flag(t, TIF_PATCH_PENDING, False)
                t.view.patch_state = self.target
                if tl is not None:
                    tl.task_state(t, self.target, "force")
        # Forced patches keep their module for good: the one being removed, or those replaced.
        if self.target == UNPATCHED:
            self.active.forced = 1
        elif self.active.replace:
            for patch in self.lp.patches:
                if patch != self.active:
                    patch.forced = 1

    def cancel(self) -> CallbackGen:
        """klp_cancel_transition: a patch that failed before its transition started goes back."""
        self._log(
            f"livepatch: '{self.lp.name(self.active)}': canceling patching transition, going to unpatch",
            LogLevel.DEBUG,
        )
        self.target = UNPATCHED
        yield from self.complete()
        return 0

    def complete(self) -> CallbackGen:
        """klp_complete_transition."""
        m, lp = self.m, self.lp
        patch, target = self.active, self.target
        name = lp.name(patch)
        self._log(f"livepatch: '{name}': completing {self.verb(target)} transition", LogLevel.DEBUG)
        self.safe_points.remove()
        tl = m.timeline
        if tl is not None:
            tl.phase("klp_complete_transition", patch=name, target=self.verb(target))
        if target == PATCHED and patch.replace:
            for old in lp.patches:  # klp_unpatch_replaced_patches: no callbacks of theirs run
                if old == patch:
                    break
                lp.set_enabled(old, False)
                lp.unpatch_objects(old)
            lp.nops.discard(patch)
        if target == UNPATCHED:
            lp.unpatch_objects(patch)
        for func in lp.all_funcs(patch):
            func.transition = 0
        for t in self._tasks():
            self._flag(t, TIF_PATCH_PENDING, False)
            t.view.patch_state = IDLE
            if tl is not None:
                tl.task_state(t, IDLE, "klp_complete_transition")
        for obj in lp.objects(patch):
            if not lp.is_object_loaded(obj):
                continue
            if target == PATCHED:
                yield from callbacks.post_patch(m, obj)
            else:
                yield from callbacks.post_unpatch(m, obj)
        self._log(f"livepatch: '{name}': {self.verb(target)} complete", LogLevel.NOTICE)
        self.target = IDLE
        self.patch = None
        self.why.clear()
        return 0

    def reverse(self) -> None:
        """klp_reverse_transition: the other way, from where each task is now."""
        name = self.lp.name(self.active)
        old = self.target
        self._log(
            f"livepatch: '{name}': reversing transition from {self.verb(old)} to {self.verb(1 - old)}",
            LogLevel.DEBUG,
        )
        if self.m.timeline is not None:
            self.m.timeline.phase("klp_reverse_transition", patch=name, target=self.verb(1 - old))
        for t in self._tasks():
            self._flag(t, TIF_PATCH_PENDING, False)
        self.target = 1 - old
        self.lp.set_enabled(self.active, self.target == PATCHED)
        self.start()
