"""Bad input never breaks it: each refusal is a clear error (the kernel's errno and words where it
has them), never a host traceback, and a failed operation leaves every fentry site byte, ftrace
record, func_stack, heap allocation and sysfs entry exactly as it was."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from machine_util import booted_system, shell_run, vfs_tree

from klpemu.abi import FTRACE_FL_MODIFIED, FTRACE_FL_TOUCHED
from klpemu.errors import KlpemuError
from klpemu.kernel.module import ModuleError, shipped_module
from klpemu.kernel.printk import records
from klpemu.kernel.tasks import all_tasks
from klpemu.kernel.text_poke import NOP5
from klpemu.machine.kstr import kbytes, kstr
from klpemu.system import System

SAMPLE = shipped_module("livepatch-sample")
LONG = "a" * 300
HISTORY = FTRACE_FL_TOUCHED | FTRACE_FL_MODIFIED


@pytest.fixture
def system() -> System:
    return booted_system()


def log_since(system: System, seq: int) -> list[str]:
    return [r.text for r in records(system.machine, seq)]


def next_seq(system: System) -> int:
    return system.machine.var("printk_rb").next_seq


def state(system: System) -> dict:
    """What a failed operation must leave as it found it."""
    m = system.machine
    ft = m.kernel.ftrace.records
    cmdline = m.image.addr("cmdline_proc_show")
    return {
        "sites": {ft.ip(i): m.mem.read(ft.ip(i), 5) for i in range(len(ft))},
        # TOUCHED and MODIFIED are history (touched_functions): set for good once a record was
        # enabled, in Linux too, so a patch that was on for a moment leaves them.
        "records": [(ft.ip(i), ft.flags(i) & ~HISTORY) for i in range(len(ft))],
        "func_stack": [int(f) for f in m.kernel.klp_patch.func_stack(cmdline)],
        "allocations": dict(m.heap._sizes),
        "sysfs": vfs_tree(system.vfs.lookup("/sys")),
        "modules": list(m.kernel.modules.loaded),
        "patches": [int(p) for p in m.kernel.livepatch.patches],
        "transition": m.kernel.livepatch.transition.patch,
        "consistency": m.kernel.check_consistency(),
    }


def mutated(tmp_path: Path, src: Path, old: bytes, new: bytes, name: str) -> Path:
    """A copy of a shipped .ko with a string changed in place (same length), wherever it is."""
    data = src.read_bytes()
    assert len(old) == len(new) and old in data
    out = tmp_path / name
    out.write_bytes(data.replace(old, new))
    return out


# --- guest strings: bytes in, \xNN out ---------------------------------------------------------


def test_kstr_and_kbytes_round_trip_raw_bytes():
    assert kstr(b"a\xffb\xc3\xa9") == "a\\xffbé"
    assert kbytes("a\udcffb") == b"a\xffb"  # what surrogateescape made of a typed \xff
    assert kbytes(b"\xfe") == b"\xfe"


def test_raw_bytes_written_to_dev_kmsg_reach_the_log_as_bytes(system):
    seq = next_seq(system)
    system.vfs.write("/dev/kmsg", "a\udcffb\n")
    system.vfs.write("/dev/kmsg", b"c\xfed\n")
    assert log_since(system, seq) == ["a\\xffb", "c\\xfed"]
    ring = system.machine.var("printk_rb").records
    r = ring[seq % len(ring)]
    assert system.machine.mem.read(r.addr_of("text"), r.text_len) == b"a\xffb"


def test_guest_file_write_takes_bytes(system):
    """The console carries raw bytes to sh's write(2); a name the guest does not have is ENOENT,
    not an encoding error."""
    with pytest.raises(KlpemuError) as e:
        system.console.write_file("/proc/\udcff", b"x\xff")
    assert e.value.errno == errno.ENOENT


def test_shell_command_line_with_raw_bytes():
    """`klpemu shell -c $'...\\xff...'` and a script holding raw bytes: the bytes reach the guest
    log, and dmesg shows them as \\xNN."""
    cmd = b"echo a\xffb > /dev/kmsg; dmesg"
    res = subprocess.run([sys.executable, "-m", "klpemu", "shell", "-c", cmd], capture_output=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines()[-1].endswith("] a\\xffb")
    assert b"Traceback" not in res.stderr


def test_shell_script_with_raw_bytes(tmp_path):
    script = tmp_path / "raw.sh"
    script.write_bytes(b"echo q\xfer > /dev/kmsg\ndmesg\n")
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "shell", "--script", str(script)], capture_output=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines()[-1].endswith("] q\\xfer")


# --- disas and symbol positions ----------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, message",
    [
        ("cmdline_proc_show,-1", "disas: symbol 'cmdline_proc_show': invalid position -1\n"),
        ("cmdline_proc_show,2", "disas: symbol 'cmdline_proc_show' position 2 not found (1 matches)\n"),
        ("cmdline_proc_show,x", "disas: cmdline_proc_show,x: bad symbol position\n"),
        ("no_such_function", "disas: symbol 'no_such_function' not found\n"),
    ],
)
def test_disas_bad_sympos_is_a_clear_error(system, arg, message):
    assert shell_run(system, f"disas {arg}") == (1, "", message)


def test_negative_sympos_is_einval_in_every_lookup(system):
    with pytest.raises(KlpemuError) as e:
        system.machine.image.lookup("cmdline_proc_show", -1)
    assert e.value.errno == errno.EINVAL
    system.machine.kernel.modules.load(shipped_module("hello"))
    kallsyms = system.machine.kernel.modules.loaded["hello"].kallsyms
    assert kallsyms is not None
    with pytest.raises(KlpemuError) as e:
        kallsyms.lookup("hello_init", -1)
    assert e.value.errno == errno.EINVAL


# --- file names the host cannot look up ------------------------------------------------------------


def test_insmod_and_modinfo_of_an_overlong_name(system):
    before = state(system)
    assert shell_run(system, f"insmod {LONG}") == (
        1,
        "",
        f"insmod: ERROR: could not load module {LONG}: No such file or directory\n",
    )
    assert shell_run(system, f"insmod /tmp/{LONG}.ko") == (
        1,
        "",
        f"insmod: ERROR: could not load module /tmp/{LONG}.ko: No such file or directory\n",
    )
    assert shell_run(system, f"modinfo {LONG}") == (1, "", f"modinfo: ERROR: Module {LONG} not found.\n")
    assert state(system) == before


# --- typed writes out of range ---------------------------------------------------------------------


def test_typed_write_out_of_range_is_einval_and_writes_nothing(system):
    m = system.machine
    rb = m.var("printk_rb")
    before = rb.next_seq
    for bad in (1 << 64, -(1 << 63) - 1):
        with pytest.raises(KlpemuError) as e:
            rb.next_seq = bad
        assert e.value.errno == errno.EINVAL
        assert "does not fit in next_seq" in str(e.value)
    assert rb.next_seq == before
    rb.next_seq = before  # in range: written as before


def test_kretprobe_maxactive_too_big(system):
    before = state(system)
    status, out, err = shell_run(system, "kprobe -r --maxactive 99999999999 cmdline_proc_show")
    assert (status, out, err) == (
        1,
        "",
        "kprobe: cmdline_proc_show: 99999999999 does not fit in maxactive (int, 4 bytes) (Invalid argument)\n",
    )
    assert state(system) == before  # the struct and its symbol name are freed again


# --- module names ----------------------------------------------------------------------------------


def test_module_names_not_utf8_are_bytes_in_the_guest(system, tmp_path):
    """A .modinfo name with a byte that is not UTF-8: the guest has the bytes, the host shows
    \\xNN, and the module goes through its whole life (enable, disable, rmmod) by that name."""
    ko = mutated(tmp_path, SAMPLE, b"name=livepatch_sample\0", b"name=livepatch_sampl\xff\0", "bad.ko")
    before = state(system)
    system.kernel.modules.load(ko)
    name = "livepatch_sampl\\xff"
    mod = system.kernel.modules.loaded[name]
    assert system.machine.mem.read_cbytes(mod.struct.addr_of("name"), 64) == b"livepatch_sampl\xff"
    assert shell_run(system, "ls /sys/kernel/livepatch") == (0, f"{name}\n", "")
    assert shell_run(system, "cat /proc/cmdline") == (0, "this has been live patched\n", "")
    system.vfs.write(f"/sys/kernel/livepatch/{name}/enabled", "0")
    assert system.machine.run_until(lambda: not system.kernel.livepatch.patches, 3_000_000_000)
    system.kernel.modules.unload(name)
    assert state(system) == before


def test_symbol_name_not_utf8_is_not_found(system, tmp_path):
    ko = mutated(tmp_path, SAMPLE, b"cmdline_proc_show\0", b"cmdline_proc_sho\xff\0", "badsym.ko")
    before, seq = state(system), next_seq(system)
    with pytest.raises(ModuleError) as e:
        system.kernel.modules.load(ko)
    assert e.value.errno == errno.EINVAL
    assert "livepatch: symbol 'cmdline_proc_sho\\xff' not found in symbol table" in log_since(system, seq)
    assert state(system) == before
    assert system.machine.oops is None


@pytest.mark.parametrize("bad", [b"a/b", b"..", b".", b""])
def test_module_names_a_module_cannot_have_are_einval(system, tmp_path, bad):
    old = b"name=livepatch_sample\0"
    ko = mutated(tmp_path, SAMPLE, old, (b"name=" + bad + b"\0").ljust(len(old), b"\0"), "badname.ko")
    before, seq = state(system), next_seq(system)
    with pytest.raises(ModuleError) as e:
        system.kernel.modules.load(ko)
    assert e.value.errno == errno.EINVAL
    assert log_since(system, seq) == [f"module name '{bad.decode()}' is not a valid name for a module"]
    assert state(system) == before
    status, _, err = shell_run(system, f"insmod {ko}")
    assert (status, err) == (1, f"insmod: ERROR: could not insert module {ko}: Invalid parameters\n")


def test_klp_object_name_with_slash_is_named_as_a_kobject(system, tmp_path):
    """kobject_set_name_vargs: a '/' in an object's name becomes '!' in its sysfs directory."""
    src = shipped_module("test_klp_enable_failure")
    ko = mutated(tmp_path, src, b"test_klp_callbacks_mod\0", b"test_klp/callbacks_mod\0", "slash.ko")
    system.kernel.modules.load(ko)
    patch_dir = "/sys/kernel/livepatch/test_klp_enable_failure"
    assert shell_run(system, f"ls {patch_dir}")[1].split() == [
        "enabled",
        "force",
        "replace",
        "stack_order",
        "test_klp!callbacks_mod",
        "transition",
        "vmlinux",
    ]
    assert shell_run(system, f"ls {patch_dir}/test_klp!callbacks_mod") == (0, "patched\n", "")


