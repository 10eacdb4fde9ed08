"""Ports of tools/testing/selftests/livepatch/test-kprobe.sh and test-ftrace.sh: the same steps,
compared with the same expected transcripts (the selftests' check_result: the commands the
script logs, then the kernel's livepatch and test_klp lines, taint messages left out).

The patch is klpemu's livepatch-sample, which replaces cmdline_proc_show as the selftests'
test_klp_livepatch does; the kprobe module is our own test_klp_kprobe.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from machine_util import shell_run

from klpemu.kernel.module import shipped_module
from klpemu.kernel.printk import records
from klpemu.system import System

MOD_LIVEPATCH = "livepatch_sample"
LP_FILE = "livepatch-sample"
MOD_KPROBE = "test_klp_kprobe"
SYSFS_KLP_DIR = "/sys/kernel/livepatch"
SYSFS_KPROBES_DIR = "/sys/kernel/debug/kprobes"
TRACING = "/sys/kernel/tracing"
PATCHED = "this has been live patched"


class Selftest:
    """functions.sh, over a klpemu shell: each helper logs what the script logs."""

    def __init__(self, system: System):
        self.system = system
        self.m = system.machine
        self.lines: list[str] = []
        self.seq = self.m.var("printk_rb").next_seq

    def log(self, text: str) -> None:
        self._kernel_lines()
        self.lines.append(text)

    def _kernel_lines(self) -> None:
        for r in records(self.m, self.seq):
            if ("livepatch:" in r.text or "test_klp" in r.text) and "tainting kernel" not in r.text:
                self.lines.append(r.text)
        self.seq = self.m.var("printk_rb").next_seq

    def sh(self, cmd: str) -> tuple[int, str, str]:
        status, out, err = shell_run(self.system, cmd)
        self._kernel_lines()
        return status, out, err

    def ok(self, cmd: str) -> str:
        status, out, err = self.sh(cmd)
        assert status == 0, (cmd, err)
        return out

    def load_mod(self, mod_file: str, *params: str) -> None:
        args = " ".join((f"test_modules/{mod_file}.ko",) + params)
        self.log(f"% insmod {args}")
        self.ok(f"insmod {args}")

    def load_lp(self, mod_file: str, name: str) -> None:
        self.load_mod(mod_file)
        self.ok(f"wait {SYSFS_KLP_DIR}/{name}/transition 0")

    def load_failing_mod(self, mod_file: str) -> None:
        self.log(f"% insmod test_modules/{mod_file}.ko")
        status, _, err = self.sh(f"insmod test_modules/{mod_file}.ko")
        assert status != 0
        self.log(err.rstrip("\n"))

    def unload_mod(self, name: str) -> None:
        self.log(f"% rmmod {name}")
        self.ok(f"rmmod {name}")

    def disable_lp(self, name: str) -> None:
        self.log(f"% echo 0 > {SYSFS_KLP_DIR}/{name}/enabled")
        self.ok(f"echo 0 > {SYSFS_KLP_DIR}/{name}/enabled; wait --gone {SYSFS_KLP_DIR}/{name}")

    def unload_lp(self, name: str) -> None:
        self.unload_mod(name)

    def set_ftrace_enabled(self, value: int, fail: bool = False) -> None:
        status, _, _ = self.sh(f"echo {value} > /proc/sys/kernel/ftrace_enabled")
        if fail:
            assert status != 0
            self.log('livepatch: sysctl: setting key "kernel.ftrace_enabled": Device or resource busy')
        else:
            assert status == 0
            self.log(f"livepatch: kernel.ftrace_enabled = {value}")

    def trace_function(self, func: str) -> None:
        self.ok(f"echo {func} > {TRACING}/set_ftrace_filter; echo function > {TRACING}/current_tracer")

    def check_traced_functions(self, func: str) -> None:
        trace = self.ok(f"cat {TRACING}/trace")
        assert f": {func} <-" in trace, trace
        self.ok(f"echo nop > {TRACING}/current_tracer; echo > {TRACING}/set_ftrace_filter; echo > {TRACING}/trace")

    def cmdline(self) -> str:
        return self.ok("cat /proc/cmdline").rstrip("\n")

    def result(self) -> str:
        self._kernel_lines()
        return "\n".join(self.lines)


@pytest.fixture
def selftest(tmp_path, monkeypatch) -> Selftest:
    (tmp_path / "test_modules").mkdir()
    for name in (LP_FILE, MOD_KPROBE):
        os.symlink(shipped_module(name), tmp_path / "test_modules" / Path(shipped_module(name)).name)
    monkeypatch.chdir(tmp_path)
    return Selftest(System().boot())


def test_kprobe_livepatch_interaction_with_post_handler(selftest):
    t = selftest
    t.ok(f"echo 1 > {SYSFS_KPROBES_DIR}/enabled")
    t.load_mod(MOD_KPROBE, "has_post_handler=true")
    t.load_failing_mod(LP_FILE)
    t.unload_mod(MOD_KPROBE)
    assert t.result() == f"""% insmod test_modules/test_klp_kprobe.ko has_post_handler=true
