"""Livepatches with module objects: a failure half-way through klp_enable_patch leaves the machine
as it found it; a task asleep in a patched module function holds the transition until it leaves."""

from __future__ import annotations

from machine_util import booted_system, shell_run, vfs_tree

from klpemu.kernel.printk import records
from klpemu.kernel.tasks import all_tasks

LP = "/sys/kernel/livepatch"


def snapshot(system):
    m = system.machine
    ft, layer = m.kernel.ftrace, m.kernel.klp_patch
    return {
        "sites": [m.mem.read(ip, 5) for ip in ft.records.ips()],
        "records": [(ft.records.ip(i), ft.records.flags(i)) for i in range(len(ft.records))],
        "func_stacks": {old: layer.func_stack(old) for old in layer.ops},
        "patches": list(m.kernel.livepatch.patches),
        "sysfs": vfs_tree(system.vfs.lookup(LP)),
        "modules": [(mod.name, m.kernel.modules.refcount(mod)) for mod in m.kernel.modules.list()],
        "patch_state": [t.patch_state for t in all_tasks(m)],
    }


def test_a_failing_pre_patch_after_a_patched_object_undoes_everything():
    system = booted_system()
    m = system.machine
    status, _, err = shell_run(
        system, f"insmod livepatch-sample.ko; wait {LP}/livepatch_sample/transition 0; insmod test_klp_callbacks_mod.ko"
    )
    assert status == 0, err
    before = snapshot(system)
    start = len(records(m))
    status, out, err = shell_run(system, "insmod test_klp_enable_failure.ko")
    assert status == 1
    assert err == "insmod: ERROR: could not insert module test_klp_enable_failure.ko: No such device\n"
    lines = [
        r.text
        for r in records(m)[start:]
        if r.text.startswith(("livepatch:", "test_klp_enable")) and "taint" not in r.text
    ]
    assert lines == [
        "livepatch: enabling patch 'test_klp_enable_failure'",
        "livepatch: 'test_klp_enable_failure': initializing patching transition",
        "test_klp_enable_failure: pre_patch_ok: vmlinux",
        "test_klp_enable_failure: pre_patch_refuse: test_klp_callbacks_mod -> -19",
        "livepatch: pre-patch callback failed for object 'test_klp_callbacks_mod'",
        "livepatch: failed to enable patch 'test_klp_enable_failure'",
        "livepatch: 'test_klp_enable_failure': canceling patching transition, going to unpatch",
        "livepatch: 'test_klp_enable_failure': completing unpatching transition",
        # post_unpatch for the object whose pre_patch said yes, none for the one that refused
        "test_klp_enable_failure: post_unpatch: vmlinux",
        "livepatch: 'test_klp_enable_failure': unpatching complete",
    ]
    assert snapshot(system) == before
    assert m.kernel.livepatch.transition.patch is None
    _, out, _ = shell_run(system, "cat /proc/cmdline")
    assert out == "this has been live patched\n"  # the sample's function is on top again


def test_the_same_patch_loads_once_the_callback_agrees():
    system = booted_system()
    status, out, err = shell_run(
        system,
        "insmod test_klp_callbacks_mod.ko; "
        "insmod test_klp_enable_failure.ko pre_patch_ret=0; "
        f"wait {LP}/test_klp_enable_failure/transition 0; cat /proc/cmdline; "
        f"cat {LP}/test_klp_enable_failure/test_klp_callbacks_mod/patched",
    )
    assert status == 0, err
    assert out == "test_klp_enable_failure: this has been live patched\n1\n"
    lines = [
        r.text
        for r in records(system.machine)
        if r.text.startswith("test_klp_enable_failure:") and "taint" not in r.text
    ]
    assert lines == [
        "test_klp_enable_failure: pre_patch_ok: vmlinux",
        "test_klp_enable_failure: pre_patch_refuse: test_klp_callbacks_mod -> 0",
        "test_klp_enable_failure: post_patch: vmlinux",
        "test_klp_enable_failure: post_patch: test_klp_callbacks_mod",
    ]


def test_a_task_asleep_in_a_patched_module_function_holds_the_transition_until_it_leaves():
    system = booted_system()
    m = system.machine
    lp = m.kernel.livepatch
    status, _, err = shell_run(
        system, "insmod test_klp_callbacks_busy.ko block_transition=Y; insmod test_klp_callbacks_demo.ko; sleep 3s"
    )
    assert status == 0, err
    assert lp.transition.patch is not None
    _, out, _ = shell_run(system, "blocking")
    blockers = out.splitlines()[1:]
    assert len(blockers) == 1 and blockers[0].split()[1].startswith("[kworker/")
    assert blockers[0].endswith("sleeping in function busymod_work_func")
    assert system.vfs.read(f"{LP}/test_klp_callbacks_demo/transition") == "1\n"
    # The work function returns; the next attempt (within a second) switches the kworker.
    status, _, err = shell_run(
        system,
        "echo N > /sys/module/test_klp_callbacks_busy/parameters/block_transition; "
        f"wait {LP}/test_klp_callbacks_demo/transition 0 2s",
    )
    assert status == 0, err
    assert lp.transition.patch is None and all(t.patch_state == -1 for t in all_tasks(m))
    assert records(m)[-1].text == "livepatch: 'test_klp_callbacks_demo': patching complete"