# --- a livepatch module whose init fails after klp_enable_patch ------------------------------------


def test_init_failing_after_klp_enable_patch_takes_the_patch_down(system):
    m = system.machine
    site = m.image.addr("cmdline_proc_show")
    before, seq = state(system), next_seq(system)
    assert m.mem.read(site, 5) == NOP5
    status, out, err = shell_run(system, "insmod test_klp_init_fail")
    assert (status, out, err) == (
        1,
        "",
        "insmod: ERROR: could not insert module test_klp_init_fail: Invalid parameters\n",
    )
    assert log_since(system, seq) == [
        "test_klp_init_fail: tainting kernel with TAINT_LIVEPATCH",
        "livepatch: enabling patch 'test_klp_init_fail'",
        "livepatch: 'test_klp_init_fail': initializing patching transition",
        "livepatch: 'test_klp_init_fail': starting patching transition",
        "test_klp_init_fail: patch enabled, failing init with -22",
        "livepatch: 'test_klp_init_fail': module init failed after klp_enable_patch(), reverting the patch",
        "livepatch: 'test_klp_init_fail': completing unpatching transition",
        "livepatch: 'test_klp_init_fail': unpatching complete",
    ]
    assert state(system) == before
    assert m.mem.read(site, 5) == NOP5
    assert {t.patch_state for t in all_tasks(m)} == {-1}  # KLP_TRANSITION_IDLE: no transition left
    assert shell_run(system, "ls /sys/kernel/livepatch") == (0, "", "")
    assert shell_run(system, "cat /proc/cmdline") == (0, m.config.cmdline + "\n", "")
    # Nothing is left to trip over: the sample loads, patches, and the machine is sound.
    assert shell_run(system, "insmod livepatch-sample") == (0, "", "")
    assert shell_run(system, "cat /proc/cmdline") == (0, "this has been live patched\n", "")
    assert m.kernel.check_consistency() == []
    assert m.oops is None


