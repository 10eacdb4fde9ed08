"""function_graph: its trace text (golden), its filters and options, the return hook seen by the
unwinder (a livepatch transition completes with graph-traced sleepers; /proc/PID/stack shows the
real return addresses), trace-call's label for the return path, module functions, and the
trace-array controls around it (func_stack_trace, sym options, instances, trace_clock)."""

from __future__ import annotations

import pytest
from ftracetest import TRACING, Ftracetest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.tasks import all_tasks
from klpemu.trace_call import trace_call

GRAPH_HEADER = """\
# tracer: function_graph
#
# CPU  DURATION                  FUNCTION CALLS
# |     |   |                     |   |   |   |
"""


@pytest.fixture
def system():
    return booted_system()


def ok(system, cmd: str) -> str:
    status, out, err = shell_run(system, cmd)
    assert status == 0, err
    return out


def test_graph_text_of_a_module_function_a_nested_call_and_a_marker(system):
    t = Ftracetest(system)
    ok(system, "insmod hello")
    t.write("set_ftrace_filter", "seq_read_iter cmdline_proc_show hello_greet")
    t.write("current_tracer", "function_graph")
    ok(system, "insmod hello_friend; cat /proc/cmdline")  # the friend's init calls hello_greet
    t.write("trace_marker", "hi there")
    # Durations come from the CPUs' clocks, which advance a slice (about 2000 instructions) at a time.
    assert t.cat("trace") == GRAPH_HEADER + (
        " 1)   0.000 us    |  hello_greet [hello]();\n"
        " 1)               |  seq_read_iter() {\n"
        " 1)   0.000 us    |    cmdline_proc_show();\n"
        " 1)   2.000 us    |  }\n"
        " 1)   0.000 us    |  seq_read_iter();\n"
        " 1)               |  /* hi there */\n"
    )
    t.write("options/funcgraph-abstime", "1")
    t.write("options/funcgraph-tail", "1")
    t.write("options/funcgraph-cpu", "0")
    t.write("options/funcgraph-proc", "1")
    lines = t.cat("trace").splitlines()
    assert lines[2:4] == [
        "#     TIME         TASK/PID         DURATION                  FUNCTION CALLS",
        "#      |            |    |           |   |                     |   |   |   |",
    ]
    assert lines[7] == "    0.000070 |       sh-7      |   2.000 us    |  } /* seq_read_iter */"


def test_durations_get_the_overhead_marks(system):
    from klpemu.kernel.ftrace.graph_output import find_mark, graph_duration

    assert [find_mark(d) for d in (10_000, 10_001, 100_001, 1_000_001, 10_000_001, 100_000_001, 1_000_000_001)] == [
        " ",
        "+",
        "!",
        "#",
        "*",
        "@",
        "$",
    ]
    assert graph_duration(1448) == "1.448 us    "
    assert graph_duration(255_948_000) == "255948.0 us "
    assert graph_duration(12_345_678_000) == "12345678 us "


def test_set_graph_function_notrace_and_max_depth(system):
    t = Ftracetest(system)
    t.write("set_ftrace_filter", "seq_read_iter cmdline_proc_show version_proc_show")
    t.write("current_tracer", "function_graph")
    t.write("set_graph_function", "seq_read_iter")
    assert t.cat("set_graph_function") == "seq_read_iter\n"
    ok(system, "cat /proc/cmdline")
    calls = [line.split("|  ")[1] for line in t.lines() if line.startswith(" 1)")]  # sh's CPU
    assert calls == ["seq_read_iter() {", "  cmdline_proc_show();", "}", "seq_read_iter();"]
    t.write("trace", "")
    t.write("max_graph_depth", "1")
    ok(system, "cat /proc/version")
    calls = [line.split("|  ")[1] for line in t.lines()]
    assert calls and set(calls) == {"seq_read_iter();"}  # nothing below depth 0
    t.write("max_graph_depth", "0")
    t.write("set_graph_notrace", "version_proc_show")
    t.write("trace", "")
    ok(system, "cat /proc/version; cat /proc/cmdline")
    calls = [line.split("|  ")[1] for line in t.lines()]
    assert "version_proc_show" not in "".join(calls) and "  cmdline_proc_show();" in calls
    t.write("set_graph_function", "")
    assert t.cat("set_graph_function") == "#### all functions enabled ####\n"


