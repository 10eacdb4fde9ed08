"""kpatch load/unload/list/info and modinfo, as dynup/kpatch's utility and kmod's modinfo print them."""

from __future__ import annotations

import re

import pytest
from machine_util import booted_system, shell_run

from klpemu import cli
from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.printk import records
from klpemu.kernel.tasks import all_tasks
from klpemu.machine.machine import DEFAULT_CMDLINE
from klpemu.modinfo import find_module_file, shipped_module_files

LP = "/sys/kernel/livepatch/livepatch_sample"
SAMPLE_INFO = (
    "filename:       livepatch-sample.ko\n"
    "livepatch:      Y\n"
    "license:        GPL\n"
    "intree:         Y\n"
    "name:           livepatch_sample\n"
)


@pytest.fixture
def system():
    return booted_system()


def release(system) -> str:
    return re.search(r"version (\S+)", system.vfs.read("/proc/version")).group(1)


def installed(system) -> str:
    """The `Installed patch modules:` lines: every shipped module that says livepatch=Y."""
    names = [
        f.path.name.removesuffix(".ko").replace("-", "_")
        for f in shipped_module_files()
        if ("livepatch", "Y") in f.modinfo()
    ]
    return "".join(f"{n} ({release(system)})\n" for n in names)


def test_list_with_nothing_loaded_shows_the_shipped_livepatch_modules(system):
    status, out, err = shell_run(system, "kpatch list")
    assert (status, err) == (0, "")
    assert out == "Loaded patch modules:\n\nInstalled patch modules:\n" + installed(system)
    assert f"livepatch_sample ({release(system)})\n" in out
    assert "hello" not in out  # not a livepatch module


def test_load_list_info_unload_transcript(system):
    status, out, err = shell_run(system, "kpatch load livepatch-sample")
    assert (status, err) == (0, "")
    assert out == (
        "loading patch module: livepatch-sample.ko\n"
        "waiting (up to 15 seconds) for patch transition to complete...\n"
        "transition complete (1 seconds)\n"
    )
    assert system.console.read_file("/proc/cmdline") == "this has been live patched\n"

    status, out, err = shell_run(system, "kpatch list")
    assert out == "Loaded patch modules:\nlivepatch_sample [enabled]\n\nInstalled patch modules:\n" + installed(system)

    status, out, err = shell_run(system, "kpatch info livepatch_sample")
    assert (status, err) == (0, "")
    assert out == (
        "Patch information for livepatch_sample:\n" + SAMPLE_INFO + "\n"
        "Loaded: enabled, not in transition, stack_order 1\n"
        f"Objects and functions ({LP}):\n"
        "  vmlinux: patched\n"
        "    cmdline_proc_show,1\n"
    )

    # a forced patch's module stays for good, and info says so
    (patch,) = system.machine.kernel.livepatch.patches
    patch.forced = 1
    _, out, _ = shell_run(system, "kpatch info livepatch_sample")
    assert "Loaded: enabled, not in transition, stack_order 1\nForced: a transition of it was forced, so " in out
    patch.forced = 0

    status, out, err = shell_run(system, "kpatch load livepatch_sample")
    assert (status, out, err) == (0, "module named livepatch_sample already loaded and enabled\n", "")

    status, out, err = shell_run(system, "kpatch unload livepatch-sample.ko")
    assert (status, err) == (0, "")
    assert out == (
        "disabling patch module: livepatch_sample\n"
        "waiting (up to 15 seconds) for patch transition to complete...\n"
        "transition complete (2 seconds)\n"
        "unloading patch module: livepatch_sample\n"
    )
    assert system.machine.kernel.modules.find("livepatch_sample") is None
    assert system.console.read_file("/proc/cmdline") == DEFAULT_CMDLINE + "\n"
    status, out, _ = shell_run(system, "kpatch info livepatch-sample.ko; kpatch list")
    assert out == (
        "Patch information for livepatch-sample.ko:\n" + SAMPLE_INFO + "\nNot loaded.\n"
        "Loaded patch modules:\n\nInstalled patch modules:\n" + installed(system)
    )


def test_load_re_enables_a_patch_that_is_still_disabling(system):
    shell_run(system, "kpatch load livepatch-sample")
    status, out, err = shell_run(system, f"echo 0 > {LP}/enabled; kpatch list; kpatch load livepatch-sample")
    assert (status, err) == (0, "")
    assert out.startswith("Loaded patch modules:\nlivepatch_sample [disabling...]\n\nStalled processes:\n")
    assert out.endswith(
        "\nmodule already loaded, re-enabling\n"
        "waiting (up to 15 seconds) for patch transition to complete...\n"
        "transition complete (1 seconds)\n"
    )
    assert system.vfs.read(f"{LP}/enabled") == "1\n"
    assert system.console.read_file("/proc/cmdline") == "this has been live patched\n"
    assert "livepatch: 'livepatch_sample': reversing transition from unpatching to patching" in [
        r.text for r in records(system.machine)
    ]


