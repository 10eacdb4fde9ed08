"""Linux's tools/testing/selftests/ftrace/test.d/event/*.tc that apply here, case by case, then
the event files' text (format, id, enable, filter, trigger) compared with Linux's.

The scripts' `yield` pings localhost to make the kernel fork, switch and wake tasks; here
ftracetest.yield_ loads and removes a module that forks a kernel thread which then exits.
"""

from __future__ import annotations

import pytest
from ftracetest import Ftracetest, event_names, trace_lines, yield_
from machine_util import booted_system


@pytest.fixture
def ft():
    return Ftracetest(booted_system())


def do_reset(ft: Ftracetest) -> None:
    assert ft.try_write("set_event", "") == 0
    assert ft.try_write("trace", "") == 0


def sched_switch_lines(ft: Ftracetest) -> list[str]:
    return [line for line in trace_lines(ft) if "sched_switch" in line]


def test_event_enable(ft):
    """event-enable.tc: enable/disable with event level files."""
    do_reset(ft)
    assert ft.try_write("set_event", "sched:sched_switch") == 0
    yield_(ft)
    assert sched_switch_lines(ft), "sched_switch events are not recorded"
    do_reset(ft)
    assert ft.try_write("events/sched/sched_switch/enable", "1") == 0
    yield_(ft)
    assert sched_switch_lines(ft), "sched_switch events are not recorded"
    do_reset(ft)
    assert ft.try_write("events/sched/sched_switch/enable", "0") == 0
    yield_(ft)
    assert not sched_switch_lines(ft), "sched_switch events should not be recorded"


def test_subsystem_enable(ft):
    """subsystem-enable.tc: at least fork, exit and one more sched event are recorded."""
    do_reset(ft)
    assert ft.try_write("set_event", "sched:*") == 0
    yield_(ft)
    assert len(event_names(ft)) >= 3, "at least fork, exec and exit events should be recorded"
    assert {"sched_process_fork", "sched_process_exit"} <= event_names(ft)
    do_reset(ft)
    assert ft.try_write("events/sched/enable", "1") == 0
    yield_(ft)
    assert len(event_names(ft)) >= 3
    do_reset(ft)
    assert ft.try_write("events/sched/enable", "0") == 0
    yield_(ft)
    assert event_names(ft) == set(), "any of scheduler events should not be recorded"


def test_toplevel_enable(ft):
    """toplevel-enable.tc: every event through set_event `*:*` and through events/enable."""
    assert ft.try_write("set_event", "*:*") == 0
    yield_(ft)
    assert ft.try_write("tracing_on", "0") == 0
    assert trace_lines(ft)[:128], "none of events are recorded"
    do_reset(ft)
    assert ft.try_write("events/enable", "1") == 0
    assert ft.try_write("tracing_on", "1") == 0
    yield_(ft)
    assert ft.try_write("tracing_on", "0") == 0
    assert trace_lines(ft), "none of events are recorded"
    do_reset(ft)
    assert ft.try_write("events/enable", "0") == 0
    assert ft.try_write("tracing_on", "1") == 0
    yield_(ft)
    assert trace_lines(ft) == [], "any of events should not be recorded"


def test_event_pid(ft):
    """event-pid.tc, its first two parts: with set_event_pid, sched_switch records only switches
    from or to that task (the third part needs options/event-fork, which is not here)."""
    do_reset(ft)
    assert ft.try_write("events/sched/sched_switch/enable", "1") == 0
    yield_(ft)
    assert sched_switch_lines(ft), "sched_switch events are not recorded"
    do_reset(ft)
    mypid = 7  # the shell's pid, as /proc/self/stat gives it to the script
    assert ft.cat("/proc/7/comm") == "sh\n"
    assert ft.try_write("set_event_pid", str(mypid)) == 0
    assert ft.try_write("set_event", "sched:sched_switch") == 0
    yield_(ft)
    lines = sched_switch_lines(ft)
    assert lines and all(f"pid={mypid}" in line for line in lines), lines
    assert ft.cat("set_event_pid") == "7\n"
    assert ft.try_write("set_event_pid", "") == 0 and ft.cat("set_event_pid") == ""