def test_init_failing_with_another_errno_returns_it(system):
    """init's own error is what the load returns, whatever it is; the patch goes all the same."""
    before, seq = state(system), next_seq(system)
    with pytest.raises(ModuleError) as e:
        system.kernel.modules.load(shipped_module("test_klp_init_fail"), "init_ret=-12")
    assert e.value.errno == errno.ENOMEM
    lines = log_since(system, seq)
    assert "test_klp_init_fail: patch enabled, failing init with -12" in lines
    assert lines[-1] == "livepatch: 'test_klp_init_fail': unpatching complete"
    assert state(system) == before


def test_module_symbol_names_not_utf8_match_what_the_guest_holds(system, tmp_path):
    """kallsyms names come from the string table's bytes, through the same decoder as a name
    read from guest memory, so a livepatch or kprobe naming the symbol finds it."""
    ko = mutated(tmp_path, shipped_module("hello"), b"hello_greet\0", b"hello_gree\xff\0", "hello.ko")
    system.kernel.modules.load(ko)
    sym = system.machine.image.lookup("hello_gree\\xff")
    assert sym.module == "hello" and sym.kind == "func"
    status, out, _ = shell_run(system, "disas 'hello_gree\\xff'")
    assert status == 0 and out.startswith("Dump of hello_gree\\xff [hello] (")


