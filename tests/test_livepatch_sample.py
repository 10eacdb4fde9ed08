"""The livepatch sample module, end to end, as the issue's transcript runs it."""

from __future__ import annotations

from machine_util import booted_system, shell_run

from klpemu.kernel.printk import records

LP = "/sys/kernel/livepatch/livepatch_sample"


def test_insmod_livepatch_sample_transcript():
    system = booted_system()
    status, out, err = shell_run(
        system, f"insmod livepatch-sample.ko; wait {LP}/transition 0; cat /proc/cmdline; rmmod livepatch_sample"
    )
    assert out == "this has been live patched\n"
    assert status == 1 and err == "rmmod: ERROR: Module livepatch_sample is in use\n"  # pinned while enabled
    status, out, err = shell_run(
        system, f"echo 0 > {LP}/enabled; wait --gone {LP}; cat /proc/cmdline; rmmod livepatch_sample; lsmod"
    )
    assert status == 0, err
    assert out == f"{system.machine.config.cmdline}\nModule                  Size  Used by\n"
    lines = [r.text for r in records(system.machine) if r.text.startswith(("livepatch", "livepatch_sample"))]
    assert lines == [
        "livepatch_sample: tainting kernel with TAINT_LIVEPATCH",
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


def test_a_patch_that_cannot_be_enabled_fails_the_insmod():
    system = booted_system()
    m = system.machine
    # Another patch stuck in transition: klp_enable_patch returns -EBUSY and insmod reports it.
    from klpemu.kernel.livepatch.builder import KlpBuilder

    b = KlpBuilder(m.kernel.livepatch)
    m.kernel.livepatch.enable(b.patch("blocked", [b.object(None, [b.func("watchdog", "version_proc_show")])]))
    status, _, err = shell_run(system, "insmod livepatch-sample.ko")
    assert status == 1
    assert err == "insmod: ERROR: could not insert module livepatch-sample.ko: Device or resource busy\n"
    assert m.kernel.modules.find("livepatch_sample") is None
    assert not system.vfs.exists(LP)