# --- the files' text ---------------------------------------------------------------------------

SCHED_SWITCH_FORMAT = """\
name: sched_switch
ID: 300
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;

print fmt: "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d", \
REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | \
0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state \
& ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) \
<< 1) - 1), "|", { 0x00000001, "S" }, { 0x00000002, "D" }, { 0x00000004, "T" }, { 0x00000008, "t" }, \
{ 0x00000010, "X" }, { 0x00000020, "Z" }, { 0x00000040, "P" }, { 0x00000080, "I" }) : "R", REC->prev_state & \
(((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) \
<< 1) ? "+" : "", REC->next_comm, REC->next_pid, REC->next_prio
"""

IRQ_ENTRY_FORMAT = """\
name: irq_handler_entry
ID: 304
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;

print fmt: "irq=%d name=%s", REC->irq, __get_str(name)
"""


def test_formats(ft):
    assert ft.cat("events/sched/sched_switch/format") == SCHED_SWITCH_FORMAT
    assert ft.cat("events/irq/irq_handler_entry/format") == IRQ_ENTRY_FORMAT
    assert ft.cat("events/raw_syscalls/sys_enter/format").splitlines()[-3:] == [
        "\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;",
        "",
        'print fmt: "NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)", REC->id, REC->args[0], REC->args[1], REC->args[2], '
        "REC->args[3], REC->args[4], REC->args[5]",
    ]
    assert ft.cat("events/sched/sched_switch/id") == "300\n"


def test_available_events_and_set_event(ft):
    assert ft.cat("available_events").splitlines() == [
        "sched:sched_switch",
        "sched:sched_wakeup",
        "sched:sched_process_fork",
        "sched:sched_process_exit",
        "irq:irq_handler_entry",
        "irq:irq_handler_exit",
        "module:module_load",
        "module:module_free",
        "raw_syscalls:sys_enter",
        "raw_syscalls:sys_exit",
    ]
    assert ft.try_write("set_event", "sched:sched_s* irq") == 0
    assert ft.cat("set_event") == "sched:sched_switch\nirq:irq_handler_entry\nirq:irq_handler_exit\n"
    assert ft.cat("events/sched/enable") == "X\n" and ft.cat("events/irq/enable") == "1\n"
    assert ft.cat("events/enable") == "X\n"
    assert ft.try_write("set_event", "!irq:*", append=True) == 0
    assert ft.cat("set_event") == "sched:sched_switch\n"
    assert ft.try_write("set_event", "nosuch", append=True) == 22  # EINVAL, nothing matched
    assert ft.try_write("set_event", "") == 0 and ft.cat("set_event") == ""
    assert ft.cat("events/enable") == "0\n"


def test_event_lines(ft):
    ft.try_write("set_event", "irq:* raw_syscalls:* module:*")
    yield_(ft)
    lines = trace_lines(ft)
    assert any(line.endswith("irq_handler_entry: irq=0 name=timer") for line in lines)
    assert any(line.endswith("irq_handler_exit: irq=0 ret=handled") for line in lines)
    assert any(line.endswith("module_load: klab_sleeper ") for line in lines)
    assert any(line.endswith("module_free: klab_sleeper") for line in lines)
    exits = [line for line in lines if "sys_exit: NR " in line]
    assert exits and all(" = " in line for line in exits)