def test_kprobe_symbol_and_offset_bad_input_leave_nothing(system):
    kprobes = system.machine.kernel.kprobes
    before = state(system)
    with pytest.raises(KlpemuError) as e:
        kprobes.add_kprobe("cmdline_proc_show", 1 << 40)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KlpemuError):
        kprobes.add_kprobe("\u00e9t\u00e9\udcff")  # more bytes than characters, and a raw byte
    assert state(system) == before


def test_guest_output_not_utf8_prints_as_escapes(system):
    """What the guest prints (a seq_file, a task's comm) reaches the person as \\xNN, never as
    an encoding error."""
    m = system.machine
    m.mem.write(m.image.addr("boot_command_line"), b"quiet \xff\xfe\0")
    assert shell_run(system, "cat /proc/cmdline") == (0, "quiet \\xff\\xfe\n", "")
    sh = next(t for t in all_tasks(m) if t.comm == "sh")
    m.mem.write(sh.view.addr_of("comm"), b"s\xe9h\0")
    status, out, _ = shell_run(system, "ps")
    assert status == 0 and "s\\xe9h" in [line.split()[-1] for line in out.splitlines()]


def test_klp_object_name_not_utf8_in_klp_enable_patch(system, tmp_path):
    """klp_enable_patch (a hypercall) reads the object's name from guest memory: bytes that are
    not UTF-8 are a name like any other, shown as \\xNN, not a host failure."""
    src = shipped_module("test_klp_enable_failure")
    ko = mutated(tmp_path, src, b"test_klp_callbacks_mod\0", b"test_klp_callbacks_mo\xff\0", "obj.ko")
    system.kernel.modules.load(ko)
    patch_dir = "/sys/kernel/livepatch/test_klp_enable_failure"
    assert "test_klp_callbacks_mo\\xff" in shell_run(system, f"ls {patch_dir}")[1].split()
    assert system.machine.oops is None


def test_a_module_going_with_its_completed_patch_takes_it_down(system):
    """The same revert when the patch's transition had completed: pre_unpatch and post_unpatch
    run, the site is a NOP again, and the module can go."""
    m = system.machine
    before = state(system)
    system.kernel.modules.load(SAMPLE)
    assert m.run_until(lambda: m.kernel.livepatch.transition.patch is None, 3_000_000_000)
    assert m.mem.read(m.image.addr("cmdline_proc_show"), 5) != NOP5
    seq = next_seq(system)
    system.kernel.livepatch.module_going(system.kernel.modules.loaded["livepatch_sample"])
    assert log_since(system, seq) == [
        "livepatch: 'livepatch_sample': module init failed after klp_enable_patch(), reverting the patch",
        "livepatch: 'livepatch_sample': initializing unpatching transition",
        "livepatch: 'livepatch_sample': completing unpatching transition",
        "livepatch: 'livepatch_sample': unpatching complete",
    ]
    system.kernel.modules.unload("livepatch_sample")
    assert state(system) == before


