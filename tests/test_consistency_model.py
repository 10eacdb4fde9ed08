"""The consistency model under random enable / disable / reverse / force / replace sequences.

Every switch of a task's patch_state is recorded, whether the host switches it after its stack
check or the task switches itself (klp_update_patch_state, at kernel exit or in the idle loop),
and checked independently: at the moment of the switch, no function being changed may be on the
task's stack, unless the transition was forced.
"""

from __future__ import annotations

import random

import pytest
from machine_util import booted_system
from unicorn import UC_HOOK_CODE
from unicorn import x86_const as x

from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.stacktrace import Unwinder, unwind_task
from klpemu.kernel.tasks import TIF_PATCH_PENDING, Task, all_tasks

MS = 1_000_000
# Redirects that keep the kernel working: the new functions have the old ones' behaviour.
POOL = [
    ("watchdog", "version_proc_show"),  # khungtaskd is always inside watchdog: it blocks
    ("cmdline_proc_show", "version_proc_show"),
    ("meminfo_proc_show", "uptime_proc_show"),
    ("uptime_proc_show", "version_proc_show"),
]


def changed_ranges(m, lp):
    """[lo, hi) of each function a switching task must not be in (klp_check_stack_func's)."""
    tr = lp.transition
    ranges = []
    for func in lp.all_funcs(tr.patch):
        f = m.struct("klp_func", func)
        if tr.target == 0:
            ranges.append((f.new_func, f.new_func + f.new_size))
        else:
            stack = lp.patch_layer.func_stack(f.old_func)
            i = stack.index(func) if func in stack else -1
            if 0 <= i < len(stack) - 1:
                prev = m.struct("klp_func", stack[i + 1])
                ranges.append((prev.new_func, prev.new_func + prev.new_size))
            else:
                ranges.append((f.old_func, f.old_func + f.old_size))
    return ranges


class Recorder:
    def __init__(self, system):
        self.m = system.machine
        self.lp = self.m.kernel.livepatch
        self.switches = []  # (pid, comm, where, target)
        self.violations = []
        self.forced = False
        tr = self.lp.transition
        orig = tr.try_switch

        def try_switch(task):
            before = task.patch_state
            ok = orig(task)
            if ok and before != tr.target:
                self._check(task, unwind_task(self.m, task), "host")
            return ok

        tr.try_switch = try_switch
        addr = self.m.image.addr("klp_update_patch_state")
        self.m.uc.hook_add(UC_HOOK_CODE, self._guest_switch, None, addr, addr)
        self.m.uc.ctl_remove_cache(addr, addr + 1)

    def _guest_switch(self, uc, address, size, _ud):
        task = Task(self.m, uc.reg_read(x.UC_X86_REG_RDI))
        if self.lp.transition.patch is None or not task.view.thread_info.flags >> TIF_PATCH_PENDING & 1:
            return
        # The task switches itself right here: walk its stack from the live registers.
        trace = Unwinder(self.m).from_regs(
            address, uc.reg_read(x.UC_X86_REG_RSP), uc.reg_read(x.UC_X86_REG_RBP), task.stack_base, task.stack_top
        )
        self._check(task, trace, "guest")

    def _check(self, task, trace, where):
        tr = self.lp.transition
        self.switches.append((task.pid, task.comm, where, tr.target))
        if self.forced:
            return
        addrs = [f.addr for f in trace.frames if f.kind != "user"]
        for lo, hi in changed_ranges(self.m, self.lp):
            hit = [a for a in addrs if lo <= a < hi]
            if hit:
                self.violations.append((task.comm, where, self.m.image.symbolize(hit[0])))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences_keep_the_consistency_model(seed):
    system = booted_system(seed=seed)
    m = system.machine
    lp = m.kernel.livepatch
    rec = Recorder(system)
    rng = random.Random(seed)
    b = KlpBuilder(m.kernel.livepatch)
    made = replaced = 0
    for _ in range(40):
        action = rng.choice(["enable", "enable", "replace", "replace", "disable", "reverse", "force", "run"])
        tr = lp.transition
        if action == "enable" and tr.patch is None:
            old, new = rng.choice(POOL)
            made += 1
            lp.enable(b.patch(f"p{made}", [b.object(None, [b.func(old, new)])]))
        elif action == "replace" and tr.patch is None:
            # A cumulative patch: nops for whatever the installed patches change and it does not.
            picks = rng.sample(POOL, rng.randint(1, 2))
            made += 1
            lp.enable(b.patch(f"p{made}", [b.object(None, [b.func(o, n) for o, n in picks])], replace=True))
            replaced += 1
        elif action == "disable" and tr.patch is None and lp.patches:
            lp.disable(rng.choice(lp.patches))
        elif action == "reverse" and tr.patch is not None:
            lp.write_enabled(tr.patch, not m.struct("klp_patch", tr.patch).enabled)
        elif action == "force" and tr.patch is not None and rng.random() < 0.3:
            rec.forced = True
            lp.write_force(tr.patch, True)
            rec.forced = False
        m.run(rng.randint(1, 1500) * MS)
        assert m.oops is None
        assert system.kernel.check_consistency() == [], action  # host caches agree with guest memory
    assert rec.violations == []
    assert replaced > 0
    assert len(rec.switches) > 10
    assert {w for _, _, w, _ in rec.switches} == {"host", "guest"}  # both paths were exercised
    # Whatever remains in transition can still be finished by force, leaving every task idle.
    if lp.transition.patch is not None:
        lp.write_force(lp.transition.patch, True)
        assert m.run_until(lambda: lp.transition.patch is None, 1100 * MS)  # at the next attempt
    assert all(t.patch_state == -1 for t in all_tasks(m))
