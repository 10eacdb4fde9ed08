"""Ctrl-C and stuck guests, in process: Machine.request_stop stops a run at a slice boundary
with Interrupted, the shell reports ^C with status 130 and the machine runs on, consistent;
a guest that stops answering is described, and `reboot` replaces it."""

from __future__ import annotations

import io
import threading
from errno import EINTR

import pytest
from machine_util import booted_system

from klpemu.errors import Interrupted
from klpemu.shell import STATUS_INTERRUPTED, Shell


def shell_on(system, err=None):
    out = io.StringIO()
    return Shell(system, out=out, err=err or io.StringIO()), out


def later(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.start()
    return t


def test_request_stop_interrupts_a_run_at_a_slice_boundary():
    system = booted_system()
    m = system.machine
    t = later(0.2, m.request_stop)
    with pytest.raises(Interrupted) as e:
        m.run(10**18)
    t.join()
    assert e.value.errno == EINTR
    assert 0 < m.now < 10**18
    assert m.kernel.check_consistency() == []
    assert system.vfs.read("/proc/version").startswith("klpemu kernel version")


def test_ctrl_c_during_sleep_returns_130_and_the_next_command_works():
    system = booted_system()
    sh, out = shell_on(system)
    t = later(0.2, sh.interrupt)
    assert sh.run_line("sleep 1000s; echo not reached") == STATUS_INTERRUPTED
    t.join()
    assert (out.getvalue(), sh.err.getvalue()) == ("", "^C\n")
    assert system.machine.kernel.check_consistency() == []
    assert sh.run_line("cat /proc/version") == 0
    assert out.getvalue().startswith("klpemu kernel version")


def test_ctrl_c_stops_a_huge_step_between_instructions():
    system = booted_system()
    sh, out = shell_on(system)
    t = later(0.3, sh.interrupt)
    assert sh.run_line("step 999999999999 | tail -n 1") == STATUS_INTERRUPTED
    t.join()
    assert out.getvalue() == ""  # an interrupted pipeline prints nothing, as its filters never ran
    assert system.machine.kernel.check_consistency() == []
    assert sh.run_line("step 2") == 0
    assert len(out.getvalue().splitlines()) == 2


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_sleep_shows_its_progress_on_a_terminal():
    system = booted_system()
    err = Tty()
    sh, _ = shell_on(system, err)
    sh.progress_after = 0.05
    t = later(0.5, sh.interrupt)
    assert sh.run_line("sleep 999999999999") == STATUS_INTERRUPTED
    t.join()
    text = err.getvalue()
    assert text.startswith("\r\033[Ksleep: ")
    assert "s of 1e+12s emulated (" in text and "; Ctrl-C stops)" in text
    assert text.endswith("\r\033[K^C\n")  # the line erased before the ^C


def test_no_progress_line_when_stderr_is_not_a_terminal():
    system = booted_system()
    sh, _ = shell_on(system)
    sh.progress_after = 0.0
    assert sh.run_line("sleep 50ms") == 0
    assert sh.err.getvalue() == ""


def test_a_stuck_guest_is_described_and_reboot_replaces_it():
    system = booted_system(cpus=2, seed=3)
    sh, out = shell_on(system)
    assert sh.run_line("insmod test_klp_callbacks_demo") == 0
    assert sh.run_line("insmod test_klp_callbacks_busy block_transition=0") == 1
    lines = sh.err.getvalue().splitlines()
    assert lines[0] == "insmod: init_module test_klp_callbacks_busy: no answer from the guest within 5s"
    assert lines[1].startswith("sh (pid ") and " is in state D on cpu " in lines[1]
    frames = [line.split("+")[0].strip() for line in lines[2:-1]]
    assert frames[:4] == ["__schedule", "schedule", "wait_for_completion", "test_klp_callbacks_busy_init"]
    assert "sys_init_module" in frames
    assert lines[-1] == "the console waits for it: 'reboot' starts a fresh machine with the same options"
    sh.err.truncate(0)
    sh.err.seek(0)
    assert sh.run_line("cat /proc/version") == 1
    assert sh.err.getvalue().startswith("cat: /proc/version: no answer from the guest within 5s: ")
    assert "test_klp_callbacks_busy_init" in sh.err.getvalue()
    old = sh.machine
    assert sh.run_line("reboot; cat /proc/version; lsmod") == 0
    assert sh.machine is not old and sh.system.machine is sh.machine
    assert (sh.machine.config.cpus, sh.machine.config.seed) == (2, 3)
    assert out.getvalue().splitlines()[-2:] == [
        "klpemu kernel version 1.0 (gcc version 12.2.0) #1 SMP PREEMPT",
        "Module                  Size  Used by",
    ]


def test_ctrl_c_while_an_init_blocks_keeps_the_machine_consistent():
    system = booted_system()
    sh, _ = shell_on(system)
    assert sh.run_line("insmod test_klp_callbacks_demo") == 0
    t = later(0.1, sh.interrupt)
    assert sh.run_line("insmod test_klp_callbacks_busy block_transition=0") == STATUS_INTERRUPTED
    t.join()
    assert sh.err.getvalue() == "^C\n"
    assert system.machine.kernel.check_consistency() == []
    # The init still waits, in sh's context, as after a Ctrl-C at a real insmod in D state.
    out = io.StringIO()
    sh.out = out
    assert sh.run_line("ps | grep ' sh$'") == 0
    assert out.getvalue().split()[1] == "D"


def test_ctrl_c_stops_a_wait_whose_condition_runs_the_guest():
    # Each check of the condition reads a file through the console, a run inside wait's run:
    # the stop must reach the outer one although the condition takes errors as "not yet".
    system = booted_system()
    sh, _ = shell_on(system)
    t = later(0.3, sh.interrupt)
    assert sh.run_line("wait /proc/version never 100000s") == STATUS_INTERRUPTED
    t.join()
    assert sh.err.getvalue() == "^C\n"
    assert system.machine.kernel.check_consistency() == []
    assert sh.run_line("cat /proc/version") == 0


def test_a_stop_requested_between_runs_stops_the_next_one_only():
    system = booted_system()
    m = system.machine
    m.request_stop()
    with pytest.raises(Interrupted):
        m.run(1_000_000)
    assert m.run(1_000_000) is True
