"""The four consistency models (klpemu/kernel/livepatch/models.py), each as its kernel log tells
it: Linux's per-task transition, kpatch's stop_machine (all at once, or -EBUSY with its report),
kGraft's lazy switch (no stack checks; kernel threads at their loop's point) and the immediate
redirection of livepatch before 4.12."""

from __future__ import annotations

import re

import pytest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.printk import records
from klpemu.machine.machine import Machine, MachineConfig

SAMPLE = "/sys/kernel/livepatch/livepatch_sample"


def log_since(m, seq: int, keep=("livepatch", "kpatch")) -> list[str]:
    return [r.dmesg_line() for r in records(m, seq) if any(k in r.text for k in keep) and "taint" not in r.text]


def run(system, cmd: str) -> str:
    status, out, err = shell_run(system, cmd)
    return out + err


def sample_round_trip(model: str) -> tuple[list[str], str]:
    system = booted_system(consistency_model=model)
    m = system.machine
    seq = m.var("printk_rb").next_seq
    out = run(
        system,
        f"insmod livepatch-sample; cat {SAMPLE}/transition; wait {SAMPLE}/transition 0 60s; cat /proc/cmdline; "
        f"echo 0 > {SAMPLE}/enabled; wait --gone {SAMPLE} 60s; cat /proc/cmdline",
    )
    return log_since(m, seq), out


def test_unknown_model_is_refused():
    with pytest.raises(KlpemuError, match="unknown consistency model 'kgraft'"):
        Machine(MachineConfig(consistency_model="kgraft"))


def test_linux_is_the_default():
    assert MachineConfig().consistency_model == "linux"


def test_immediate_switches_everyone_at_once():
    log, out = sample_round_trip("immediate")
    assert out.splitlines()[0] == "0"  # no transition was ever pending
    assert out.splitlines()[1] == "this has been live patched"
    assert log == [
        "[    0.000042] livepatch: enabling patch 'livepatch_sample'",
    ]


def test_stop_machine_loads_and_unloads_at_once():
    log, out = sample_round_trip("stop_machine")
    assert out.splitlines()[:2] == ["0", "this has been live patched"]
    assert log == [
        "[    0.000042] livepatch: enabling patch 'livepatch_sample'",
        "[    0.000042] kpatch: loaded patch module 'livepatch_sample'",
        "[    0.000066] kpatch: unloaded patch module 'livepatch_sample'",
    ]


def test_lazy_waits_for_each_task_to_reach_its_switch_point():
    """No stack check: the sample's patch completes once sh has been out to user mode, and its
    removal waits for sh, asleep in the kernel, until the fake signal of the 15th retry."""
    log, out = sample_round_trip("lazy")
    assert out.splitlines()[:2] == ["1", "this has been live patched"]
    assert log == [
        "[    0.000042] livepatch: enabling patch 'livepatch_sample'",
        "[    0.000042] livepatch: 'livepatch_sample': initializing patching transition",
        "[    0.000042] livepatch: 'livepatch_sample': starting patching transition",
        "[    2.000042] livepatch: 'livepatch_sample': completing patching transition",
        "[    2.000042] livepatch: 'livepatch_sample': patching complete",
        "[    2.000064] livepatch: 'livepatch_sample': initializing unpatching transition",
        "[    2.000064] livepatch: 'livepatch_sample': starting unpatching transition",
        "[   17.000064] livepatch: signaling remaining tasks",
        "[   18.000064] livepatch: 'livepatch_sample': completing unpatching transition",
        "[   18.000064] livepatch: 'livepatch_sample': unpatching complete",
    ]


def test_lazy_switches_kernel_threads_at_their_loop_not_by_their_stack():
    """krecurse sleeps 8 frames deep; under lazy it switches only when back in recurse_thread."""
    system = booted_system(consistency_model="lazy")
    m = system.machine
    from klpemu import timeline

    timeline.start(m)
    run(system, f"insmod livepatch-sample; wait {SAMPLE}/transition 0 60s")
    reasons = {
        (ev["tid"], ev["args"]["reason"])
        for ev in m.timeline.events
        if ev.get("ph") == "i" and ev.get("args", {}).get("state") == 1
    }
    names = {ev["tid"]: ev["args"]["name"] for ev in m.timeline.events if ev.get("name") == "thread_name"}
    timeline.stop(m)
    by_task = {names[tid].rsplit("-", 1)[0]: reason for tid, reason in reasons if tid in names}
    assert by_task["krecurse"] == "kthread safe point"
    assert by_task["khungtaskd"] == "kthread safe point"
    assert "stack check" not in by_task.values()