def test_filter(ft):
    """The filter language: numbers, globs on strings, && and ||; errors in error_log and the
    file."""
    f = "events/sched/sched_switch/filter"
    assert ft.cat(f) == "none\n"
    assert ft.try_write(f, 'next_comm ~ "klab*" || prev_pid == 9') == 0
    assert ft.cat(f) == 'next_comm ~ "klab*" || prev_pid == 9\n'
    ft.try_write("events/sched/sched_switch/enable", "1")
    yield_(ft)
    lines = sched_switch_lines(ft)
    assert lines and all("next_comm=klabd/0" in line or "prev_pid=9 " in line for line in lines), lines
    ft.try_write("trace", "")
    assert ft.try_write(f, "prev_pid >= 100 && prev_pid < 200") == 0
    yield_(ft)
    assert sched_switch_lines(ft) == []
    assert ft.try_write(f, "0") == 0 and ft.cat(f) == "none\n"

    ft.try_write("error_log", "")
    assert ft.try_write(f, "nosuch == 1") == 22
    assert ft.cat(f) == "nosuch == 1\n      ^\nparse_error: Field not found\n"
    log = ft.cat("error_log").splitlines()
    assert log[0].endswith("event filter parser: error: Field not found")
    assert log[1:] == ["  Command: nosuch == 1", "                 ^"]
    assert ft.try_write(f, "prev_comm < 3") == 22
    assert ft.cat(f).endswith("parse_error: Illegal operation for field type\n")
    assert ft.try_write(f, "prev_pid == abc") == 22
    assert ft.cat(f).endswith("parse_error: Invalid value (did you forget quotes)?\n")
    assert ft.try_write(f, "(prev_pid == 1") == 22
    assert ft.cat(f).endswith("parse_error: Too many '('\n")


def test_triggers(ft):
    """traceoff on an event stops the ring; enable_event holds its target in soft mode."""
    t = "events/sched/sched_process_fork/trigger"
    assert ft.cat(t) == "# Available triggers:\n# traceon traceoff snapshot stacktrace enable_event disable_event\n"
    assert ft.try_write(t, "enable_event:sched:sched_process_exit:1") == 0
    assert ft.cat("events/sched/sched_process_exit/enable") == "0*\n"
    assert ft.try_write("events/sched/sched_process_fork/enable", "1") == 0
    yield_(ft)
    names = event_names(ft)
    assert names == {"sched_process_fork", "sched_process_exit"}, names
    assert ft.cat(t) == "enable_event:sched:sched_process_exit:count=0\n"
    assert ft.cat("events/sched/sched_process_exit/enable") == "1*\n"
    assert ft.try_write(t, "enable_event:sched:sched_process_exit") == 17  # EEXIST
    assert ft.try_write(t, "!enable_event:sched:sched_process_exit") == 0
    assert ft.cat("events/sched/sched_process_exit/enable") == "0\n"

    assert ft.try_write(t, "traceoff") == 0
    assert ft.cat(t) == "traceoff:unlimited\n"
    yield_(ft)
    assert ft.cat("tracing_on") == "0\n"
    assert ft.try_write(t, "!traceoff") == 0


def test_subsystem_filter(ft):
    """A system's filter goes to each of its events that has the fields; none having them fails."""
    assert ft.cat("events/sched/filter") == "none\n"
    assert ft.try_write("events/sched/filter", "pid == 9") == 0
    assert ft.cat("events/sched/sched_wakeup/filter") == "pid == 9\n"
    assert ft.cat("events/sched/sched_process_exit/filter") == "pid == 9\n"
    assert ft.cat("events/sched/sched_switch/filter") == "none\n"  # no field `pid`
    ft.try_write("error_log", "")
    assert ft.try_write("events/sched/filter", "nosuch == 1") == 22
    assert (
        ft.cat("error_log")
        .splitlines()[0]
        .endswith("event filter parser: error: Couldn't find or set field in one of a subsystem's events")
    )
    assert ft.try_write("events/sched/filter", "0") == 0
    assert ft.cat("events/sched/sched_wakeup/filter") == "none\n"


def pid_lines(ft: Ftracetest, pid: int, event: str) -> list[str]:
    return [line for line in trace_lines(ft) if pid_lines_of(line, pid) and f" {event}:" in line]


