"""klab_sleeper: threads asleep inside a chosen function until their pid (or -1) is written to
its release parameter, or the module is removed; bad func= lists start nothing."""

from __future__ import annotations

import pytest
from machine_util import booted_system, shell_run

from klpemu.kernel.printk import dmesg
from klpemu.lab.inspect import tasks_named

RELEASE = "/sys/module/klab_sleeper/parameters/release"


@pytest.fixture
def system():
    s = booted_system()
    status, _, err = shell_run(s, "insmod klab_sleeper func=klab_apply_entry,klab_read_config; sleep 100ms")
    assert status == 0, err
    return s


def test_each_thread_sleeps_in_its_function(system):
    threads = tasks_named(system, "klabd/")
    assert sorted(threads) == ["klabd/0", "klabd/1"]
    for comm, func in (("klabd/0", "klab_apply_entry"), ("klabd/1", "klab_read_config")):
        _, stack, _ = shell_run(system, f"cat /proc/{threads[comm]}/stack")
        frames = [line.split("] ")[1].split("+")[0] for line in stack.splitlines()]
        assert frames[frames.index("klab_wait") + 1] == func
        assert "klab_thread" in frames
    _, out, _ = shell_run(system, "cat /sys/module/klab_sleeper/parameters/threads")
    assert out.strip() == "2"


def test_release_by_pid_then_all(system):
    threads = tasks_named(system, "klabd/")
    shell_run(system, f"echo {threads['klabd/1']} > {RELEASE}; sleep 100ms")
    assert sorted(tasks_named(system, "klabd/")) == ["klabd/0"]
    assert "klab_read_config: klabd/1 released" in dmesg(system.machine)
    shell_run(system, f"echo -1 > {RELEASE}; sleep 100ms")
    assert tasks_named(system, "klabd/") == {}


def test_rmmod_lets_them_go(system):
    status, _, err = shell_run(system, "rmmod klab_sleeper")
    assert status == 0, err
    assert tasks_named(system, "klabd/") == {}


@pytest.mark.parametrize("func", ["schedule", "klab_commit,nope", ""])
def test_bad_func_starts_nothing(func):
    s = booted_system()
    status, _, err = shell_run(s, f"insmod klab_sleeper func={func}")
    assert status != 0
    assert "Invalid parameters" in err
    assert tasks_named(s, "klabd/") == {}
    assert "klab_sleeper: func=" in dmesg(s.machine)
