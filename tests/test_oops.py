"""Guest crashes become oops reports; a stopped machine can be inspected but not run."""

from __future__ import annotations

import re

import pytest
from machine_util import MS, task_by_comm
from machine_util import make_machine as new_machine

from klpemu.errors import KlpemuError
from klpemu.kernel.printk import dmesg
from klpemu.kernel.stacktrace import unwind_task
from klpemu.kernel.tasks import all_tasks
from klpemu.machine.console import Console
from klpemu.machine.machine import GuestStopped

LKDTM = "/sys/kernel/debug/provoke-crash/DIRECT"
SMALL_THRESH = 2 * MS  # hard lockup after a tick or two, soft lockup after a few


def crash(m, path: str, data: str) -> KlpemuError:
    with pytest.raises(KlpemuError) as e:
        Console(m).write_file(path, data)
    assert e.value.errno == 5  # EIO: the machine crashed under the request
    assert m.oops is not None and m.stopped
    assert str(m.oops) in str(e.value)
    return e.value


def line_starting(oops, prefix: str) -> str:
    found = [line for line in oops.lines if line.startswith(prefix)]
    assert found, f"no line starting with {prefix!r} in:\n{oops}"
    return found[0]


# --- sysrq 'c': a NULL pointer write in the writing task -------------------------------------


@pytest.fixture(scope="module")
def sysrq_crashed():
    m = new_machine(settle_tasks=True)
    crash(m, "/proc/sysrq-trigger", "c")
    return m


