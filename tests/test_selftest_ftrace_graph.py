"""Linux's ftrace selftests (tools/testing/selftests/ftrace/test.d) that exercise the trace ring,
function_graph and the trace array controls, case by case, as golden tests: the same steps, and
what each case greps for or compares, asserted here.

Ported: 00basic/basic1.tc (but README), basic2.tc, basic3.tc, ringbuffer_size.tc, snapshot.tc, trace_pipe.tc,
trace_marker.tc (the record size from our page layout instead of events/header_page);
ftrace/fgraph-filter.tc, fgraph-filter-stack.tc (up to its stack tracer part), fgraph-retval.tc
(another function returning an errno, as this kernel has no /proc/interrupts);
instances/instance.tc (the creations and deletions one after another: the shell runs no
background jobs). The cases marked `flags: instance` run in an instance too.
"""

from __future__ import annotations

import re

import pytest
from ftracetest import TRACING, Ftracetest
from machine_util import booted_system

from klpemu.kernel.ftrace.ring_buffer import BUF_PAGE_SIZE


@pytest.fixture
def system():
    return booted_system()


@pytest.fixture(params=["", "foo"], ids=["top", "instance"])
def ft(request, system):
    """A trace array: the top level, or (for `flags: instance` cases) instances/foo."""
    if request.param:
        system.vfs.mkdir(f"{TRACING}/instances/{request.param}")
    return Ftracetest(system, request.param)


# --- test.d/00basic --------------------------------------------------------------------------


def test_basic1_the_trace_files_are_there(system):
    """basic1.tc also wants README, which is not this tree's part of tracefs."""
    for name in ("trace", "tracing_on", "trace_pipe"):
        assert system.vfs.exists(f"{TRACING}/{name}")


def test_basic2_every_tracer_can_be_set(system):
    t = Ftracetest(system)
    tracers = t.cat("available_tracers").split()
    assert tracers == ["function_graph", "function", "nop"]
    for name in tracers:
        t.write("current_tracer", name)
        assert t.cat("current_tracer") == name + "\n"
    t.write("current_tracer", "nop")


def test_basic3_every_trace_clock_can_be_set(system):
    t = Ftracetest(system)
    clocks = t.cat("trace_clock").replace("[", "").replace("]", "").split()
    assert clocks == ["local", "global", "counter"]
    for c in clocks:
        t.write("trace_clock", c)
        assert f"[{c}]" in t.cat("trace_clock")
    t.write("trace_clock", "local")
    assert t.cat("trace_clock") == "[local] global counter\n"