def test_a_disabled_but_loaded_module_is_removed_and_loaded_again(system):
    shell_run(system, f"insmod livepatch-sample.ko; wait {LP}/transition 0; echo 0 > {LP}/enabled; wait --gone {LP}")
    status, out, err = shell_run(system, "kpatch load livepatch-sample")
    assert (status, err) == (0, "")
    assert out.startswith("loading patch module: livepatch-sample.ko\n")
    assert system.vfs.read(f"{LP}/enabled") == "1\n"


def test_list_shows_a_stalled_transition_with_each_task_its_reason_and_stack(system):
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    # khungtaskd sleeps in watchdog() for good: patching it stalls.
    m.kernel.livepatch.enable(b.patch("blocked", [b.object(None, [b.func("watchdog", "version_proc_show")])]))
    khung = next(t for t in all_tasks(m) if t.comm == "khungtaskd")
    status, out, err = shell_run(system, "sleep 10ms; kpatch list")  # the idle tasks switch meanwhile
    assert (status, err) == (0, "")
    stack = system.vfs.read(f"/proc/{khung.pid}/stack")
    assert "watchdog+" in stack
    assert out == (
        "Loaded patch modules:\nblocked [enabling...]\n\nStalled processes:\n"
        f"{khung.pid} khungtaskd\nreason: sleeping in function watchdog\nstack:\n{stack}"
        "\nInstalled patch modules:\n" + installed(system)
    )
    # kpatch signal is a no-op here: the kernel signals by itself.
    status, out, err = shell_run(system, "kpatch signal")
    assert (status, out) == (0, "")
    assert err == (
        "kpatch: Livepatch process signaling is performed automatically on your system.\n"
        "kpatch: Skipping manual process signaling.\n"
    )


def test_load_retries_while_another_patch_is_in_transition(system):
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    m.kernel.livepatch.enable(b.patch("blocked", [b.object(None, [b.func("watchdog", "version_proc_show")])]))
    t0 = m.now
    status, out, err = shell_run(system, "kpatch load livepatch-sample")
    assert status == 1
    assert out == "loading patch module: livepatch-sample.ko\n"
    busy = "insmod: ERROR: could not insert module livepatch-sample.ko: Device or resource busy\n"
    assert err == (busy + "kpatch: retrying...\n") * 4 + busy + "kpatch: failed to load module livepatch-sample.ko\n"
    assert m.now - t0 >= 4 * 2 * 10**9  # four waits of two emulated seconds
    assert m.kernel.modules.find("livepatch_sample") is None


def test_a_stalled_load_gives_up_then_reverses_and_unloads():
    # krecurse sleeps 120 calls deep: its stack is unreliable, so it never switches.
    system = booted_system(cmdline=f"{DEFAULT_CMDLINE} krecurse.depth=120")
    m = system.machine
    krecurse = next(t for t in all_tasks(m) if t.comm == "krecurse")
    t0 = m.now
    status, out, err = shell_run(system, "kpatch load livepatch-sample")
    assert status == 1
    assert err == (
        "kpatch: Livepatch process signaling is performed automatically on your system.\n"
        "kpatch: Skipping manual process signaling.\n"
        "kpatch: error: failed to load module livepatch_sample (transition stalled)\n"
    )
    head = (
        "loading patch module: livepatch-sample.ko\n"
        "waiting (up to 15 seconds) for patch transition to complete...\n"
        "patch transition has stalled!\n"
        "waiting (up to 60 seconds) for patch transition to complete...\n"
        "\nStalled processes:\n"
        f"{krecurse.pid} krecurse\nreason: unreliable stack: more than 100 frames\nstack:\n"
    )
    tail = (
        "module livepatch_sample did not complete its transition, unloading...\n"
        "disabling patch module: livepatch_sample\n"
        "waiting (up to 15 seconds) for patch transition to complete...\n"
        "transition complete (1 seconds)\n"
        "unloading patch module: livepatch_sample\n"
    )
    assert out.startswith(head) and out.endswith(tail)
    stack = out[len(head) : -len(tail)].splitlines()
    assert len(stack) > 100 and all(line.startswith("[<0>] ") for line in stack)
    assert m.now - t0 >= 75 * 10**9
    assert m.kernel.modules.find("livepatch_sample") is None
    assert not system.vfs.exists(LP)
    lines = [r.text for r in records(m) if r.text.startswith("livepatch:")]
    assert "livepatch: signaling remaining tasks" in lines
    assert lines[-4:] == [
        "livepatch: 'livepatch_sample': reversing transition from patching to unpatching",
        "livepatch: 'livepatch_sample': starting unpatching transition",
        "livepatch: 'livepatch_sample': completing unpatching transition",
        "livepatch: 'livepatch_sample': unpatching complete",
    ]