def test_stop_machine_fails_with_ebusy_on_a_sleeper_in_the_function():
    system = booted_system(consistency_model="stop_machine")
    m = system.machine
    run(system, "insmod klab_sleeper func=klab_commit; sleep 10ms")
    seq = m.var("printk_rb").next_seq
    status, out, err = shell_run(system, "insmod klab_sleeper_patch target=klab_commit; lsmod")
    assert err.splitlines()[0] == ("insmod: ERROR: could not insert module klab_sleeper_patch: Device or resource busy")
    assert "klab_sleeper_patch" not in out
    log = [re.sub(r"\[<[0-9a-f]+>\]", "[<...>]", line) for line in log_since(m, seq)]
    assert log == [
        "[    0.010056] livepatch: enabling patch 'klab_sleeper_patch'",
        "[    0.010056] kpatch: activeness safety check failed for klab_commit",
        "[    0.010056] kpatch: PID: 9 Comm: klabd/0",
        "[    0.010056] kpatch:   [<...>] __schedule+0x186/0x2a8",
        "[    0.010056] kpatch:   [<...>] schedule+0x1f/0x39",
        "[    0.010056] kpatch:   [<...>] schedule_timeout+0xb3/0xd3",
        "[    0.010056] kpatch:   [<...>] klab_wait+0x53/0x92 [klab_sleeper]",
        "[    0.010056] kpatch:   [<...>] klab_commit+0x33/0x52 [klab_sleeper]",
        "[    0.010056] kpatch:   [<...>] klab_run_job.isra.0+0xc/0xe [klab_sleeper]",
        "[    0.010056] kpatch:   [<...>] klab_thread+0xe/0x21 [klab_sleeper]",
        "[    0.010056] kpatch:   [<...>] ret_from_fork+0x34/0x3c",
        "[    0.010056] kpatch:   [<...>] ret_from_fork_asm+0x11/0x2e",
    ]
    # nothing is left of the refused patch: the site is a NOP5 again
    assert not m.kernel.livepatch.patches and m.kernel.livepatch.transition.patch is None
    assert "ftrace_trampoline" not in run(system, "disas klab_commit | head -n 2")


def test_kpatch_load_retries_a_busy_stop_machine_load_as_it_always_did():
    system = booted_system(consistency_model="stop_machine")
    run(system, "insmod klab_sleeper func=klab_commit")
    status, out, err = shell_run(system, "kpatch load klab_sleeper_patch; cat /proc/uptime")
    busy = "insmod: ERROR: could not insert module klab_sleeper_patch.ko: Device or resource busy"
    assert out == "loading patch module: klab_sleeper_patch.ko\n8.00 16.00\n"
    assert err.splitlines() == [busy, "kpatch: retrying..."] * 4 + [
        busy,
        "kpatch: failed to load module klab_sleeper_patch.ko",
    ]


def test_the_model_is_chosen_per_patch_from_the_shell():
    """livepatch-sample under immediate, then its removal under linux's own transition."""
    system = booted_system()
    m = system.machine
    seq = m.var("printk_rb").next_seq
    status, out, err = shell_run(
        system,
        f"consistency-model; consistency-model immediate; insmod livepatch-sample; cat {SAMPLE}/transition; "
        f"consistency-model linux; echo 0 > {SAMPLE}/enabled; cat {SAMPLE}/transition; consistency-model lazy; "
        f"wait --gone {SAMPLE} 60s; consistency-model",
    )
    assert out.splitlines() == ["linux", "0", "1", "linux"]
    assert err == "consistency-model: a transition is under way\n"  # the removal's, begun under linux
    log = [line.split("] ", 1)[1] for line in log_since(m, seq)]
    assert log[:2] == [
        "livepatch: enabling patch 'livepatch_sample'",
        "livepatch: 'livepatch_sample': initializing unpatching transition",
    ]


def test_the_model_cannot_change_under_a_transition():
    system = booted_system()
    run(system, "insmod klab_sleeper func=klab_commit; insmod klab_sleeper_patch target=klab_commit")
    status, out, err = shell_run(system, "consistency-model stop_machine; consistency-model")
    assert err == "consistency-model: a transition is under way\n" and out == "linux\n"
