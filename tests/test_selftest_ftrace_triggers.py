"""Linux's tools/testing/selftests/ftrace/test.d/trigger/*.tc that apply here (traceon/traceoff, snapshot, stacktrace,
enable/disable_event, conditional triggers), case by case. The selftests fork with `sleep`;
here ftracetest.yield_ forks and ends a kernel thread."""

from __future__ import annotations

import pytest
from ftracetest import Ftracetest, event_names, trace_lines, yield_
from machine_util import booted_system

FORK = "events/sched/sched_process_fork"


@pytest.fixture
def ft():
    return Ftracetest(booted_system())


def reset(ft: Ftracetest) -> None:
    assert ft.try_write("set_event", "") == 0
    assert ft.try_write("trace", "") == 0
    assert ft.try_write("tracing_on", "1") == 0


def test_trigger_traceonoff(ft):
    """trigger-traceonoff.tc: traceoff stops tracing, traceon starts it, both listed and removed."""
    reset(ft)
    assert ft.try_write(f"{FORK}/trigger", "traceoff") == 0
    assert ft.cat(f"{FORK}/trigger") == "traceoff:unlimited\n"
    yield_(ft)
    assert ft.cat("tracing_on") == "0\n", "traceoff trigger does not work"
    assert ft.try_write(f"{FORK}/trigger", "!traceoff") == 0
    assert ft.cat(f"{FORK}/trigger").startswith("# Available triggers:")

    assert ft.try_write(f"{FORK}/trigger", "traceon") == 0
    yield_(ft)
    assert ft.cat("tracing_on") == "1\n", "traceon trigger does not work"
    assert ft.try_write(f"{FORK}/trigger", "!traceon") == 0

    # Only one of traceon and traceoff on an event; a bad command is refused.
    assert ft.try_write(f"{FORK}/trigger", "traceoff") == 0
    assert ft.try_write(f"{FORK}/trigger", "traceon") != 0
    assert ft.try_write(f"{FORK}/trigger", "!traceoff") == 0
    assert ft.try_write(f"{FORK}/trigger", "nosuchcmd") != 0


def test_traceoff_records_its_event(ft):
    """traceoff acts after its event is recorded (a post trigger): the fork is in the trace."""
    reset(ft)
    assert ft.try_write(f"{FORK}/enable", "1") == 0
    assert ft.try_write(f"{FORK}/trigger", "traceoff:1") == 0
    yield_(ft)
    assert ft.cat("tracing_on") == "0\n"
    assert [line for line in trace_lines(ft) if "sched_process_fork" in line]
    assert ft.cat(f"{FORK}/trigger") == "traceoff:count=0\n"


def test_trigger_eventonoff(ft):
    """trigger-eventonoff.tc: enable_event and disable_event switch their target in soft mode."""
    reset(ft)
    target = "events/sched/sched_switch"
    assert ft.try_write(f"{FORK}/trigger", "enable_event:sched:sched_switch") == 0
    assert ft.cat(f"{target}/enable") == "0*\n"
    yield_(ft)
    assert "sched_switch" in event_names(ft), "enable_event trigger does not work"
    assert ft.cat(f"{target}/enable") == "1*\n"
    assert ft.try_write(f"{FORK}/trigger", "!enable_event:sched:sched_switch") == 0
    assert ft.cat(f"{target}/enable") == "0\n"

    assert ft.try_write(f"{target}/enable", "1") == 0
    assert ft.try_write(f"{FORK}/trigger", "disable_event:sched:sched_switch") == 0
    assert ft.cat(f"{target}/enable") == "1*\n"
    yield_(ft)
    assert ft.try_write("trace", "") == 0
    yield_(ft)
    assert "sched_switch" not in event_names(ft), "disable_event trigger does not work"
    assert ft.try_write(f"{FORK}/trigger", "!disable_event:sched:sched_switch") == 0
    assert ft.try_write(f"{target}/enable", "0") == 0

    # Errors: an unknown target, a target with no event, and a duplicate.
    assert ft.try_write(f"{FORK}/trigger", "enable_event:nogroup:noevent") != 0
    assert ft.try_write(f"{FORK}/trigger", "disable_event+1") != 0
    assert ft.try_write(f"{FORK}/trigger", "enable_event:sched:sched_switch") == 0
    assert ft.try_write(f"{FORK}/trigger", "enable_event:sched:sched_switch") != 0
    assert ft.try_write(f"{FORK}/trigger", "!enable_event:sched:sched_switch") == 0