def test_sysrq_crash_headline(sysrq_crashed):
    oops = sysrq_crashed.oops
    assert oops.lines[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert oops.reason == oops.lines[0]
    assert oops.lines[1] == "#PF: supervisor write access in kernel mode"
    assert oops.lines[2] == "#PF: error_code(0x0002) - not-present page"
    assert line_starting(oops, "Oops: ").startswith("Oops: 0002 [#1]")


def test_sysrq_crash_names_the_cpu_task_and_rip(sysrq_crashed):
    m = sysrq_crashed
    oops = m.oops
    sh = task_by_comm(m, "sh")
    cpu_line = line_starting(oops, "CPU: ")
    assert re.match(rf"^CPU: {oops.cpu} PID: {sh.pid} Comm: sh ", cpu_line)
    assert (oops.pid, oops.comm) == (sh.pid, "sh")
    assert sh.running_on == oops.cpu
    assert line_starting(oops, "RIP: ").startswith("RIP: 0010:sysrq_handle_crash+")
    assert oops.regs["cs"] == 0x10
    assert m.image.lookup("sysrq_handle_crash").contains(oops.regs["rip"])
    assert re.match(r"^CR2: 0{16} ", line_starting(oops, "CR2: "))
    assert line_starting(oops, "RSP: 0018:")


def test_sysrq_crash_call_trace(sysrq_crashed):
    oops = sysrq_crashed.oops
    lines = oops.lines
    start = lines.index("Call Trace:")
    assert lines[start + 1] == " <TASK>"
    end = lines.index(" </TASK>")
    assert [line.strip() for line in lines[start + 2 : end]] == oops.backtrace
    assert oops.backtrace[0].startswith("write_sysrq_trigger+")
    assert [b.split("+")[0] for b in oops.backtrace[-2:]] == ["do_syscall_64", "entry_INT80_64"]
    assert lines[-1] == "---[ end trace 0000000000000000 ]---"


def test_sysrq_crash_is_in_the_kernel_log(sysrq_crashed):
    log = dmesg(sysrq_crashed)
    assert "sysrq: Trigger a crash" in log  # the guest's own pr_emerg before the fault
    body = [line.split("] ", 1)[1] for line in log.splitlines()]
    oops = sysrq_crashed.oops.lines
    i = body.index(oops[0])
    assert body[i : i + len(oops)] == oops
    assert body.index("sysrq: Trigger a crash") < i


def test_stopped_machine_refuses_to_run(sysrq_crashed):
    m = sysrq_crashed
    now = m.now
    for action in (
        lambda: m.run(MS),
        lambda: m.run_until(lambda: False, MS),
        lambda: m.call("strlen", 0),
        lambda: Console(m).read_file("/proc/cmdline"),
    ):
        with pytest.raises(GuestStopped) as e:
            action()
        assert isinstance(e.value, KlpemuError) and e.value.errno == 5
    assert m.now == now


def test_stopped_machine_is_still_readable(sysrq_crashed):
    m = sysrq_crashed
    comms = {t.comm for t in all_tasks(m)}
    assert {"init", "sh", "khungtaskd", "krecurse"} <= comms
    assert m.mem.read_cstr(m.var_addr("boot_command_line")) == m.config.cmdline
    assert m.read_var_int("jiffies") >= 0
    khungtaskd = unwind_task(m, task_by_comm(m, "khungtaskd"))
    assert khungtaskd.reliable and khungtaskd.frames[0].symbol.startswith("__schedule+")
    # The crashed task's stack, from its CPU's registers, shows where it died.
    sh = unwind_task(m, task_by_comm(m, "sh"))
    assert sh.frames[0].kind == "ip" and sh.frames[0].symbol.startswith("sysrq_handle_crash+")


# --- lkdtm ---------------------------------------------------------------------------------


def test_lkdtm_exception_is_a_null_pointer_oops(make_machine):
    m = make_machine()
    crash(m, LKDTM, "EXCEPTION")
    assert m.oops.lines[0].startswith("BUG: kernel NULL pointer dereference")
    assert line_starting(m.oops, "RIP: 0010:").startswith("RIP: 0010:lkdtm_EXCEPTION+")


def test_lkdtm_bug_panics(make_machine):
    m = make_machine()
    crash(m, LKDTM, "BUG")
    oops = m.oops
    assert re.match(r"^Kernel panic - not syncing: BUG at drivers/misc/lkdtm\.c:\d+$", oops.lines[0])
    assert line_starting(oops, "CPU: ").startswith(f"CPU: {oops.cpu} PID: {oops.pid} Comm: sh ")
    assert line_starting(oops, "RIP: 0010:").startswith("RIP: 0010:panic+")
    assert [b.split("+")[0] for b in oops.backtrace[:2]] == ["lkdtm_BUG", "direct_entry"]
    assert "lkdtm: Performing direct entry BUG" in dmesg(m)


def test_lkdtm_hardlockup(make_machine):
    m = make_machine(cpus=1, watchdog_thresh_ns=SMALL_THRESH)
    crash(m, LKDTM, "HARDLOCKUP")
    oops = m.oops
    assert oops.lines[0] == "watchdog: Watchdog detected hard LOCKUP on cpu 0"
    assert line_starting(oops, "RIP: 0010:").startswith("RIP: 0010:lkdtm_HARDLOCKUP+")
    assert not oops.regs["eflags"] & 0x200  # spinning with interrupts off
    assert oops.backtrace[0].startswith("direct_entry+")
    assert m.now > SMALL_THRESH  # emulated time: the watchdog waited out its threshold


def test_lkdtm_softlockup(make_machine):
    m = make_machine(cpus=1, watchdog_thresh_ns=SMALL_THRESH)
    crash(m, LKDTM, "SOFTLOCKUP")
    oops = m.oops
    sh = task_by_comm(m, "sh")
    assert re.match(rf"^watchdog: BUG: soft lockup - CPU#0 stuck for \d+s! \[sh:{sh.pid}\]$", oops.lines[0])
    assert line_starting(oops, "RIP: 0010:").startswith("RIP: 0010:lkdtm_SOFTLOCKUP+")
    assert oops.regs["eflags"] & 0x200  # interrupts on: the timer got in, nothing else ran
    assert m.now > 2 * SMALL_THRESH


def test_lkdtm_unknown_type_is_einval_and_harmless(make_machine):
    m = make_machine()
    with pytest.raises(KlpemuError) as e:
        Console(m).write_file(LKDTM, "NO_SUCH_CRASH")
    assert e.value.errno == 22
    assert m.oops is None
    assert Console(m).read_file("/proc/cmdline") == m.config.cmdline + "\n"


# --- host calls ------------------------------------------------------------------------------


def test_host_call_returns_rax(make_machine):
    m = make_machine(settle_tasks=True)
    assert all(c.halted and not c.user_mode for c in m.cpus)
    addr = m.var_addr("boot_command_line")
    assert m.call("strlen", addr) == len(m.config.cmdline)
    assert m.call(m.image.addr("strlen"), addr + 8) == len(m.config.cmdline) - 8
    # The machine goes on running normally after a host call.
    now = m.now
    m.run(5 * MS)
    assert m.oops is None and m.now >= now + 5 * MS


def test_host_call_argument_limit(make_machine):
    m = make_machine()
    with pytest.raises(KlpemuError) as e:
        m.call("strlen", 1, 2, 3, 4, 5, 6, 7)
    assert e.value.errno == 22
    assert m.oops is None


def test_host_call_that_never_returns_is_a_runaway(make_machine):
    m = make_machine(settle_tasks=True)
    with pytest.raises(GuestStopped) as e:
        m.call("busy_thread", budget=100_000)
    assert e.value.errno == 5
    assert m.stopped
    assert "ran away" in m.oops.reason and "busy_thread" in m.oops.reason
    assert "(100000 instructions)" in m.oops.reason
    assert str(e.value) == m.oops.lines[0]
    assert line_starting(m.oops, "RIP: 0010:").startswith(("RIP: 0010:busy_thread+", "RIP: 0010:busy_step+"))
    assert m.oops.lines[0] in dmesg(m)
    with pytest.raises(GuestStopped):
        m.run(MS)


def test_host_call_that_faults_reports_the_oops(make_machine):
    m = make_machine(settle_tasks=True)
    with pytest.raises(GuestStopped):
        m.call("sysrq_handle_crash")
    assert m.oops.lines[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert "#PF: supervisor write access in kernel mode" in m.oops.lines
    assert line_starting(m.oops, "RIP: 0010:").startswith("RIP: 0010:sysrq_handle_crash+")


def test_host_call_on_a_cpu_in_user_mode_runs_in_the_kernel(make_machine):
    m = make_machine(cpus=1)
    assert m.run_until(lambda: m.cpus[0].user_mode, 50 * MS)
    addr = m.var_addr("boot_command_line")
    try:
        assert m.call("strlen", addr) == len(m.config.cmdline)
    finally:
        assert m.oops is None, str(m.oops)
