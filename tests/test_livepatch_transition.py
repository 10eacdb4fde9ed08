"""Enabling and disabling a patch built from Python: the transition, its log, sysfs, errors."""

from __future__ import annotations

import pytest
from machine_util import booted_system

from klpemu.errors import KlpemuError
from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.printk import records
from klpemu.kernel.tasks import all_tasks

SEC = 1_000_000_000
LP = "/sys/kernel/livepatch"


@pytest.fixture
def system():
    return booted_system()


def klp_lines(m):
    return [r.text for r in records(m) if r.text.startswith("livepatch:")]


def make_patch(m, name="livepatch_sample", old="cmdline_proc_show", new="version_proc_show", sympos=0):
    b = KlpBuilder(m.kernel.livepatch)
    return b.patch(name, [b.object(None, [b.func(old, new, sympos)])])


def settle(m, timeout=5 * SEC):
    lp = m.kernel.livepatch
    assert m.run_until(lambda: lp.transition.patch is None, timeout)


def test_enable_and_disable_transcript(system):
    m, vfs = system.machine, system.vfs
    original = system.console.read_file("/proc/cmdline")
    version = system.console.read_file("/proc/version")
    lp = m.kernel.livepatch
    lp.enable(make_patch(m))
    assert vfs.read(f"{LP}/livepatch_sample/transition") == "1\n"
    settle(m)
    assert vfs.read(f"{LP}/livepatch_sample/enabled") == "1\n"
    assert vfs.read(f"{LP}/livepatch_sample/transition") == "0\n"
    assert vfs.read(f"{LP}/livepatch_sample/stack_order") == "1\n"
    assert vfs.read(f"{LP}/livepatch_sample/vmlinux/patched") == "1\n"
    assert vfs.exists(f"{LP}/livepatch_sample/vmlinux/cmdline_proc_show,1")
    assert all(t.patch_state == -1 for t in all_tasks(m))
    assert system.console.read_file("/proc/cmdline") == version
    vfs.write(f"{LP}/livepatch_sample/enabled", "0\n")
    settle(m)
    assert not vfs.exists(f"{LP}/livepatch_sample")
    assert system.console.read_file("/proc/cmdline") == original
    assert klp_lines(m) == [
        "livepatch: enabling patch 'livepatch_sample'",
        "livepatch: 'livepatch_sample': initializing patching transition",
        "livepatch: 'livepatch_sample': starting patching transition",
        "livepatch: 'livepatch_sample': completing patching transition",
        "livepatch: 'livepatch_sample': patching complete",
        "livepatch: 'livepatch_sample': initializing unpatching transition",
        "livepatch: 'livepatch_sample': starting unpatching transition",
        "livepatch: 'livepatch_sample': completing unpatching transition",
        "livepatch: 'livepatch_sample': unpatching complete",
    ]


def test_a_task_sleeping_in_the_function_blocks_until_forced(system):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    # khungtaskd never leaves watchdog(): patching watchdog cannot complete by itself.
    # (The new function must not be on anyone's stack, or unpatching would block on it.)
    lp.enable(make_patch(m, "blocked", "watchdog", "version_proc_show"))
    m.run(3 * SEC)
    assert lp.transition.patch is not None
    blockers = {m.struct("task_struct", a).comm.decode(): why for a, why in lp.transition.why.items()}
    assert blockers == {"khungtaskd": "is sleeping on function watchdog"}
    khung = next(t for t in all_tasks(m) if t.comm == "khungtaskd")
    assert khung.patch_state == 0 and khung.view.thread_info.flags >> 13 & 1
    assert vfs.read(f"/proc/{khung.pid}/patch_state") == "0\n"
    vfs.write(f"{LP}/blocked/force", "1")
    assert khung.patch_state == 1 and lp.transition.patch is not None  # completes at the next attempt
    assert m.run_until(lambda: lp.transition.patch is None, SEC)
    assert "livepatch: forcing remaining tasks to the patched state" in klp_lines(m)
    assert klp_lines(m)[-1] == "livepatch: 'blocked': patching complete"


def test_signals_after_15_retries(system):
    m = system.machine
    lp = m.kernel.livepatch
    lp.enable(make_patch(m, "blocked", "watchdog", "version_proc_show"))
    # Attempts at 0 s, 1 s, 2 s...; the 16th (at about 15 s) is the first to signal.
    m.run(int(14.5 * SEC))
    assert "livepatch: signaling remaining tasks" not in klp_lines(m)
    m.run(1 * SEC)
    assert klp_lines(m).count("livepatch: signaling remaining tasks") == 1
    m.run(10 * SEC)  # the next signals come 15 attempts later, without a second log line
    assert klp_lines(m).count("livepatch: signaling remaining tasks") == 1