def test_unload_all(system):
    status, out, err = shell_run(system, "kpatch load livepatch-sample; kpatch unload --all; kpatch unload --all")
    assert (status, err) == (0, "")
    assert out.endswith(
        "disabling patch module: livepatch_sample\n"
        "waiting (up to 15 seconds) for patch transition to complete...\n"
        "transition complete (2 seconds)\n"
        "unloading patch module: livepatch_sample\n"
    )
    assert system.machine.kernel.modules.list() == []


def test_errors_are_clear_and_leave_nothing_loaded(system):
    def run(cmd):
        return shell_run(system, cmd)

    assert run("kpatch load no_such_patch") == (1, "", "kpatch: can't find no_such_patch\n")
    assert run("kpatch load hello") == (
        1,
        "",
        "kpatch: hello is not a livepatch module (its modinfo has no livepatch=Y)\n",
    )
    assert run("kpatch info nope.ko") == (1, "", "kpatch: can't find nope.ko\n")
    assert run("kpatch unload livepatch_sample") == (
        1,
        "",
        ("kpatch: patch module livepatch_sample is not loaded\nkpatch: failed to disable module livepatch_sample\n"),
    )
    run("insmod hello")
    assert run("kpatch unload hello") == (1, "", "kpatch: hello is not a livepatch module\n")
    assert [mod.name for mod in system.machine.kernel.modules.list()] == ["hello"]
    status, out, err = run("kpatch")
    assert (status, out) == (1, "") and err.startswith("usage: kpatch <command> [<args>]\n\nValid commands:\n")
    status, out, err = run("kpatch frobnicate")
    assert (status, out) == (1, "subcommand frobnicate not recognized\n") and err.startswith("usage: kpatch")
    assert run("kpatch load")[0] == 1 and run("kpatch list extra")[0] == 1


def test_a_bad_file_is_refused(system, tmp_path):
    bad = tmp_path / "bad.ko"
    bad.write_bytes(b"not an ELF file")
    status, out, err = shell_run(system, f"kpatch load {bad}")
    assert status == 1 and out == ""
    assert err.startswith(f"kpatch: {bad}: ") and "Exec format error" in err
    status, out, err = shell_run(system, f"modinfo {bad}")
    assert (status, out) == (1, "")
    assert err == "modinfo: ERROR: could not get modinfo from 'bad': Exec format error\n"
    assert system.machine.kernel.modules.list() == []


def test_modinfo(system):
    status, out, err = shell_run(system, "modinfo livepatch_sample")
    assert (status, out, err) == (0, SAMPLE_INFO, "")
    status, out, err = shell_run(system, "modinfo hello.ko")
    assert status == 0
    pairs = find_module_file("hello").modinfo()
    params = [v.split(":")[0] for t, v in pairs if t == "parm"]
    tags = [line.split(":")[0] for line in out.splitlines()]
    assert tags[0] == "filename" and out.startswith("filename:       hello.ko\n")
    assert tags[1:] == [t for t, _ in pairs if t not in ("parm", "parmtype")] + ["parm"] * len(params)
    # Parameters last, newest first, each `name:description (type)` when the type is known.
    parm_lines = [line for line in out.splitlines() if line.startswith("parm:")]
    assert [line[16:].split(":")[0] for line in parm_lines] == list(reversed(params))
    assert all(len(line[:16].rstrip()) < 16 for line in out.splitlines())
    assert shell_run(system, "modinfo nope") == (1, "", "modinfo: ERROR: Module nope not found.\n")


def test_the_cli_boots_and_runs_one_kpatch_command(capsys):
    assert cli.main(["kpatch", "load", "livepatch-sample"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("loading patch module: livepatch-sample.ko\n") and "transition complete" in out
    assert cli.main(["kpatch", "info", "nope"]) == 1
    assert capsys.readouterr().err == "kpatch: can't find nope\n"
