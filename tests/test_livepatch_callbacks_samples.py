"""The callbacks samples (livepatch-callbacks-demo with livepatch-callbacks-mod), run the way the
demo's comment describes, with the log of each run as golden text."""

from __future__ import annotations

from machine_util import booted_system, shell_run

from klpemu.kernel.printk import records
from klpemu.system import System

DEMO = "livepatch_callbacks_demo"
LP = f"/sys/kernel/livepatch/{DEMO}"
LIVE = "[MODULE_STATE_LIVE] Normal state"
COMING = "[MODULE_STATE_COMING] Full formed, running module_init"


def run(system: System, script: str) -> list[str]:
    """Run a shell script that must succeed; the kernel log lines it made, taint notices left out."""
    seq = system.machine.var("printk_rb").next_seq
    status, out, err = shell_run(system, script)
    assert status == 0 and err == "", (out, err)
    return [r.text for r in records(system.machine, seq) if "tainting kernel" not in r.text]


def test_target_module_then_demo():
    system = booted_system()
    log = run(
        system,
        f"insmod livepatch-callbacks-mod.ko; insmod livepatch-callbacks-demo.ko; "
        f"wait {LP}/transition 0; echo 0 > {LP}/enabled; wait --gone {LP}; "
        f"rmmod livepatch_callbacks_demo; rmmod livepatch_callbacks_mod",
    )
    assert log == [
        "livepatch_callbacks_mod: livepatch_callbacks_mod_init",
        f"livepatch: enabling patch '{DEMO}'",
        f"livepatch: '{DEMO}': initializing patching transition",
        f"{DEMO}: pre_patch_callback: vmlinux",
        f"{DEMO}: pre_patch_callback: livepatch_callbacks_mod -> {LIVE}",
        f"livepatch: '{DEMO}': starting patching transition",
        f"livepatch: '{DEMO}': completing patching transition",
        f"{DEMO}: post_patch_callback: vmlinux",
        f"{DEMO}: post_patch_callback: livepatch_callbacks_mod -> {LIVE}",
        f"livepatch: '{DEMO}': patching complete",
        f"livepatch: '{DEMO}': initializing unpatching transition",
        f"{DEMO}: pre_unpatch_callback: vmlinux",
        f"{DEMO}: pre_unpatch_callback: livepatch_callbacks_mod -> {LIVE}",
        f"livepatch: '{DEMO}': starting unpatching transition",
        f"livepatch: '{DEMO}': completing unpatching transition",
        f"{DEMO}: post_unpatch_callback: vmlinux",
        f"{DEMO}: post_unpatch_callback: livepatch_callbacks_mod -> {LIVE}",
        f"livepatch: '{DEMO}': unpatching complete",
        "livepatch_callbacks_mod: livepatch_callbacks_mod_exit",
    ]


def test_a_failing_pre_patch_refuses_the_target_module():
    system = booted_system()
    run(
        system,
        f"insmod livepatch-callbacks-demo.ko; wait {LP}/transition 0; "
        f"echo -19 > /sys/module/{DEMO}/parameters/pre_patch_ret",
    )
    seq = system.machine.var("printk_rb").next_seq
    status, _, err = shell_run(system, "insmod livepatch-callbacks-mod.ko")
    assert status == 1
    assert err == "insmod: ERROR: could not insert module livepatch-callbacks-mod.ko: No such device\n"
    assert [r.text for r in records(system.machine, seq)] == [
        f"livepatch: applying patch '{DEMO}' to loading module 'livepatch_callbacks_mod'",
        f"{DEMO}: pre_patch_callback: livepatch_callbacks_mod -> {COMING}",
        "livepatch: pre-patch callback failed for object 'livepatch_callbacks_mod'",
        (
            f"livepatch: patch '{DEMO}' failed for module 'livepatch_callbacks_mod', "
            "refusing to load module 'livepatch_callbacks_mod'"
        ),
    ]
    assert not system.vfs.exists("/sys/module/livepatch_callbacks_mod")


def test_a_busy_target_module_holds_the_transition_up():
    """busymod's work item sleeps in busymod_work_func, which the demo replaces: the transition
    waits for it. A target module loaded meanwhile gets its pre_patch but no post_patch, and
    unloading it skips pre_unpatch; post_patch runs for all once the work item has left."""
    system = booted_system()
    log = run(system, "insmod livepatch-callbacks-busymod.ko sleep_secs=2; insmod livepatch-callbacks-demo.ko")
    assert system.vfs.read(f"{LP}/transition") == "1\n"
    log += run(system, "insmod livepatch-callbacks-mod.ko; rmmod livepatch_callbacks_mod")
    assert system.vfs.read(f"{LP}/transition") == "1\n"
    log += run(
        system,
        f"wait {LP}/transition 0 10s; echo 0 > {LP}/enabled; wait --gone {LP}; "
        f"rmmod livepatch_callbacks_demo; rmmod livepatch_callbacks_busymod",
    )
    busymod = "livepatch_callbacks_busymod"
    assert log == [
        f"{busymod}: livepatch_callbacks_mod_init",
        f"{busymod}: busymod_work_func, sleeping 2 seconds ...",
        f"livepatch: enabling patch '{DEMO}'",
        f"livepatch: '{DEMO}': initializing patching transition",
        f"{DEMO}: pre_patch_callback: vmlinux",
        f"{DEMO}: pre_patch_callback: {busymod} -> {LIVE}",
        f"livepatch: '{DEMO}': starting patching transition",
        f"livepatch: applying patch '{DEMO}' to loading module 'livepatch_callbacks_mod'",
        f"{DEMO}: pre_patch_callback: livepatch_callbacks_mod -> {COMING}",
        "livepatch_callbacks_mod: livepatch_callbacks_mod_init",
        "livepatch_callbacks_mod: livepatch_callbacks_mod_exit",
        f"livepatch: reverting patch '{DEMO}' on unloading module 'livepatch_callbacks_mod'",
        f"{DEMO}: post_unpatch_callback: livepatch_callbacks_mod -> [MODULE_STATE_GOING] Going away",
        f"{busymod}: busymod_work_func exit",
        f"livepatch: '{DEMO}': completing patching transition",
        f"{DEMO}: post_patch_callback: vmlinux",
        f"{DEMO}: post_patch_callback: {busymod} -> {LIVE}",
        f"livepatch: '{DEMO}': patching complete",
        f"livepatch: '{DEMO}': initializing unpatching transition",
        f"{DEMO}: pre_unpatch_callback: vmlinux",
        f"{DEMO}: pre_unpatch_callback: {busymod} -> {LIVE}",
        f"livepatch: '{DEMO}': starting unpatching transition",
        f"livepatch: '{DEMO}': completing unpatching transition",
        f"{DEMO}: post_unpatch_callback: vmlinux",
        f"{DEMO}: post_unpatch_callback: {busymod} -> {LIVE}",
        f"livepatch: '{DEMO}': unpatching complete",
        f"{busymod}: livepatch_callbacks_mod_exit",
    ]
