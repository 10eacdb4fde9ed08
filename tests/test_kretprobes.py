"""Kretprobes: the return handler, maxactive and nmissed, the unwinder seeing through the
trampoline, and a livepatch transition past a task sleeping under a kretprobe'd function."""

from __future__ import annotations

import pytest
from machine_util import MS, booted_system, settle, shell_run, task_by_comm

from klpemu.errors import KlpemuError
from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.printk import records
from klpemu.kernel.stacktrace import unwind_task
from klpemu.kernel.tasks import all_tasks
from klpemu.system import System

SEC = 1000 * MS


@pytest.fixture
def system() -> System:
    return booted_system()


def test_return_handler_sees_the_real_return_address_and_the_value(system):
    m = system.machine
    seen = []
    m.kernel.kprobes.kretprobes.add(
        "cmdline_proc_show", handler=lambda ri, regs: seen.append((ri.ret_addr, regs.ax, regs.ip))
    )
    status, out, _ = shell_run(system, "cat /proc/cmdline")
    assert status == 0 and out == m.config.cmdline + "\n"
    ((ret_addr, ax, ip),) = seen
    assert ip == ret_addr  # regs->ip is set to the return address before the handlers (5.15+)
    # Just after seq_read_iter's indirect call of the show function, not the trampoline.
    assert m.image.function_at(ret_addr).name == "seq_read_iter"
    assert m.mem.read(ret_addr - 2, 2) == bytes.fromhex("ffd0")  # call *%rax
    assert ax == 0  # cmdline_proc_show returns 0


def test_kretprobe_must_be_at_a_function_entry(system):
    m = system.machine
    rp = m.kernel.kprobes.kretprobes
    before = dict(m.heap._sizes)
    with pytest.raises(KlpemuError) as e:
        rp.add("no_such_function")
    assert e.value.errno == 2
    with pytest.raises(KlpemuError) as e:
        rp.add("kprobe_table")  # data: kallsyms finds it, check_kprobe_address_safe refuses it
    assert e.value.errno == 22
    # +5 is not the entry: built by hand, as a module would
    kr = m.heap.kzalloc(m.types.sizeof("kretprobe"))
    m.struct("kretprobe", kr).kp.addr = m.image.addr("cmdline_proc_show") + 5
    with pytest.raises(KlpemuError) as e:
        rp.register(kr)
    assert e.value.errno == 22
    m.heap.free(kr)
    assert dict(m.heap._sizes) == before


def test_maxactive_and_nmissed(system):
    m = system.machine
    settle(m)
    rps = m.kernel.kprobes.kretprobes
    hits = []
    # schedule: every sleeping task holds an instance until it wakes, so one is not enough.
    rp = rps.add("schedule", handler=lambda ri, regs: hits.append(ri.ret_addr), maxactive=1)
    assert m.struct("kretprobe", rp).maxactive == 1
    m.run(3 * SEC)
    assert hits and rps.nmissed(rp) > 0
    default = rps.add("version_proc_show")
    assert m.struct("kretprobe", default).maxactive == max(10, 2 * len(m.cpus))
    instances = list(rps.registered[rp].instances)
    waiting = {ri.addr_of() for t in all_tasks(m) for ri in rps.instances_of(t)}
    out = [ri for ri in instances if ri in waiting]
    rps.unregister(rp)
    m.run(3 * SEC)  # an instance still out on a stack returns normally, then is handed back
    rps.reap_orphans()
    assert m.oops is None
    assert out and not any(ri in m.heap._sizes for ri in instances)


def sleeping_under_kretprobe(system):
    """khungtaskd asleep in schedule_timeout_interruptible, entered after the kretprobe went in."""
    m = system.machine
    rps = m.kernel.kprobes.kretprobes
    rps.add("schedule_timeout_interruptible", handler=lambda ri, regs: 0)
    task = task_by_comm(m, "khungtaskd")
    assert m.run_until(lambda: bool(rps.instances_of(task)) and task.running_on is None and task.state != 0, 5 * SEC)
    return task


def test_the_unwinder_recovers_the_return_address(system):
    m = system.machine
    task = sleeping_under_kretprobe(system)
    trace = unwind_task(m, task)
    names = [f.symbol.split("+")[0] for f in trace.frames]
    assert trace.reliable, trace.reason
    assert "watchdog" in names and "__kretprobe_trampoline" not in names
    (ri,) = m.kernel.kprobes.kretprobes.instances_of(task)
    assert m.image.function_at(ri.ret_addr).name == "watchdog"
    # Without the instance the trampoline hides the caller: the stack is unreliable.
    fp = ri.fp
    ri.fp = 0
    trace = unwind_task(m, task)
    assert not trace.reliable and "kretprobe trampoline" in trace.reason
    ri.fp = fp


