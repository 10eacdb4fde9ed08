"""The livepatch selftests' shell functions (Linux tools/testing/selftests/livepatch/functions.sh)
over a booted System and its shell, so that the selftest scripts port case by case.

Every step writes the command it stands for into the kernel log through /dev/kmsg, as the
scripts do ("% insmod test_modules/<mod>.ko", "% rmmod <mod>", ...), then runs it in the shell
and waits, in emulated time, for what the script polls for. A step that goes wrong logs
"ERROR: ..." and fails the test, as `die` ends the script. `check_result` compares the log
written since `start_test` through the scripts' filter with the expected text. The sysctl and
function-tracing helpers (`set_ftrace_enabled`, `trace_function`, `check_traced_functions`) act
through /proc/sys and tracefs as the scripts' sysctl and echo do.

The modules are the shipped ones, reached as test_modules/<mod>.ko from a working directory
prepared by `make_workdir` (the `klp` fixture), so that insmod's messages name them as the scripts' do.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import shlex
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.module import shipped_modules_dir
from klpemu.kernel.printk import records
from klpemu.system import System

SYSFS_KLP_DIR = "/sys/kernel/livepatch"
SYSFS_MODULE_DIR = "/sys/module"
SYSFS_KPROBES_DIR = "/sys/kernel/debug/kprobes"
# functions.sh reaches tracefs through debugfs's automount, $SYSFS_DEBUG_DIR/tracing; this machine
# mounts it only at its own mount point. The files and what they do are the same.
SYSFS_TRACING_DIR = "/sys/kernel/tracing"
# loop_until's patience: MAX_RETRIES (600) polls RETRY_INTERVAL (0.1 s) apart, in emulated time.
LOOP_TIMEOUT_NS = 600 * 100_000_000
LOOP_TIMEOUT = "60s"

# check_result keeps the livepatch core's and the test modules' lines, minus the taint notices.
_KEEP = ("livepatch:", "test_klp")
_DROP = re.compile(r"(tainting|taints) kernel")


def make_workdir(path: Path) -> Path:
    """Prepare path as the scripts' working directory: test_modules/ holds the shipped modules."""
    link = path / "test_modules"
    if not link.exists():
        link.symlink_to(shipped_modules_dir(), target_is_directory=True)
    return path


def is_livepatch_mod(mod: str) -> bool:
    """modinfo's `livepatch: Y`, read from the .ko's .modinfo strings."""
    path = Path(f"test_modules/{mod}.ko")
    if not path.is_file():
        raise AssertionError(f'Can\'t find "{path}", try "make"')
    with path.open("rb") as f:
        sec = ELFFile(f).get_section_by_name(".modinfo")
        strings = sec.data().split(b"\0") if sec is not None else []
    return b"livepatch=Y" in strings