def test_event_no_pid(ft):
    """event-no-pid.tc: a pid in set_event_notrace_pid records none of its own events, every
    other task still does; the file lists the pids, `>>` adds and an empty write clears."""
    do_reset(ft)
    sh = 7  # the shell writing the files
    assert ft.try_write("set_event_notrace_pid", str(sh)) == 0
    assert ft.cat("set_event_notrace_pid") == f"{sh}\n"
    assert ft.try_write("set_event", "raw_syscalls:*") == 0
    yield_(ft)
    assert not pid_lines(ft, sh, "sys_enter"), "the notrace pid's events are recorded"
    assert any(" sys_enter:" in line for line in trace_lines(ft)), "other tasks' events are not recorded"
    assert ft.try_write("set_event_notrace_pid", "6", append=True) == 0
    assert ft.cat("set_event_notrace_pid") == f"{sh}\n6\n"
    assert ft.try_write("set_event_notrace_pid", "x") == 22
    assert ft.try_write("set_event_notrace_pid", "") == 0
    assert ft.cat("set_event_notrace_pid") == ""
    assert ft.try_write("trace", "") == 0
    yield_(ft)
    assert pid_lines(ft, sh, "sys_enter"), "the pid's events are not recorded once it is cleared"

    # With both lists, a pid in set_event_pid and in set_event_notrace_pid records nothing.
    assert ft.try_write("set_event_pid", f"{sh} 6") == 0
    assert ft.try_write("set_event_notrace_pid", str(sh)) == 0
    assert ft.try_write("trace", "") == 0
    yield_(ft)
    assert not pid_lines(ft, sh, "sys_enter")
    assert not [line for line in trace_lines(ft) if " sys_enter:" in line and not pid_lines_of(line, 6)]
    assert ft.try_write("set_event_pid", "") == 0
    assert ft.try_write("set_event_notrace_pid", "") == 0


def pid_lines_of(line: str, pid: int) -> bool:
    return f"-{pid} " in line.split("[")[0]


def test_saved_cmdlines(ft):
    """A task that recorded and exited still shows its comm in `trace` (saved_cmdlines)."""
    do_reset(ft)
    assert ft.cat("saved_cmdlines_size") == "128\n"
    assert ft.try_write("set_event", "sched:*") == 0
    yield_(ft)
    exits = [line for line in trace_lines(ft) if " sched_process_exit:" in line]
    assert exits, "the thread's exit is not recorded"
    comm = exits[0].split("sched_process_exit: comm=")[1].split()[0]
    pid = int(exits[0].split(" pid=")[1].split()[0])
    assert exits[0].split()[0] == f"{comm}-{pid}", exits[0]
    assert "<...>" not in ft.cat("trace")
    assert f"{pid} {comm}\n" in ft.cat("saved_cmdlines")

    assert ft.try_write("saved_cmdlines_size", "0") == 22
    assert ft.try_write("saved_cmdlines_size", "4") == 0
    assert ft.cat("saved_cmdlines_size") == "4\n"
    assert ft.cat("saved_cmdlines") == ""
    yield_(ft)
    assert 0 < len(ft.cat("saved_cmdlines").splitlines()) <= 4


def test_event_fork(ft):
    """event-pid.tc's event-fork part: with options/event-fork a listed task's child is traced
    too (it joins set_event_pid at fork and leaves it at exit); without, it is not."""
    do_reset(ft)
    sh = 7
    assert ft.cat("options/event-fork") == "0\n"
    assert ft.try_write("set_event_pid", str(sh)) == 0
    assert ft.try_write("set_event", "sched:sched_process_exit") == 0
    yield_(ft)
    assert not [line for line in trace_lines(ft) if " sched_process_exit:" in line], "a child is traced"
    assert ft.try_write("options/event-fork", "1") == 0
    assert "event-fork" in ft.cat("trace_options").split()
    assert ft.try_write("trace", "") == 0
    yield_(ft)
    assert [line for line in trace_lines(ft) if " sched_process_exit:" in line], "the child is not traced"
    assert ft.cat("set_event_pid") == f"{sh}\n"  # the exited child left the list
    assert ft.try_write("options/event-fork", "0") == 0
    assert ft.try_write("set_event_pid", "") == 0