def test_ringbuffer_size(ft):
    orig = int(ft.cat("buffer_size_kb").split()[0])
    assert ft.cat("buffer_size_kb") == "7 (expanded: 1408)\n"  # nothing has needed the ring yet
    ft.write("buffer_size_kb", str(orig // 2))
    assert ft.cat("buffer_size_kb") == "7\n"  # 3 KB: the 2-page minimum, 8160 bytes
    ft.write("buffer_size_kb", str(orig * 2))
    assert ft.cat("buffer_size_kb") == "15\n"  # 14 KB: 4 pages of 4080 bytes
    assert ft.cat("buffer_total_size_kb") == "30\n"
    ft.write("buffer_size_kb", str(orig))
    assert ft.cat("buffer_size_kb") == "7\n"
    status, err = ft.echo("0", "buffer_size_kb")
    assert status == 1 and "Invalid argument" in err


def test_snapshot(ft):
    ft.write("tracing_on", "0")
    assert "Snapshot is freed" in ft.cat("snapshot")
    ft.write("snapshot", "1")
    # The trace buffer is empty, so the snapshot is too: allocated but empty.
    assert "Snapshot is allocated" in ft.cat("snapshot")
    assert ft.cat("tracing_on") == "0\n"
    ft.write("tracing_on", "1")
    ft.write("snapshot", "1")
    assert ft.cat("tracing_on") == "1\n"


def test_snapshot_holds_what_the_ring_held(ft):
    ft.write("trace_marker", "before the snapshot")
    ft.write("snapshot", "1")
    assert "before the snapshot" in ft.cat("snapshot")
    assert "before the snapshot" not in ft.cat("trace")
    ft.write("trace_marker", "after it")
    assert "after it" in ft.cat("trace") and "after it" not in ft.cat("snapshot")
    ft.write("snapshot", "2")  # clears the snapshot, keeps it allocated
    assert "Snapshot is allocated" in ft.cat("snapshot")
    ft.write("snapshot", "0")
    assert "Snapshot is freed" in ft.cat("snapshot")


def test_trace_pipe(ft):
    ft.write("trace_marker", "test input 1")
    # trace never consumes the ring
    assert "test input 1" in ft.cat("trace")
    assert "test input 1" in ft.cat("trace")
    # trace_pipe does
    assert "test input 1" in ft.sh(f"cat {ft.path('trace_pipe')} | head -n 1")
    assert "test input 1" not in ft.cat("trace")


def test_trace_marker_longer_than_a_record_is_split(ft):
    # make_str: the size of a page's data, less the \n\0 the marker adds
    text = "X" * (BUF_PAGE_SIZE - 2)
    ft.write("trace", "")
    ft.write("trace_marker", text)
    pieces = [re.sub(r"^.*tracing_mark_write: ", "", line) for line in ft.lines() if "tracing_mark_write:" in line]
    assert len(pieces) > 1 and pieces[0] != text  # the line was broken
    assert "".join(pieces) == text  # and the whole of it is there


def test_trace_marker_line(system):
    t = Ftracetest(system)
    t.write("trace_marker", "hello")
    (line,) = t.lines()
    assert re.fullmatch(r" +sh-7 +\[00\d\] \.\.\.\.\. +\d+\.\d{6}: tracing_mark_write: hello", line), line
    t.write("options/markers", "0")
    status, err = t.echo("again", "trace_marker")
    assert status == 1 and "Invalid argument" in err
    t.write("options/markers", "1")
    t.write("tracing_on", "0")
    status, err = t.echo("again", "trace_marker")
    assert status == 1 and "Bad file descriptor" in err


# --- test.d/ftrace ---------------------------------------------------------------------------


def _fgraph_filter_check(t: Ftracetest) -> None:
    # functions (a "()" on the line): only schedule's
    calls = [line for line in t.lines() if "()" in line]
    assert [line for line in calls if "schedule" not in line] == [], "Graph filtering not working by itself?"
    assert any("schedule()" in line for line in calls), "No schedule traces found?"


def _fgraph_filter_run(t: Ftracetest) -> None:
    t.disable_tracing()
    t.clear_trace()
    t.write("set_ftrace_filter", "schedule")
    t.write("current_tracer", "function_graph")
    t.enable_tracing()
    t.sleep("1s")
    _fgraph_filter_check(t)


def test_fgraph_filter(system):
    _fgraph_filter_run(Ftracetest(system))


def test_fgraph_filter_stack(system):
    """The case runs function_graph filtered, then again with the stack tracer on and after it
    is off. Without a stack tracer (stack_trace) the script stops after the first part, as
    `Stack tracer not configured`."""
    t = Ftracetest(system)
    _fgraph_filter_run(t)
    if not system.vfs.exists(f"{TRACING}/stack_trace"):
        return
    enabled = "/proc/sys/kernel/stack_tracer_enabled"
    system.vfs.write(enabled, "1\n")
    t.disable_tracing()
    t.clear_trace()
    t.enable_tracing()
    t.sleep("1s")
    _fgraph_filter_check(t)  # not affected by the stack tracer
    system.vfs.write(enabled, "0\n")
    t.clear_trace()
    t.sleep("1s")
    _fgraph_filter_check(t)  # nor by its going


def test_fgraph_retval(system):
    t = Ftracetest(system)
    t.disable_tracing()
    t.clear_trace()
    t.write("set_ftrace_filter", "call_loop_write")
    t.write("current_tracer", "function_graph")
    t.write("options/funcgraph-retval", "1")
    t.enable_tracing()
    t.sh("echo x > /sys/kernel/debug/klpemu/call_loop", ok=False)
    t.disable_tracing()
    # the error code in signed decimal
    t.write("options/funcgraph-retval-hex", "0")
    assert [line for line in t.lines() if "call_loop_write" in line and "=-22" in line]
    # and in hexadecimal
    t.write("options/funcgraph-retval-hex", "1")
    assert [line for line in t.lines() if "call_loop_write" in line and "ffffffea" in line]


# --- test.d/instances ------------------------------------------------------------------------


def test_instance(system):
    inst = f"{TRACING}/instances"
    t = Ftracetest(system)
    t.sh(f"mkdir {inst}/x; rmdir {inst}/x")
    for _ in range(20):  # instance_slam, one after another
        t.sh(f"mkdir {inst}/x {inst}/y {inst}/z; rmdir {inst}/x {inst}/y {inst}/z")
    t.sh(f"mkdir {inst}/x {inst}/y {inst}/z")
    listing = t.sh(f"ls {inst}/x {inst}/y {inst}/z")
    assert "trace_pipe" in listing and "current_tracer" in listing
    t.sh(f"rmdir {inst}/x {inst}/y {inst}/z")
    assert t.sh(f"ls {inst}") == ""