def test_function_graph_is_the_top_levels_alone(system):
    t = Ftracetest(system)
    system.vfs.mkdir(f"{TRACING}/instances/foo")
    assert t.cat("instances/foo/available_tracers") == "function nop\n"
    with pytest.raises(KlpemuError) as e:
        t.write("instances/foo/current_tracer", "function_graph")
    assert e.value.errno == 22


def test_a_livepatch_transition_completes_with_graph_traced_sleepers(system):
    m = system.machine
    t = Ftracetest(system)
    khungtaskd = next(task for task in all_tasks(m) if task.comm == "khungtaskd")
    before = ok(system, f"cat /proc/{khungtaskd.pid}/stack")
    t.write("set_ftrace_filter", "schedule_timeout schedule")
    t.write("current_tracer", "function_graph")
    ok(system, "sleep 2s")  # every sleeper has gone round its loop: schedule's return is hooked
    # The slot schedule returns through holds return_to_handler; the unwinder sees through it.
    rth = m.image.addr("return_to_handler")
    lo, hi = khungtaskd.stack_base, khungtaskd.stack_top
    slots = [a for a in range(lo, hi, 8) if m.mem.read_u64(a) == rth]
    assert slots, "no return_to_handler on khungtaskd's stack"
    assert ok(system, f"cat /proc/{khungtaskd.pid}/stack") == before
    assert "return_to_handler" not in ok(system, f"unwind {khungtaskd.pid}")
    ok(system, "insmod livepatch-sample.ko; wait /sys/kernel/livepatch/livepatch_sample/transition 0 5s")
    assert ok(system, "cat /proc/cmdline") == "this has been live patched\n"
    assert "schedule() {" in t.cat("trace")


def test_trace_call_labels_the_return_path(system):
    m = system.machine
    t = Ftracetest(system)
    t.write("set_ftrace_filter", "cmdline_proc_show")
    t.write("current_tracer", "function_graph")
    r = trace_call(m, "cmdline_proc_show", seq_file=True)
    labels = r.parts()
    assert labels[-2:] == ["graph return", "return"]
    assert "handler: ftrace_graph_func" in labels
    where = {s.where.split("+")[0] for s in r.steps if s.label == "graph return"}
    assert {"return_to_handler", "ftrace_return_to_handler", "trace_graph_return"} <= where
    assert r.steps[-1].detail == "from return_to_handler to the real return address (the host call's)"


def test_func_stack_trace_and_the_sym_options(system):
    t = Ftracetest(system)
    t.write("set_ftrace_filter", "cmdline_proc_show")
    t.write("current_tracer", "function")
    t.write("options/func_stack_trace", "1")
    ok(system, "cat /proc/cmdline")
    t.write("options/func_stack_trace", "0")
    events = [line.split(": ", 1)[1] if ": " in line else line for line in t.lines()]
    assert events[:4] == [
        "cmdline_proc_show <-seq_read_iter",
        "<stack trace>",
        " => cmdline_proc_show",
        " => seq_read_iter",
    ]
    assert events[-1] == " => entry_INT80_64"
    t.write("trace_options", "sym-offset")
    t.write("trace_options", "noprint-parent")
    lines = t.lines()
    assert lines[0].endswith(": cmdline_proc_show+0x0/0x2e") and lines[3].startswith(" => seq_read_iter+0x5a/0xd4")
    t.write("trace_options", "sym-addr")
    addr = system.machine.image.addr("cmdline_proc_show")
    assert t.lines()[0].endswith(f": cmdline_proc_show+0x0/0x2e <{addr:016x}>")
    with pytest.raises(KlpemuError):
        t.write("trace_options", "funcgraph-tail")  # function_graph's, and it is not current


def test_irq_info_and_the_counter_clock(system):
    t = Ftracetest(system)
    t.write("trace_clock", "counter")
    t.write("trace_marker", "one")
    t.write("trace_marker", "two")
    t.write("options/irq-info", "0")
    text = t.cat("trace")
    assert "#           TASK-PID     CPU#     TIMESTAMP  FUNCTION\n" in text
    assert [line.split("] ", 1)[1] for line in t.lines()] == [
        "            0: tracing_mark_write: one",
        "            1: tracing_mark_write: two",
    ]


