"""Workqueues: work runs in kworker threads; flush and cancel wait; delayed work waits for its timer;
a sleeping work item does not starve the others (the pool keeps a spare worker)."""

from __future__ import annotations

import pytest
from machine_util import MS, booted_system, shell_run, task_by_comm

from klpemu.kernel.printk import records
from klpemu.kernel.stacktrace import unwind_task
from klpemu.kernel.tasks import all_tasks

# test_workqueue's init, one line per promise. On one CPU nothing else runs while init queues.
EXPECTED = [
    "schedule_work: 1, again while pending: 0",
    "flush_work: 1, runs: 1, in a kworker: 1",
    "flush_work of an idle work: 0",
    "cancel_work_sync of a pending work: 1, runs: 1",
    "cancel_work_sync of an idle work: 0",
    "flush_work of a delayed work on its timer: 0",
    "flush_delayed_work: 1, ran before its delay: 1",  # flushing a delayed work runs it now
    "a delayed work left alone ran: 1, after its delay: 1",
    "cancel_delayed_work_sync of an armed work: 1, ran: 0",
    "a sleeping work let another run: 1, in another kworker: 1",
    "cancel_work_sync of a running work: 0, it had finished: 1",
]


def module_lines(system, name: str) -> list[str]:
    prefix = f"{name}: "
    return [r.text[len(prefix) :] for r in records(system.machine) if r.text.startswith(prefix)]


@pytest.mark.parametrize("cpus", [1, 2])
def test_workqueue_promises(cpus):
    system = booted_system(cpus=cpus)
    status, out, err = shell_run(system, "insmod test_workqueue.ko; rmmod test_workqueue")
    assert (status, out, err) == (0, "", "")
    lines = module_lines(system, "test_workqueue")
    if cpus == 1:
        assert lines == EXPECTED
    else:  # another CPU's kworker may take a work item before init looks at it again
        assert len(lines) == len(EXPECTED)
        assert lines[1:] == EXPECTED[1:] or lines[2:] == EXPECTED[2:]


def kworkers(m) -> list[str]:
    return sorted(t.comm for t in all_tasks(m) if t.comm.startswith("kworker/"))


def test_the_pool_keeps_a_spare_worker_and_grows_only_as_work_sleeps():
    system = booted_system()
    m = system.machine
    m.run(200 * MS)
    # vmstat's periodic work runs on kworker/0:1, which made kworker/0:2 its spare.
    assert kworkers(m) == ["kworker/0:1", "kworker/0:2"]
    assert shell_run(system, "insmod test_workqueue.ko")[0] == 0
    # Two work items slept at once: a third worker kept the pool with a spare.
    assert kworkers(m) == ["kworker/0:1", "kworker/0:2", "kworker/0:3"]


def test_vmstat_is_a_delayed_work_run_by_a_kworker():
    system = booted_system()
    m = system.machine
    before = m.var("vm_stat").updates
    m.run(1000 * MS)
    assert 9 <= m.var("vm_stat").updates - before <= 11  # every 100 ms
    # Between runs, the workers sleep in worker_thread, as Linux's idle kworkers do.
    for comm in ("kworker/0:1", "kworker/0:2"):
        frames = [f.symbol.split("+")[0] for f in unwind_task(m, task_by_comm(m, comm)).kernel_frames]
        assert "worker_thread" in frames, frames