class KlpSelftest:
    def __init__(self, system: System | None = None):
        self.system = system if system is not None else booted_system()
        self.machine = self.system.machine
        self.vfs = self.system.vfs
        self.last_seq = self.machine.var("printk_rb").next_seq

    # --- the shell ----------------------------------------------------------------------------

    def sh(self, cmd: str) -> tuple[int, str]:
        """Run one shell command; its status and its output, stderr included, as $(cmd 2>&1)."""
        status, out, err = shell_run(self.system, cmd)
        return status, out + err

    def log(self, msg: str) -> None:
        status, out = self.sh(f"echo {shlex.quote(msg)} > /dev/kmsg")
        assert status == 0 and out == "", f"writing to /dev/kmsg failed: {out}"

    def die(self, msg: str) -> None:
        self.log(f"ERROR: {msg}")
        raise AssertionError(msg)

    def skip(self, msg: str) -> None:
        """The scripts skip when the kernel lacks what they test. This machine is built with all of
        it, so what would be a skip is a regression here: logged as the script logs it, then failed."""
        self.log(f"SKIP: {msg}")
        pytest.fail(f"the selftest would skip: {msg}")

    def require_symbol(self, sym: str, msg: str) -> None:
        """grep -q SYM /proc/kallsyms || skip MSG, from vmlinux's symbol table, which kallsyms lists."""
        if not self.machine.image.has(sym):
            self.skip(msg)

    def loop_until(self, cond) -> bool:
        return bool(cond()) or self.machine.run_until(cond, LOOP_TIMEOUT_NS)

    def cat(self, path: str) -> str:
        status, out = self.sh(f"cat {path}")
        if status:
            self.die(out.strip())
        return out

    def log_matching(self, pattern: str, path: str) -> None:
        """grep PATTERN PATH > /dev/kmsg"""
        for line in self.cat(path).splitlines():
            if pattern in line:
                self.log(line)

    # --- sysctl ------------------------------------------------------------------------------

    def sysctl_set(self, key: str, value: str) -> str:
        """sysctl -q KEY=VALUE 2>&1: nothing, or sysctl's complaint. Newer procps names the file
        (/proc/sys/kernel/...), which functions.sh rewrites to the key, so the key is named here."""
        try:
            self.vfs.write(f"/proc/sys/{key.replace('.', '/')}", f"{value}\n")
        except KlpemuError as e:
            if self.machine.oops is not None:
                self.die(str(self.machine.oops))
            return f'sysctl: setting key "{key}": {os.strerror(e.errno) if e.errno else e}'
        return ""

    def sysctl_value(self, key: str) -> str:
        """sysctl --values KEY"""
        return self.cat(f"/proc/sys/{key.replace('.', '/')}").strip()

    def set_ftrace_enabled(self, value: int, *, fail: bool = False) -> None:
        """set_ftrace_enabled [--fail] VALUE: the sysctl's new value, or with fail, its refusal, logged."""
        err = self.sysctl_set("kernel.ftrace_enabled", str(value))
        result = self.sysctl_value("kernel.ftrace_enabled")
        if result != str(value):
            if fail:
                self.log(f"livepatch: {err}")
                return
            self.skip(f"failed to set kernel.ftrace_enabled = {value}")
        self.log(f"livepatch: kernel.ftrace_enabled = {result}")

    def ftrace_disable_supported(self) -> bool:
        """Whether the sysctl takes 0 at all: kernels that deprecated it refuse 0 with
        EOPNOTSUPP. Probed with nothing logged, and the value put back."""
        before = self.sysctl_value("kernel.ftrace_enabled")
        err = self.sysctl_set("kernel.ftrace_enabled", "0")
        self.sysctl_set("kernel.ftrace_enabled", before)
        return not err.endswith(os.strerror(errno.EOPNOTSUPP))

    def setup_config(self) -> None:
        """functions.sh's setup_config on a fresh machine: ftrace_enabled on. Saving and restoring
        the configuration does not apply: every test boots its own machine."""
        self.set_ftrace_enabled(1)

    # --- function tracing --------------------------------------------------------------------

    def tracing_write(self, name: str, value: str) -> None:
        """echo VALUE > $SYSFS_TRACING_DIR/NAME; the script would go on past a refusal, this dies."""
        status, out = self.sh(f"echo {shlex.quote(value)} > {SYSFS_TRACING_DIR}/{name}")
        if status:
            self.die(out.strip())

    def cleanup_tracing(self) -> None:
        self.tracing_write("tracing_on", "0")
        self.tracing_write("set_ftrace_filter", "")
        self.tracing_write("current_tracer", "nop")
        self.tracing_write("trace", "")

    def trace_function(self, function: str) -> None:
        self.cleanup_tracing()
        self.tracing_write("current_tracer", "function")
        self.tracing_write("set_ftrace_filter", function)
        self.tracing_write("tracing_on", "1")

    def check_traced_functions(self, *functions: str) -> None:
        """Each function must be in the trace as a whole word (grep -Fw), then tracing is cleaned up."""
        trace = self.cat(f"{SYSFS_TRACING_DIR}/trace")
        for function in functions:
            if not re.search(rf"(?<!\w){re.escape(function)}(?!\w)", trace):
                self.die(f"Function ({function}) did not appear in the trace")
        self.cleanup_tracing()

    # --- loading and unloading ----------------------------------------------------------------

    def _insmod(self, mod: str, params: tuple[str, ...]) -> str:
        msg = " ".join(("%", "insmod", f"test_modules/{mod}.ko", *params))
        self.log(msg)
        return self.sh(" ".join(("insmod", f"test_modules/{mod}.ko", *params)))[1].strip()

    def _load_mod(self, mod: str, params: tuple[str, ...]) -> None:
        ret = self._insmod(mod, params)
        if ret:
            self.die(ret)
        if not self.loop_until(lambda: self.vfs.exists(f"{SYSFS_MODULE_DIR}/{mod}")):
            self.die(f"failed to load module {mod}")

    def load_mod(self, mod: str, *params: str) -> None:
        if is_livepatch_mod(mod):
            self.die(f"use load_lp() to load the livepatch module {mod}")
        self._load_mod(mod, params)

    def load_lp_nowait(self, mod: str, *params: str) -> None:
        if not is_livepatch_mod(mod):
            self.die(f"module {mod} is not a livepatch")
        self._load_mod(mod, params)
        if not self.loop_until(lambda: self.vfs.exists(f"{SYSFS_KLP_DIR}/{mod}")):
            self.die(f"failed to load module {mod} (sysfs)")

    def load_lp(self, mod: str, *params: str) -> None:
        self.load_lp_nowait(mod, *params)
        if self.sh(f"wait {SYSFS_KLP_DIR}/{mod}/transition 0 {LOOP_TIMEOUT}")[0]:
            self.die("failed to complete transition")

    def load_failing_mod(self, mod: str, *params: str) -> None:
        ret = self._insmod(mod, params)
        if not ret:
            self.die(f"{mod} unexpectedly loaded")
        self.log(ret)

    def unload_mod(self, mod: str) -> None:
        refcnt = f"{SYSFS_MODULE_DIR}/{mod}/refcnt"
        if self.sh(f"wait {refcnt} 0 {LOOP_TIMEOUT}")[0]:
            self.die(f"failed to unload module {mod} (refcnt)")
        self.log(f"% rmmod {mod}")
        ret = self.sh(f"rmmod {mod}")[1]
        if ret:
            self.die(ret.strip())
        if self.sh(f"wait --gone {SYSFS_MODULE_DIR}/{mod} {LOOP_TIMEOUT}")[0]:
            self.die(f"failed to unload module {mod} (/sys/module)")

    def unload_lp(self, mod: str) -> None:
        self.unload_mod(mod)

    def disable_lp(self, mod: str) -> None:
        self.log(f"% echo 0 > {SYSFS_KLP_DIR}/{mod}/enabled")
        self.sh(f"echo 0 > {SYSFS_KLP_DIR}/{mod}/enabled")  # the script goes on, and waits
        if self.sh(f"wait --gone {SYSFS_KLP_DIR}/{mod} {LOOP_TIMEOUT}")[0]:
            self.die(f"failed to disable livepatch {mod}")

    def set_pre_patch_ret(self, mod: str, ret: int) -> None:
        param = f"{SYSFS_MODULE_DIR}/{mod}/parameters/pre_patch_ret"
        self.log(f"% echo {ret} > {param}")
        self.sh(f"echo {ret} > {param}")
        if self.sh(f"wait {param} {ret} {LOOP_TIMEOUT}")[0]:
            self.die(f"failed to set pre_patch_ret parameter for {mod} module")

    # --- results ------------------------------------------------------------------------------

    def start_test(self, test: str) -> None:
        """A unique line to start from (the script's timestamp canary), then the test's title."""
        self.log(f"livepatch kselftest timestamp: {self.machine.now} ns")
        self.last_seq = self.machine.var("printk_rb").next_seq
        self.log(f"===== TEST: {test} =====")

    def result(self) -> list[str]:
        """The kernel log since start_test, through functions.sh's filter."""
        return [
            r.text
            for r in records(self.machine, self.last_seq)
            if any(k in r.text for k in _KEEP) and not _DROP.search(r.text)
        ]

    def check_result(self, expect: str) -> None:
        want = expect.strip("\n").splitlines()
        got = self.result()
        if got == want:
            return
        if not got:
            raise AssertionError("buffer overrun? can't find the test's start in the kernel log")
        diff = "\n".join(difflib.unified_diff(want, got, "expected", "result", lineterm=""))
        raise AssertionError(f"livepatch kselftest failed:\n{diff}")

    def check_sysfs_rights(self, mod: str, rel_path: str, expected_rights: str) -> None:
        """stat --format %A, read from `ls -l` of the parent directory."""
        path = f"{SYSFS_KLP_DIR}/{mod}/{rel_path}".rstrip("/")
        parent, name = path.rsplit("/", 1)
        status, out = self.sh(f"ls -l {parent}")
        rights = next((line.split()[0] for line in out.splitlines() if line.split()[-1:] == [name]), None)
        if status or rights != expected_rights:
            self.die(f"Unexpected access rights of {path}: {expected_rights} vs. {rights}")

    def check_sysfs_value(self, mod: str, rel_path: str, expected_value: str) -> None:
        path = f"{SYSFS_KLP_DIR}/{mod}/{rel_path}"
        value = self.cat(path).rstrip("\n")
        if value != expected_value:
            self.die(f"Unexpected value in {path}: {expected_value} vs. {value}")