% insmod test_modules/{LP_FILE}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: failed to register ftrace handler for function 'cmdline_proc_show' (-16)
livepatch: failed to patch object 'vmlinux'
livepatch: failed to enable patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': canceling patching transition, going to unpatch
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
insmod: ERROR: could not insert module test_modules/{LP_FILE}.ko: Device or resource busy
% rmmod test_klp_kprobe"""
    (c,) = t.m.kernel.conflicts.records
    assert (c.rule, c.errno) == ("livepatch-kprobe-post", -16)


def test_kprobe_livepatch_interaction_without_post_handler(selftest):
    t = selftest
    t.load_mod(MOD_KPROBE, "has_post_handler=false")
    t.load_lp(LP_FILE, MOD_LIVEPATCH)
    t.unload_mod(MOD_KPROBE)
    t.disable_lp(MOD_LIVEPATCH)
    t.unload_lp(MOD_LIVEPATCH)
    assert t.result() == f"""% insmod test_modules/test_klp_kprobe.ko has_post_handler=false
% insmod test_modules/{LP_FILE}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete
% rmmod test_klp_kprobe
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}"""
    (c,) = t.m.kernel.conflicts.records
    assert (c.rule, c.errno) == ("livepatch-kprobe", 0)


LP_TRANSCRIPT = f"""% insmod test_modules/{LP_FILE}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete"""

UNPATCH_TRANSCRIPT = f"""% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}"""


def test_ftrace_enabled_sysctl(selftest):
    t = selftest
    t.set_ftrace_enabled(0)
    t.load_failing_mod(LP_FILE)
    t.set_ftrace_enabled(1)
    t.load_lp(LP_FILE, MOD_LIVEPATCH)
    assert t.cmdline() == PATCHED
    t.set_ftrace_enabled(0, fail=True)  # refused while a PERMANENT ops (the patch's) is registered
    assert t.cmdline() == PATCHED
    t.disable_lp(MOD_LIVEPATCH)
    t.unload_lp(MOD_LIVEPATCH)
    assert t.result() == f"""livepatch: kernel.ftrace_enabled = 0
% insmod test_modules/{LP_FILE}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: failed to register ftrace handler for function 'cmdline_proc_show' (-16)
livepatch: failed to patch object 'vmlinux'
livepatch: failed to enable patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': canceling patching transition, going to unpatch
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
insmod: ERROR: could not insert module test_modules/{LP_FILE}.ko: Device or resource busy
livepatch: kernel.ftrace_enabled = 1
{LP_TRANSCRIPT}
livepatch: sysctl: setting key "kernel.ftrace_enabled": Device or resource busy
{UNPATCH_TRANSCRIPT}"""


def test_trace_livepatched_function(selftest):
    t = selftest
    t.load_lp(LP_FILE, MOD_LIVEPATCH)
    t.trace_function("livepatch_cmdline_proc_show")
    if t.cmdline() == PATCHED:
        t.log("livepatch: ok")
    t.check_traced_functions("livepatch_cmdline_proc_show")
    t.disable_lp(MOD_LIVEPATCH)
    t.unload_lp(MOD_LIVEPATCH)
    assert t.result() == f"{LP_TRANSCRIPT}\nlivepatch: ok\n{UNPATCH_TRANSCRIPT}"


def test_livepatch_traced_function(selftest):
    t = selftest
    t.trace_function("cmdline_proc_show")
    t.load_lp(LP_FILE, MOD_LIVEPATCH)
    if t.cmdline() == PATCHED:
        t.log("livepatch: ok")
    t.check_traced_functions("cmdline_proc_show")
    t.disable_lp(MOD_LIVEPATCH)
    t.unload_lp(MOD_LIVEPATCH)
    assert t.result() == f"{LP_TRANSCRIPT}\nlivepatch: ok\n{UNPATCH_TRANSCRIPT}"
    rules = {c.rule for c in t.m.kernel.conflicts.records}
    assert rules == {"livepatch-function-tracer"}