def test_transition_completes_past_a_task_sleeping_under_a_kretprobe(system):
    m = system.machine
    task = sleeping_under_kretprobe(system)
    lp = m.kernel.livepatch
    b = KlpBuilder(m.kernel.livepatch)
    lp.enable(b.patch("unrelated", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])]))
    assert m.run_until(lambda: lp.transition.patch is None, 5 * SEC)
    assert task.patch_state == -1


def test_the_recovered_caller_blocks_a_patch_of_it(system):
    m = system.machine
    task = sleeping_under_kretprobe(system)
    lp = m.kernel.livepatch
    b = KlpBuilder(m.kernel.livepatch)
    lp.enable(b.patch("watchdog", [b.object(None, [b.func("watchdog", "version_proc_show")])]))
    m.run(1 * MS)
    # The trampoline stands where watchdog's return address was; the recovered one names it.
    assert any(t.addr == task.addr and r == "sleeping in function watchdog" for t, r in lp.transition.blockers())


def test_a_dead_tasks_instances_are_recycled(tmp_path):
    """kprobe_flush_task: a task that dies inside a kretprobe'd call (do_exit never returns)
    gives its instance back from finish_task_switch, so one instance serves every thread."""
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    from klpemu.modbuild import build_module

    src = tmp_path / "threads.c"
    src.write_text(r"""
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/delay.h>

static int nthreads = 1;
module_param(nthreads, int, 0444);

static int return_at_once(void *unused)
{
	return 0;
}

static int __init threads_init(void)
{
	int i;

	for (i = 0; i < nthreads; i++) {
		kthread_create(return_at_once, NULL, "short-lived");
		msleep(20);
	}
	return 0;
}

static void __exit threads_exit(void)
{
}
module_init(threads_init);
module_exit(threads_exit);
MODULE_LICENSE("GPL");
""")
    ko = build_module(src)
    system = booted_system()
    m = system.machine
    rps = m.kernel.kprobes.kretprobes
    rp = rps.add("do_exit", handler=lambda ri, regs: 0, maxactive=1)
    status, _, err = shell_run(system, f"insmod {ko} nthreads=3")
    assert status == 0 and err == ""
    m.run(50 * MS)
    # Each thread took the one instance; each death gave it back.
    assert m.kernel.kprobes.view(rps.kprobe_of(rp)).nmissed == 0 and rps.nmissed(rp) == 0
    assert m.struct("kretprobe", rp).freelist.first == rps.registered[rp].instances[0]
    assert m.oops is None


def nested_kretprobes(system, corrupt):
    """A kretprobe on seq_read_iter and one on the show function it calls; the inner one's
    entry handler runs corrupt(outer instance) while that instance waits on the task's list."""
    m = system.machine
    rps = m.kernel.kprobes.kretprobes
    outer_hits, outer_calls = [], []
    outer = rps.add(
        "seq_read_iter",
        handler=lambda ri, regs: outer_hits.append(ri.ret_addr) or 0,
        entry_handler=lambda ri, regs: outer_calls.append(ri.addr_of()) or 0,
    )

    def entry(ri, regs):
        (waiting,) = [w for t in all_tasks(m) for w in rps.instances_of(t) if w.rp == outer]
        corrupt(waiting)
        return 0

    rps.add("cmdline_proc_show", entry_handler=entry, maxactive=1)
    shell_run(system, "cat /proc/cmdline")
    return len(outer_calls), len(outer_hits)


def test_an_instance_for_another_frame_on_top_warns_once_and_stops(system):
    """WARN_ON_ONCE(ri->fp != frame_pointer): the handlers stop there, the call still returns."""
    m = system.machine
    seq = len(records(m))
    calls, hits = nested_kretprobes(system, lambda ri: setattr(ri, "fp", ri.fp + 8))
    assert m.oops is None and hits == calls - 1  # not the call whose instance was wrong
    texts = [r.text for r in records(m)][seq:]
    at = texts.index("------------[ cut here ]------------")
    assert texts[at + 1].startswith("WARNING: at kernel/kprobes.c:") and texts[at + 1].endswith(
        " __kretprobe_trampoline_handler"
    )
    status, out, _ = shell_run(system, "cat /proc/version")  # the task went on normally
    assert status == 0 and out


def test_no_return_address_to_go_back_to_is_a_bug(system):
    m = system.machine
    trampoline = m.kernel.kprobes.kretprobes.trampoline
    nested_kretprobes(system, lambda ri: setattr(ri, "ret_addr", trampoline))
    assert m.oops is not None
    texts = [r.text for r in records(m)]
    at = texts.index(
        "kprobes: kretprobe: Return address not found, not execute handler. Maybe there is a bug in the kernel."
    )
    assert texts[at + 1].startswith("Kernel panic - not syncing: BUG at kernel/kprobes.c:")