def test_typed_raw_bytes_name_the_module_and_its_sysfs_directory(system, tmp_path):
    """rmmod and paths given with raw bytes (as `$'\\xff'` reaches the shell) find the module
    and the directories whose names the host shows as \\xNN."""
    ko = mutated(tmp_path, shipped_module("hello"), b"name=hello\0", b"name=hell\xff\0", "hello.ko")
    before = state(system)
    system.kernel.modules.load(ko)
    assert system.kernel.modules.find("hell\udcff") is system.kernel.modules.loaded["hell\\xff"]
    assert shell_run(system, "cat /sys/module/hell\udcff/refcnt") == (0, "0\n", "")
    assert shell_run(system, "rmmod hell\udcff") == (0, "", "")
    assert state(system) == before
    assert shell_run(system, "rmmod hell\udcff") == (1, "", "rmmod: ERROR: Module hell\\xff is not currently loaded\n")


def test_init_failing_on_top_of_another_patch_leaves_that_one(system):
    """Stacked on livepatch-sample, the failed patch comes off cmdline_proc_show's func_stack
    and the sample's function is the one that runs again."""
    assert shell_run(system, "insmod livepatch-sample") == (0, "", "")
    m = system.machine
    assert m.run_until(lambda: m.kernel.livepatch.transition.patch is None, 3_000_000_000)
    before = state(system)
    assert len(before["func_stack"]) == 1
    status, _, err = shell_run(system, "insmod test_klp_init_fail")
    assert (status, err) == (1, "insmod: ERROR: could not insert module test_klp_init_fail: Invalid parameters\n")
    assert state(system) == before
    assert shell_run(system, "cat /proc/cmdline") == (0, "this has been live patched\n", "")


def test_own_patch_reverted_while_another_patch_is_in_transition(system):
    """The host may start a transition while a module's init runs; the module's own patch then
    comes off its stacks at once, and the other transition goes on undisturbed."""
    m = system.machine
    lp = m.kernel.livepatch
    cmdline = m.image.addr("cmdline_proc_show")
    system.kernel.modules.load(SAMPLE)
    assert m.run_until(lambda: lp.transition.patch is None, 3_000_000_000)
    system.kernel.modules.load(shipped_module("test_klp_livepatch"))
    other = lp.transition.patch
    assert other is not None and lp.name(other) == "test_klp_livepatch"
    sample = system.kernel.modules.loaded["livepatch_sample"]
    lp.module_going(sample)
    assert [lp.name(p) for p in lp.patches] == ["test_klp_livepatch"]
    assert len(m.kernel.klp_patch.func_stack(cmdline)) == 1
    assert lp.transition.patch == other
    assert m.run_until(lambda: lp.transition.patch is None, 3_000_000_000)
    assert shell_run(system, "cat /proc/cmdline")[1] == "test_klp_livepatch: this has been live patched\n"
    system.kernel.modules.unload("livepatch_sample")
    assert m.kernel.check_consistency() == []


def test_shell_echo_of_raw_bytes_on_a_strict_stdout():
    """Even where Python's stdout refuses what is not UTF-8, a typed raw byte echoes back as that
    byte, and a missing path is named with \\xNN."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    cmd = b"echo a\xffb; cat /x\xff"
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "shell", "-c", cmd], capture_output=True, check=False, env=env
    )
    assert res.stdout == b"a\xffb\n"
    assert res.stderr == b"cat: /x\\xff: No such file or directory\n"


def test_shell_reads_raw_bytes_from_a_strict_stdin():
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "shell"],
        input=b"echo s\xfet > /dev/kmsg\ndmesg\n",
        capture_output=True,
        check=False,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines()[-1].endswith("] s\\xfet")