def test_reversing_a_stuck_transition(system):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    lp.enable(make_patch(m, "blocked", "watchdog", "version_proc_show"))
    m.run(2 * SEC)
    vfs.write(f"{LP}/blocked/enabled", "0")
    settle(m)
    assert "livepatch: 'blocked': reversing transition from patching to unpatching" in klp_lines(m)
    assert klp_lines(m)[-1] == "livepatch: 'blocked': unpatching complete"
    assert not vfs.exists(f"{LP}/blocked")


@pytest.mark.parametrize(
    "old, sympos, message",
    [
        ("no_such_function", 0, "symbol 'no_such_function' not found in symbol table"),
        ("get_idle_time", 0, "unresolvable ambiguity for symbol 'get_idle_time' in object '(null)'"),
        ("get_idle_time", 3, "symbol position 3 for symbol 'get_idle_time' in object 'vmlinux' not found"),
        ("__switch_to", 0, "failed to find location for function '__switch_to+0x0/"),
    ],
)
def test_bad_patches_fail_with_einval_and_leave_nothing(system, old, sympos, message):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    sites = [m.mem.read(ip, 5) for ip in m.kernel.ftrace.records.ips()]
    with pytest.raises(KlpemuError) as e:
        lp.enable(make_patch(m, "bad", old, "version_proc_show", sympos))
    assert e.value.errno == 22
    assert str(e.value).startswith(message)
    assert lp.patches == [] and lp.transition.patch is None and m.kernel.klp_patch.ops == {}
    assert [m.mem.read(ip, 5) for ip in m.kernel.ftrace.records.ips()] == sites
    assert vfs.listdir(LP) == []
    assert all(t.patch_state == -1 for t in all_tasks(m))


def test_sympos_picks_the_right_duplicate(system):
    m = system.machine
    patch = make_patch(m, "pos", "get_idle_time", "version_proc_show", 2)
    m.kernel.livepatch.enable(patch)
    settle(m)
    func = m.kernel.livepatch.all_funcs(patch)[0]
    assert m.struct("klp_func", func).old_func == m.image.lookup("get_idle_time", 2).addr
    assert system.vfs.exists(f"{LP}/pos/vmlinux/get_idle_time,2")


def test_one_transition_at_a_time_and_sysfs_rules(system):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    lp.enable(make_patch(m, "blocked", "watchdog", "version_proc_show"))
    with pytest.raises(KlpemuError) as e:
        lp.enable(make_patch(m, "second"))
    assert e.value.errno == 16
    with pytest.raises(KlpemuError) as e:
        vfs.write(f"{LP}/blocked/enabled", "1")  # the value it has
    assert e.value.errno == 22
    with pytest.raises(KlpemuError) as e:
        vfs.write(f"{LP}/blocked/enabled", "maybe")
    assert e.value.errno == 22
    vfs.write(f"{LP}/blocked/force", "1")
    settle(m)
    with pytest.raises(KlpemuError) as e:
        vfs.write(f"{LP}/blocked/force", "1")  # not in transition any more
    assert e.value.errno == 22


def test_blocking_names_the_task_and_its_function(system):
    from machine_util import shell_run

    m = system.machine
    m.kernel.livepatch.enable(make_patch(m, "blocked", "watchdog", "version_proc_show"))
    m.run(2 * SEC)  # the idle CPUs have switched by now
    status, out, _ = shell_run(system, "blocking")
    lines = out.splitlines()
    assert status == 0 and lines[0].startswith("'blocked': patching transition, attempt ")
    khung = next(t for t in all_tasks(m) if t.comm == "khungtaskd")
    assert lines[1:] == [f"{khung.pid:>5} {'[khungtaskd]':<16} sleeping in function watchdog"]
    _, out, _ = shell_run(system, "blocking -vv")
    assert "        watchdog+0x" in out and "        __schedule+0x" in out
    assert out.splitlines()[-1].startswith(
        "force: 'echo 1 > /sys/kernel/livepatch/blocked/force' switches these tasks unchecked. A forced "
        "unpatching transition"
    )


def test_wait_and_kmsg_as_the_selftests_use_them(system):
    from machine_util import shell_run

    m = system.machine
    m.kernel.livepatch.enable(make_patch(m))
    status, _, err = shell_run(
        system,
        "echo '=== marker' > /dev/kmsg; "
        f"wait {LP}/livepatch_sample/transition 0; "
        f"echo 0 > {LP}/livepatch_sample/enabled; "
        f"wait --gone {LP}/livepatch_sample",
    )
    assert status == 0, err
    assert [r.text for r in records(m)].index("=== marker") < len(records(m)) - 1
    m.kernel.livepatch.enable(make_patch(m, "blocked", "watchdog", "version_proc_show"))
    status, _, err = shell_run(system, f"wait {LP}/blocked/transition 0 2s")
    assert status == 1 and err == f"wait: {LP}/blocked/transition did not read '0' after 2s\n"