def test_trigger_filter(ft):
    """trigger-filter.tc: a trigger acts only on the records its `if FILTER` matches."""
    reset(ft)
    assert ft.try_write(f"{FORK}/trigger", "traceoff if child_pid == 0") == 0
    assert ft.cat(f"{FORK}/trigger") == "traceoff:unlimited if child_pid == 0\n"
    yield_(ft)
    assert ft.cat("tracing_on") == "1\n", "traceoff was triggered wrongly"
    assert ft.try_write(f"{FORK}/trigger", "!traceoff") == 0
    assert ft.try_write(f"{FORK}/trigger", "traceoff if child_pid != 0") == 0
    yield_(ft)
    assert ft.cat("tracing_on") == "0\n", "traceoff trigger with filter does not work"
    assert ft.try_write(f"{FORK}/trigger", "!traceoff") == 0

    # Semantic errors in the filter are refused, and logged.
    for bad in ("traceoff if a", "traceoff if common_pid=0", "traceoff if common_pid==b"):
        assert ft.try_write(f"{FORK}/trigger", bad) == 22, bad
    assert "event filter parser" in ft.cat("error_log")
    assert ft.cat(f"{FORK}/trigger").startswith("# Available triggers:")
    for good in (
        "traceoff if common_pid == 0",
        "traceoff if common_pid <= 0",
        "traceoff if common_pid >= 0",
        "traceoff if parent_pid >= 0 && child_pid >= 0",
        "traceoff if parent_pid >= 0 || child_pid >= 0",
    ):
        assert ft.try_write(f"{FORK}/trigger", good) == 0, good
        assert ft.try_write(f"{FORK}/trigger", "!traceoff") == 0
    assert ft.try_write(f"{FORK}/trigger", "traceoff iff child_pid == 0") == 22


def test_conditional_trigger_sees_a_disabled_record(ft):
    """With tracing off, a conditional traceon still reads its event's fields (a scratch record)."""
    reset(ft)
    assert ft.try_write("tracing_on", "0") == 0
    assert ft.try_write(f"{FORK}/trigger", "traceon if child_pid == 0") == 0
    yield_(ft)
    assert ft.cat("tracing_on") == "0\n"
    assert ft.try_write(f"{FORK}/trigger", "!traceon") == 0
    assert ft.try_write(f"{FORK}/trigger", "traceon:1 if child_pid > 0") == 0
    yield_(ft)
    assert ft.cat("tracing_on") == "1\n"
    assert ft.cat(f"{FORK}/trigger") == "traceon:count=0 if child_pid > 0\n"
    # The event itself was never on: nothing of it is in the ring.
    assert "sched_process_fork" not in event_names(ft)


def test_conditional_enable_event(ft):
    """enable_event with a filter on the event's own record, the target in soft mode."""
    reset(ft)
    assert ft.try_write(f"{FORK}/trigger", "enable_event:sched:sched_process_exit if child_pid == 0") == 0
    assert ft.cat(f"{FORK}/trigger") == "enable_event:sched:sched_process_exit:unlimited if child_pid == 0\n"
    yield_(ft)
    assert "sched_process_exit" not in event_names(ft)
    assert ft.try_write(f"{FORK}/trigger", "!enable_event:sched:sched_process_exit") == 0
    assert ft.try_write(f"{FORK}/trigger", "enable_event:sched:sched_process_exit if child_pid != 0") == 0
    yield_(ft)
    assert "sched_process_exit" in event_names(ft)
    assert ft.try_write(f"{FORK}/trigger", "!enable_event:sched:sched_process_exit") == 0
    assert ft.cat("events/sched/sched_process_exit/enable") == "0\n"


def test_trigger_stacktrace(ft):
    """trigger-stacktrace.tc: a stack trace follows each event the trigger sees."""
    reset(ft)
    assert ft.try_write(f"{FORK}/trigger", "stacktrace") == 0
    assert ft.cat(f"{FORK}/trigger") == "stacktrace:unlimited\n"
    yield_(ft)
    text = ft.cat("trace")
    assert "<stack trace>" in text, "stacktrace trigger does not work"
    assert ft.try_write(f"{FORK}/trigger", "!stacktrace") == 0
    assert ft.try_write(f"{FORK}/trigger", "stacktrace:foo") == 22


def test_stacktrace_starts_at_the_tracepoint(ft):
    """The trace begins at the function holding the tracepoint (the fork), after the event's record;
    a count and a filter apply."""
    reset(ft)
    assert ft.try_write(f"{FORK}/enable", "1") == 0
    assert ft.try_write(f"{FORK}/trigger", "stacktrace:1 if child_pid > 0") == 0
    yield_(ft)
    yield_(ft)
    lines = trace_lines(ft)
    at = [i for i, line in enumerate(lines) if "<stack trace>" in line]
    assert len(at) == 1, lines
    assert "sched_process_fork" in lines[at[0] - 1]
    assert ft.cat(f"{FORK}/trigger") == "stacktrace:count=0 if child_pid > 0\n"


def test_trigger_snapshot(ft):
    """trigger-snapshot.tc: a snapshot trigger swaps the ring into the snapshot when its event
    fires, before the event's own record (not a post trigger): the snapshot holds the fork before."""
    reset(ft)
    assert ft.try_write(f"{FORK}/enable", "1") == 0
    yield_(ft)
    assert ft.try_write(f"{FORK}/trigger", "snapshot:1") == 0
    assert ft.cat(f"{FORK}/trigger") == "snapshot:count=1\n"
    yield_(ft)
    assert ft.cat(f"{FORK}/trigger") == "snapshot:count=0\n"
    forks = [line for line in ft.cat("snapshot").splitlines() if " sched_process_fork:" in line]
    assert len(forks) == 1, "the snapshot trigger doesn't work"
    assert len([line for line in trace_lines(ft) if " sched_process_fork:" in line]) == 1
    assert ft.try_write(f"{FORK}/trigger", "!snapshot") == 0
    assert ft.cat(f"{FORK}/trigger").startswith("# Available triggers:")