def test_an_instance_has_its_own_ring_tracer_and_filter(system):
    t = Ftracetest(system)
    system.vfs.mkdir(f"{TRACING}/instances/foo")
    foo = Ftracetest(system, "foo")
    foo.write("set_ftrace_filter", "version_proc_show")
    foo.write("current_tracer", "function")
    t.write("set_ftrace_filter", "cmdline_proc_show")
    t.write("current_tracer", "function")
    ok(system, "cat /proc/version; cat /proc/cmdline")
    assert [line.split(": ")[1] for line in foo.lines()] == ["version_proc_show <-seq_read_iter"]
    assert [line.split(": ")[1] for line in t.lines()] == ["cmdline_proc_show <-seq_read_iter"]
    foo.write("trace_marker", "in foo")
    assert "in foo" in foo.cat("trace") and "in foo" not in t.cat("trace")
    # held (trace_array_get_by_name): rmdir is refused, and nothing changes
    tracing = system.machine.kernel.tracing
    tr = tracing.get_by_name("foo")
    status, _, err = shell_run(system, f"rmdir {TRACING}/instances/foo")
    assert status == 1 and err == f"rmdir: failed to remove '{TRACING}/instances/foo': Device or resource busy\n"
    assert foo.cat("current_tracer") == "function\n"
    tracing.put(tr)
    ok(system, f"rmdir {TRACING}/instances/foo")
    assert not system.vfs.exists(f"{TRACING}/instances/foo")
    assert "version_proc_show" not in ok(system, f"cat {TRACING}/enabled_functions")
    status, _, err = shell_run(system, f"mkdir {TRACING}/instances/foo {TRACING}/instances/foo")
    assert status == 1 and "File exists" in err


def test_an_instance_survives_a_snapshot(system):
    from klpemu.snapshot import Snapshot

    system.vfs.mkdir(f"{TRACING}/instances/foo")
    Ftracetest(system, "foo").write("trace_marker", "kept")
    copy = Snapshot.take(system).restore_system()
    assert "kept" in Ftracetest(copy, "foo").cat("trace")
    copy.vfs.rmdir(f"{TRACING}/instances/foo")
    assert system.vfs.exists(f"{TRACING}/instances/foo")


def test_a_module_function_leaves_the_graph_filter_when_the_module_goes(system):
    t = Ftracetest(system)
    ok(system, "insmod hello")
    t.write("set_ftrace_filter", "hello_greet")
    t.write("current_tracer", "function_graph")
    t.write("set_graph_function", "hello_greet")
    assert t.cat("set_graph_function") == "hello_greet [hello]\n"
    ok(system, "insmod hello_friend")
    assert [line.split("|  ")[1] for line in t.lines()] == ["hello_greet [hello]();"]
    ok(system, "rmmod hello_friend; rmmod hello")
    assert t.cat("set_graph_function") == "#### all functions enabled ####\n"


def test_a_full_ret_stack_counts_overruns_and_the_unwinder_recovers_every_hooked_frame():
    """krecurse goes 60 calls deep and naps at the bottom: past the ret_stack's 50 entries its
    calls are not hooked (funcgraph-overrun counts them); sleeping, its stack holds 50
    return_to_handler slots, and /proc/PID/stack shows the real callers in every one."""
    from klpemu.machine.machine import DEFAULT_CMDLINE

    system = booted_system(cmdline=f"{DEFAULT_CMDLINE} krecurse.depth=60")
    m = system.machine
    t = Ftracetest(system)
    krecurse = next(task for task in all_tasks(m) if task.comm == "krecurse")
    before = ok(system, f"cat /proc/{krecurse.pid}/stack")
    t.write("set_ftrace_filter", "recurse_descend")
    t.write("current_tracer", "function_graph")
    t.write("options/funcgraph-overrun", "1")
    ok(system, "sleep 200ms")
    view = m.struct("task_struct", krecurse.addr)
    assert view.curr_ret_stack == 50 and view.trace_overrun >= 10
    rth = m.image.addr("return_to_handler")
    assert sum(m.mem.read_u64(a) == rth for a in range(krecurse.stack_base, krecurse.stack_top, 8)) == 50
    assert ok(system, f"cat /proc/{krecurse.pid}/stack") == before
    overruns = [line for line in t.cat("trace").splitlines() if line.startswith(" (Overruns: ")]
    assert overruns and all(int(line.split()[1].rstrip(")")) % 10 == 0 for line in overruns)
