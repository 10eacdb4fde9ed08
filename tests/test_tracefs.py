"""tracefs files, compared with exact expected text, and the redirect policies."""

from __future__ import annotations

import re

import pytest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.ftrace.ops import FL

T = "/sys/kernel/tracing"
HEADER = """\
# tracer: function
#
# entries-in-buffer/entries-written: {n}/{n}   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""
LINE = re.compile(r"^ {0,15}(\S+)-(\d+) +\[(\d{3})\] [.dNnphHs0-9]{5} +\d+\.\d{6}: (\S+) <-(\S+)$")


@pytest.fixture
def system():
    return booted_system()


sh = shell_run


def read(system, name):
    return system.vfs.read(f"{T}/{name}")


def test_defaults(system):
    assert read(system, "current_tracer") == "nop\n"
    assert read(system, "available_tracers") == "function_graph function nop\n"
    assert read(system, "tracing_on") == "1\n"
    assert read(system, "set_ftrace_filter") == "#### all functions enabled ####\n"
    assert read(system, "set_ftrace_notrace") == "#### no functions disabled ####\n"
    assert read(system, "enabled_functions") == ""
    assert read(system, "touched_functions") == ""


def test_available_filter_functions_lists_every_site_in_order(system):
    m = system.machine
    names = read(system, "available_filter_functions").splitlines()
    assert names == [m.image.function_at(ip).name for ip in m.image.mcount_loc]
    assert names.count("get_idle_time") == 2
    assert "__switch_to" not in names and "cmdline_proc_show" in names


def test_the_issue_transcript(system):
    status, out, err = sh(
        system,
        f"echo cmdline_proc_show > {T}/set_ftrace_filter; "
        f"echo function > {T}/current_tracer; cat /proc/cmdline; cat {T}/trace",
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == system.machine.config.cmdline
    text = "\n".join(lines[1:]) + "\n"
    assert text.startswith(HEADER.format(n=1))
    entry = LINE.match(lines[-1])
    assert entry, lines[-1]
    comm, pid, _cpu, func, parent = entry.groups()
    assert (comm, func, parent) == ("sh", "cmdline_proc_show", "seq_read_iter")
    assert int(pid) == next(
        t.pid for t in __import__("klpemu.kernel.tasks", fromlist=["x"]).all_tasks(system.machine) if t.comm == "sh"
    )


def test_filter_append_notrace_and_errors(system):
    assert sh(system, f"echo cmdline_proc_show > {T}/set_ftrace_filter")[0] == 0
    assert sh(system, f"echo meminfo_proc_show >> {T}/set_ftrace_filter")[0] == 0
    assert read(system, "set_ftrace_filter") == "cmdline_proc_show\nmeminfo_proc_show\n"
    status, _, err = sh(system, f"echo no_such_function > {T}/set_ftrace_filter")
    assert status == 1 and err == "echo: write error: Invalid argument\n"
    assert read(system, "set_ftrace_filter") == "cmdline_proc_show\nmeminfo_proc_show\n"  # unchanged
    sh(system, f"echo '*_proc_show' > {T}/set_ftrace_filter; echo 'meminfo*' > {T}/set_ftrace_notrace")
    assert "meminfo_proc_show" in read(system, "set_ftrace_filter")
    assert read(system, "set_ftrace_notrace") == "meminfo_proc_show\n"
    sh(system, f"echo > {T}/set_ftrace_filter")
    assert read(system, "set_ftrace_filter") == "#### all functions enabled ####\n"
    status, _, err = sh(system, f"echo bogus > {T}/current_tracer")
    assert status == 1 and err == "echo: write error: Invalid argument\n"


def test_enabled_and_touched_functions(system):
    m = system.machine
    sh(system, f"echo cmdline_proc_show > {T}/set_ftrace_filter; echo function > {T}/current_tracer")
    tramp = m.kernel.ftrace.site_target(m.image.addr("cmdline_proc_show"))
    func = m.image.symbolize(m.image.addr("function_trace_call"))
    expected = f"cmdline_proc_show (1)           \ttramp: 0x{tramp:x} ({func}) ->{func} [function]\n"
    assert read(system, "enabled_functions") == expected
    # A second user: the site moves to the shared ftrace_caller and the list function.
    ft = m.kernel.ftrace
    ops = ft.ops_native("kprobe-like", "ftrace_empty_func", FL["SAVE_REGS"] | FL["IPMODIFY"])
    ft.set_filter(ops, ["cmdline_proc_show"])
    ft.register(ops)
    lf = m.image.symbolize(m.image.addr("ftrace_ops_list_func"))
    assert read(system, "enabled_functions") == f"cmdline_proc_show (2) R I     M \ttramp: ftrace_regs_caller ->{lf}\n"
    ft.unregister(ops)
    sh(system, f"echo nop > {T}/current_tracer")
    assert read(system, "enabled_functions") == ""
    assert read(system, "touched_functions") == "cmdline_proc_show (0)         M \n"


def test_tracing_on_and_clearing_the_buffer(system):
    sh(system, f"echo cmdline_proc_show > {T}/set_ftrace_filter; echo function > {T}/current_tracer")
    sh(system, "cat /proc/cmdline; cat /proc/cmdline")
    assert read(system, "trace").count("cmdline_proc_show <-") == 2
    sh(system, f"echo 0 > {T}/tracing_on; cat /proc/cmdline")
    assert read(system, "trace").count("cmdline_proc_show <-") == 2
    sh(system, f"echo 1 > {T}/tracing_on; echo > {T}/trace")
    assert read(system, "trace") == HEADER.format(n=0)


def test_ftrace_enabled_sysctl_and_permanent(system):
    ft = system.machine.kernel.ftrace
    perm = ft.ops_native("perm", "ftrace_empty_func", FL["PERMANENT"])
    ft.set_filter(perm, ["cmdline_proc_show"])
    ft.register(perm)
    status, _, err = sh(system, "echo 0 > /proc/sys/kernel/ftrace_enabled")
    assert status == 1 and err == "echo: write error: Device or resource busy\n"
    assert system.vfs.read("/proc/sys/kernel/ftrace_enabled") == "1\n"


@pytest.mark.parametrize("policy, redirected", [("mainline", True), ("pre-5.11", False)])
def test_redirect_policy_through_ftrace_caller(policy, redirected):
    system = booted_system()
    m = system.machine
    ft = m.kernel.ftrace
    ft.redirect_policy = policy
    ft.private_trampolines = False
    ops = ft.ops_native("redirect", "ftrace_redirect_func", FL["IPMODIFY"])  # no SAVE_REGS: ftrace_caller
    m.struct("ftrace_ops", ops.addr).private = m.image.addr("version_proc_show")
    ft.set_filter(ops, ["cmdline_proc_show"])
    ft.register(ops)
    assert ft.site_target(m.image.addr("cmdline_proc_show")) == m.image.addr("ftrace_caller")
    text = system.console.read_file("/proc/cmdline")
    assert (text == system.console.read_file("/proc/version")) is redirected
    with pytest.raises(KlpemuError):
        ft.redirect_policy = "2.6"
