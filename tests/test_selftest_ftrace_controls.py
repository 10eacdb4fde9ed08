"""Linux's tools/testing/selftests/ftrace/test.d/ftrace cases for the filter commands and the
controls beside the function tracer, case by case, through the shell as the .tc scripts drive
tracefs: each test names its .tc file and says where this kernel's functions stand in for the
ones the script names (no do_softirq, no _do_fork, no trace-printk sample module here).
"""

from __future__ import annotations

import re

import pytest
from machine_util import booted_system, shell_run, task_by_comm

from klpemu.kernel.ftrace.function_probes import TRIGGERS

T = "/sys/kernel/tracing"
ALL_FUNCS = "#### all functions enabled ####"
TRACE_LINE = re.compile(r"^ *(\S+)-(\d+) +\[(\d{3})\] \S{5} +\d+\.\d{6}: (\S+) <-(\S+)$")


class Tracefs:
    """A booted machine driven through the shell from /sys/kernel/tracing, as ftracetest runs a
    case there (its `set -e`: a command that fails fails the test unless it is expected to)."""

    def __init__(self):
        self.system = booted_system()

    def sh(self, cmd: str, *, fail: bool = False) -> str:
        status, out, err = shell_run(self.system, cmd)
        if fail:
            assert status != 0, f"{cmd!r} should have failed"
            return err
        assert status == 0, f"{cmd!r}: {err}"
        return out

    def echo(self, text: str, name: str, *, append: bool = False, fail: bool = False) -> str:
        return self.sh(f"echo '{text}' {'>>' if append else '>'} {T}/{name}", fail=fail)

    def cat(self, name: str) -> str:
        return self.system.vfs.read(f"{T}/{name}")

    def lines(self, name: str) -> list[str]:
        return self.cat(name).splitlines()

    def trace_entries(self) -> list[tuple[str, int, int, str]]:
        """(comm, pid, cpu, function) of every line of `trace` that is not a comment."""
        out = []
        for line in self.lines("trace"):
            if line.startswith("#"):
                continue
            m = TRACE_LINE.match(line)
            assert m, line
            out.append((m[1], int(m[2]), int(m[3]), m[4]))
        return out

    def available(self) -> list[str]:
        return [line.split()[0] for line in self.lines("available_filter_functions")]

    def pid_of(self, comm: str) -> int:
        return task_by_comm(self.system.machine, comm).pid

    def tracing_on(self) -> str:
        return self.cat("tracing_on").strip()


@pytest.fixture
def tfs():
    return Tracefs()


# --- func-filter-glob.tc -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "glob, regex",
    [
        ("*schedule", r"^.*schedule$"),
        ("*schedule*", r"^.*schedule.*$"),
        ("schedule*", r"^schedule.*$"),
        ("*mutex*lock", r".*mutex.*lock$"),  # the script's '*pin*lock': no spinlock is traceable here
        ("mutex*try*", r"^mutex.*try.*"),
        ("sch*ule", r"^sch.*ule$"),
        ("[Ss]y[Ss]_*", r"^[Ss]y[Ss]_.*$"),
    ],
)
def test_func_filter_glob(tfs, glob, regex):
    """func-filter-glob.tc: the filter a glob sets is exactly the functions of
    available_filter_functions that the script's regular expression matches, in its order."""
    assert re.search(r"accepts: .* glob-matching-pattern", tfs.cat("README"))  # the full-glob cases run
    tfs.echo("0", "tracing_on")
    tfs.echo(glob, "set_ftrace_filter")
    actual = [line.split(" ")[0] for line in tfs.lines("set_ftrace_filter")]
    expected = [name for name in tfs.available() if re.search(regex, name)]
    assert actual == expected and actual


def test_func_filter_glob_question_mark(tfs):
    """func-filter-glob.tc, its last case: `sch?dule` sets exactly schedule."""
    tfs.echo("sch?dule", "set_ftrace_filter")
    assert tfs.cat("set_ftrace_filter") == "schedule\n"
    tfs.echo("", "set_ftrace_filter")
    tfs.echo("1", "tracing_on")
    assert tfs.cat("set_ftrace_filter") == ALL_FUNCS + "\n"


# --- func_set_ftrace_file.tc -------------------------------------------------------------------

FUNC1, FUNC2 = "schedule", "mutex_lock"  # the script's FUNC2 is do_softirq, which this kernel lacks


def test_func_set_ftrace_file(tfs):
    """func_set_ftrace_file.tc: set_ftrace_filter lists functions, then triggers; `>` truncates
    the functions and keeps the triggers; `!GLOB:traceoff` removes the triggers it matches."""
    filt = "set_ftrace_filter"
    assert tfs.cat(filt) == f"{ALL_FUNCS}\n"
    tfs.echo(f"{FUNC1}:traceoff", filt)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\n{FUNC1}:traceoff:unlimited\n"
    tfs.echo(FUNC1, filt)
    assert tfs.cat(filt) == f"{FUNC1}\n{FUNC1}:traceoff:unlimited\n"
    tfs.echo(FUNC2, filt, append=True)
    # functions in the order of their ftrace records, as available_filter_functions has them
    assert tfs.cat(filt) == f"{FUNC2}\n{FUNC1}\n{FUNC1}:traceoff:unlimited\n"
    tfs.echo(f"{FUNC2}:traceoff", filt, append=True)
    assert tfs.cat(filt) == f"{FUNC2}\n{FUNC1}\n{FUNC2}:traceoff:unlimited\n{FUNC1}:traceoff:unlimited\n"
    tfs.echo(FUNC1, filt)
    assert tfs.cat(filt) == f"{FUNC1}\n{FUNC2}:traceoff:unlimited\n{FUNC1}:traceoff:unlimited\n"
    tfs.echo("", filt)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\n{FUNC2}:traceoff:unlimited\n{FUNC1}:traceoff:unlimited\n"

    # reset_ftrace_filter: every trigger removed by name, then the functions
    for line in tfs.lines(filt)[1:]:
        func, trigger, _ = line.split(":")
        tfs.echo(f"!{func}:{trigger}", filt, append=True)
    tfs.echo("", filt)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\n"
    tfs.echo(FUNC1, filt)
    assert tfs.cat(filt) == f"{FUNC1}\n"
    tfs.echo(FUNC2, filt, append=True)
    assert tfs.cat(filt) == f"{FUNC2}\n{FUNC1}\n"

    def actual():
        return sorted({line.split(" ")[0].split(":")[0] for line in tfs.lines(filt) if "#" not in line})

    expected = sorted({name for name in tfs.available() if "lock" in name})
    tfs.echo("*lock*:traceoff", filt)
    assert actual() == expected == ["lookup_locked", "mutex_lock", "mutex_trylock", "mutex_unlock"]
    for glob, drop in (("*try*lock", r"try.*lock$"), ("m*lock", r"^m.*lock$"), ("c*unlock*", r"^c.*unlock")):
        kept = [name for name in expected if not re.search(drop, name)]
        if kept == expected:
            # no trigger here matches (the script's kernel has c*unlock functions): refused
            assert (
                tfs.echo(f"!{glob}:traceoff", filt, append=True, fail=True) == "echo: write error: Invalid argument\n"
            )
        else:
            tfs.echo(f"!{glob}:traceoff", filt, append=True)
        expected = kept
        assert actual() == expected
    assert expected == ["lookup_locked"]
    tfs.echo("!*:traceoff", filt, append=True)
    assert actual() == []


# --- func_traceonoff_triggers.tc ---------------------------------------------------------------


def test_func_traceonoff_triggers(tfs):
    """func_traceonoff_triggers.tc on schedule. The script fills the trace with sched events;
    here the function tracer, on every function, does."""
    func, filt = "schedule", "set_ftrace_filter"

    def cnt_trace():
        return sum(1 for line in tfs.lines("trace") if not line.startswith("#"))

    tfs.echo("0", "tracing_on")
    tfs.echo("", "trace")
    assert cnt_trace() == 0
    tfs.echo("function", "current_tracer")
    tfs.echo("1", "tracing_on")
    tfs.sh("sleep 10ms")
    assert cnt_trace() > 0

    tfs.echo(f"{func}:traceoff", filt)
    assert sum(func in line for line in tfs.lines(filt)) == 1
    tfs.sh("sleep 100ms")  # the shell's task sleeps: schedule runs
    cnt = cnt_trace()
    tfs.sh("sleep 100ms")
    assert cnt_trace() == cnt, "Tracing is not stopped"
    assert tfs.tracing_on() == "0"
    before = tfs.cat("trace")
    tfs.sh("sleep 100ms")
    assert tfs.cat("trace") == before, "Tracing file is still changing"
    tfs.echo("", "trace")
    assert cnt_trace() == 0

    tfs.echo(f"!{func}:traceoff", filt, append=True)
    assert sum(func in line for line in tfs.lines(filt)) == 0
    assert tfs.tracing_on() == "0"

    tfs.echo(f"{func}:traceon", filt)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\n{func}:traceon:unlimited\n"
    tfs.sh("sleep 100ms")
    assert cnt_trace() > 0, "Tracing did not start"
    assert tfs.tracing_on() == "1"
    tfs.echo(f"!{func}:traceon", filt, append=True)
    assert sum(func in line for line in tfs.lines(filt)) == 0

    # check_sleep: each `echo 1 > tracing_on` is undone by the next schedule, three times
    tfs.echo(f"{func}:traceoff:3", filt)
    seen = []
    for want in ("0", "0", "0", "1"):
        tfs.sh("sleep 100ms")
        seen.append(tfs.cat(filt))
        assert tfs.tracing_on() == want
        tfs.echo("1", "tracing_on")
    assert seen == [f"{ALL_FUNCS}\n{func}:traceoff:count={n}\n" for n in (2, 1, 0, 0)]
    tfs.echo(f"!{func}:traceoff:0", filt)
    assert not [line for line in tfs.lines(filt) if "traceon" in line or "traceoff" in line]
    # only the function tracer's callback is left on the site
    sites = [line for line in tfs.lines("enabled_functions") if line.startswith(f"{func} ")]
    assert len(sites) == 1 and sites[0].startswith(f"{func} (1) ")


def test_func_filter_stacktrace(tfs):
    """func-filter-stacktrace.tc, on cmdline_proc_show for _do_fork: the trigger is listed, and a
    call leaves a <stack trace> record of the function and its callers in the ring, whatever the
    current tracer; with a count, only that many."""
    tfs.echo("cmdline_proc_show:stacktrace", "set_ftrace_filter", append=True)
    assert "cmdline_proc_show:stacktrace:unlimited" in tfs.lines("set_ftrace_filter")
    tfs.sh("cat /proc/cmdline; sleep 1s")
    trace = tfs.cat("trace")
    assert "<stack trace>" in trace
    stack = trace[trace.index("<stack trace>") :].splitlines()[1:4]
    assert [line.split("+")[0] for line in stack] == [" => cmdline_proc_show", " => seq_read_iter", " => do_syscall_64"]
    tfs.echo("!cmdline_proc_show:stacktrace", "set_ftrace_filter", append=True)
    tfs.echo("", "trace")
    tfs.echo("cmdline_proc_show:stacktrace:1", "set_ftrace_filter", append=True)
    tfs.sh("cat /proc/cmdline; cat /proc/cmdline")
    assert tfs.cat("trace").count("<stack trace>") == 1
    assert tfs.lines("set_ftrace_filter")[-1] == "cmdline_proc_show:stacktrace:count=0"


# --- the snapshot trigger (func_traceonoff_triggers.tc's shape) -----------------------------------


def test_func_snapshot_trigger(tfs):
    """`FUNC:snapshot` allocates the snapshot buffer when it is made; each call of FUNC swaps the
    ring with it in guest code (tracing_snapshot_instance from the probe), so the snapshot holds
    what the ring held and the ring goes on in the spare; `!` removes the trigger and keeps the
    buffer."""
    filt = "set_ftrace_filter"
    assert "Snapshot is freed" in tfs.cat("snapshot")
    tfs.echo("cmdline_proc_show:snapshot", filt)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\ncmdline_proc_show:snapshot:unlimited\n"
    assert "Snapshot is allocated" in tfs.cat("snapshot")
    tfs.echo("before the call", "trace_marker")
    tfs.sh("cat /proc/cmdline")
    assert "before the call" in tfs.cat("snapshot")
    assert "before the call" not in tfs.cat("trace")
    assert tfs.tracing_on() == "1"
    tfs.echo("after the call", "trace_marker")
    tfs.sh("cat /proc/cmdline")  # swaps back: the ring holds the first marker again
    assert "before the call" in tfs.cat("trace") and "after the call" in tfs.cat("snapshot")
    tfs.echo("!cmdline_proc_show:snapshot", filt, append=True)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\n"
    assert "after the call" in tfs.cat("snapshot")  # the buffer stays
    tfs.sh("cat /proc/cmdline")
    assert "after the call" in tfs.cat("snapshot")
    assert tfs.cat("enabled_functions") == ""
    assert not tfs.system.machine.kernel.check_consistency()


def test_func_snapshot_trigger_count(tfs):
    """`FUNC:snapshot:N`: N snapshots, each using one of the count, listed as count=N."""
    filt = "set_ftrace_filter"
    tfs.echo("cmdline_proc_show:snapshot:1", filt)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\ncmdline_proc_show:snapshot:count=1\n"
    tfs.echo("one", "trace_marker")
    tfs.sh("cat /proc/cmdline")
    assert tfs.cat(filt) == f"{ALL_FUNCS}\ncmdline_proc_show:snapshot:count=0\n"
    tfs.echo("two", "trace_marker")
    tfs.sh("cat /proc/cmdline")
    assert "one" in tfs.cat("snapshot") and "one" not in tfs.cat("trace")
    assert "two" in tfs.cat("trace") and "two" not in tfs.cat("snapshot")
    tfs.echo("!cmdline_proc_show:snapshot:0", filt)
    assert tfs.cat(filt) == f"{ALL_FUNCS}\n"


def test_func_snapshot_trigger_without_a_buffer(tfs):
    """With the snapshot freed after the trigger was made, a call says so in the trace and stops
    tracing, as tracing_snapshot_instance does."""
    tfs.echo("cmdline_proc_show:snapshot", "set_ftrace_filter")
    tfs.echo("0", "snapshot")
    tfs.sh("cat /proc/cmdline")
    assert tfs.tracing_on() == "0"
    trace = tfs.cat("trace")
    assert "tracing_snapshot_instance: *** SNAPSHOT NOT ALLOCATED ***" in trace
    assert "tracing_snapshot_instance: *** stopping trace here!   ***" in trace
    assert "Snapshot is freed" in tfs.cat("snapshot")


def test_func_snapshot_trigger_in_an_instance(tfs):
    """An instance's snapshot trigger swaps the instance's ring, not the top level's."""
    tfs.sh(f"mkdir {T}/instances/foo")
    tfs.echo("cmdline_proc_show:snapshot", "instances/foo/set_ftrace_filter")
    tfs.echo("top", "trace_marker")
    tfs.echo("inst", "instances/foo/trace_marker")
    tfs.sh("cat /proc/cmdline")
    assert "inst" in tfs.cat("instances/foo/snapshot") and "inst" not in tfs.cat("instances/foo/trace")
    assert "top" in tfs.cat("trace") and "Snapshot is freed" in tfs.cat("snapshot")
    tfs.sh(f"rmdir {T}/instances/foo")
    assert tfs.cat("enabled_functions") == ""
    assert not tfs.system.machine.kernel.check_consistency()


# --- func_event_triggers.tc ---------------------------------------------------------------------


def _reset_ftrace_filter(tfs):
    """ftracetest's reset_ftrace_filter: an empty filter, then `!` for each trigger listed, its
    count as listed (`count=N`) and ignored by the removal."""
    tfs.echo("", "set_ftrace_filter")
    for line in tfs.lines("set_ftrace_filter"):
        if line.startswith("#") or ":" not in line:
            continue
        fields = line.split(":")
        name, trigger = fields[0].split()[0], fields[1]
        if trigger in ("enable_event", "disable_event"):
            trig, limit = ":".join(fields[1:4]), fields[4]
        else:
            trig, limit = trigger, fields[2]
        if limit != "unlimited":
            trig += f":{limit}"
        tfs.echo(f"!{name}:{trig}", "set_ftrace_filter")
    assert tfs.cat("set_ftrace_filter") == f"{ALL_FUNCS}\n"


@pytest.mark.parametrize(
    "enable, check_disable, check_enable_star, check_disable_star",
    [("enable", "0", "1*", "0*"), ("disable", "1", "0*", "1*")],
)
def test_func_event_triggers(tfs, enable, check_disable, check_enable_star, check_disable_star):
    """func_event_triggers.tc: `schedule:enable_event:sched:sched_switch` holds the event in soft
    mode and each schedule flips it (the test undoes it between sleeps, five times); with `:3`
    only three flips happen. The same for disable_event, starting from an enabled event."""
    enable_file = "events/sched/sched_switch/enable"
    sleep = "sleep 100ms"

    def enabled():
        return tfs.cat(enable_file).strip()

    assert not [line for line in tfs.lines("trace") if not line.startswith("#")]
    tfs.echo(check_disable, enable_file)
    tfs.sh(sleep)
    assert enabled() == check_disable

    tfs.echo(f"schedule:{enable}_event:sched:sched_switch", "set_ftrace_filter")
    assert tfs.lines("set_ftrace_filter")[-1] == f"schedule:{enable}_event:sched:sched_switch:unlimited"
    for _ in range(5):
        tfs.sh(sleep)
        assert enabled() == check_enable_star
        tfs.echo(check_disable, enable_file)
    tfs.sh(sleep)
    assert enabled() == check_enable_star
    _reset_ftrace_filter(tfs)
    assert enabled() == check_disable  # soft mode ends with the trigger

    tfs.echo(check_disable, enable_file)
    tfs.sh(sleep)
    tfs.echo(f"schedule:{enable}_event:sched:sched_switch:3", "set_ftrace_filter")
    for n in (2, 1, 0):
        tfs.sh(sleep)
        assert enabled() == check_enable_star
        assert tfs.lines("set_ftrace_filter")[-1] == f"schedule:{enable}_event:sched:sched_switch:count={n}"
        tfs.echo(check_disable, enable_file)
    tfs.sh(sleep)
    assert enabled() == check_disable_star
    _reset_ftrace_filter(tfs)
    tfs.echo("0", enable_file)
    assert enabled() == "0"
    assert tfs.cat("enabled_functions") == ""
    assert not tfs.system.machine.kernel.check_consistency()


def test_func_event_trigger_records_the_event(tfs):
    """The soft-disabled event records nothing until the function runs; the listing names the
    event, `!` needs an existing event, and a bad event is refused."""
    tfs.echo("cmdline_proc_show:enable_event:sched:sched_switch", "set_ftrace_filter")
    assert tfs.cat("events/sched/sched_switch/enable") == "0*\n"
    tfs.sh("sleep 100ms")
    assert "sched_switch:" not in tfs.cat("trace")
    tfs.sh("cat /proc/cmdline; sleep 100ms")
    assert tfs.cat("events/sched/sched_switch/enable") == "1*\n"
    assert "sched_switch:" in tfs.cat("trace")
    for bad in (
        "schedule:enable_event:sched",
        "schedule:enable_event:sched:nosuch",
        "!schedule:enable_event:sched:sched_switch",
    ):
        assert tfs.echo(bad, "set_ftrace_filter", append=True, fail=True) == "echo: write error: Invalid argument\n", (
            bad
        )
    tfs.echo("!cmdline_proc_show:enable_event:sched:sched_switch", "set_ftrace_filter", append=True)
    assert tfs.cat("events/sched/sched_switch/enable") == "0\n"
    assert tfs.cat("set_ftrace_filter") == f"{ALL_FUNCS}\n"


def test_triggers_in_an_instance(tfs):
    """An instance's set_ftrace_filter has its own triggers, which switch its own tracing; they
    go with the instance."""
    tfs.sh(f"mkdir {T}/instances/foo")
    tfs.echo("cmdline_proc_show:traceoff", "instances/foo/set_ftrace_filter")
    assert tfs.cat("instances/foo/set_ftrace_filter") == f"{ALL_FUNCS}\ncmdline_proc_show:traceoff:unlimited\n"
    assert tfs.cat("set_ftrace_filter") == f"{ALL_FUNCS}\n"
    tfs.sh("cat /proc/cmdline")
    assert (tfs.cat("instances/foo/tracing_on"), tfs.tracing_on()) == ("0\n", "1")
    tfs.sh(f"rmdir {T}/instances/foo")
    assert tfs.cat("enabled_functions") == ""
    assert not tfs.system.machine.kernel.check_consistency()


def test_trigger_errors(tfs):
    """Triggers only in set_ftrace_filter, known commands only, and `!` needs a trigger to remove;
    a refused write changes nothing, whatever words came before the bad one."""
    tfs.echo("cmdline_proc_show", "set_ftrace_filter")
    before = tfs.cat("set_ftrace_filter")
    for text, name in (
        ("schedule:traceoff", "set_ftrace_notrace"),
        ("schedule:nosuchcommand", "set_ftrace_filter"),
        ("!schedule:traceoff", "set_ftrace_filter"),
        ("schedule:traceoff:x", "set_ftrace_filter"),
        ("nosuchfunction:traceoff", "set_ftrace_filter"),
        ("!nosuchfunction", "set_ftrace_filter"),
        ("meminfo_proc_show schedule:traceon nosuchfunction", "set_ftrace_filter"),
    ):
        assert tfs.echo(text, name, append=True, fail=True) == "echo: write error: Invalid argument\n", text
    assert tfs.cat("set_ftrace_filter") == before
    assert tfs.cat("set_ftrace_notrace") == "#### no functions disabled ####\n"
    assert tfs.tracing_on() == "1"
    assert set(TRIGGERS) == {"traceon", "traceoff", "stacktrace", "snapshot", "enable_event", "disable_event"}


def test_filter_by_index(tfs):
    """A number selects that line of available_filter_functions, counted from 1."""
    names = tfs.lines("available_filter_functions")
    tfs.echo("1 3", "set_ftrace_filter")
    assert tfs.lines("set_ftrace_filter") == [names[0], names[2]]
    tfs.echo("!3", "set_ftrace_filter", append=True)
    assert tfs.lines("set_ftrace_filter") == [names[0]]
    for bad in ("0", str(len(names) + 1)):
        assert tfs.echo(bad, "set_ftrace_filter", append=True, fail=True) == "echo: write error: Invalid argument\n"


def test_bang_removes_from_either_file(tfs):
    """`!GLOB` removes what it matches from set_ftrace_filter and set_ftrace_notrace, with `>`
    (from an empty list: a no-op) and with `>>`; removing everything leaves all functions."""
    tfs.echo("*_proc_show", "set_ftrace_filter")
    tfs.echo("!meminfo*", "set_ftrace_filter", append=True)
    assert "meminfo_proc_show" not in tfs.cat("set_ftrace_filter")
    assert "cmdline_proc_show\n" in tfs.cat("set_ftrace_filter")
    tfs.echo("!*", "set_ftrace_filter", append=True)
    assert tfs.cat("set_ftrace_filter") == f"{ALL_FUNCS}\n"
    tfs.echo("seq_* mutex_lock", "set_ftrace_notrace")
    tfs.echo("!seq_*", "set_ftrace_notrace", append=True)
    assert tfs.cat("set_ftrace_notrace") == "mutex_lock\n"
    tfs.echo("!mutex_lock", "set_ftrace_notrace")
    assert tfs.cat("set_ftrace_notrace") == "#### no functions disabled ####\n"


# --- func_mod_trace.tc -------------------------------------------------------------------------


def test_func_mod_trace(tfs):
    """func_mod_trace.tc, with the hello module for the trace-printk sample: a `:mod:` filter for a
    module not loaded is kept and listed as written, is applied when the module loads, and the
    filter is empty (no line, and still not "all functions") once the module is gone."""
    tfs.echo("non_exist_func:mod:non_exist_module", "set_ftrace_filter")
    assert tfs.cat("set_ftrace_filter") == "non_exist_func:mod:non_exist_module\n"
    tfs.echo("*:mod:hello", "set_ftrace_filter")
    assert tfs.cat("set_ftrace_filter") == "*:mod:hello\n"
    tfs.sh("insmod hello.ko")
    assert tfs.cat("set_ftrace_filter") == "hello_greet [hello]\nhello_exit [hello]\n"
    tfs.sh("rmmod hello")
    assert tfs.cat("set_ftrace_filter") == ""


def test_mod_filter_traces_only_the_module(tfs):
    """While a `:mod:` command waits for its module the function tracer traces nothing; once the
    module loads it traces the module's functions, and `!*:mod:` drops a waiting command."""
    tfs.echo("*:mod:livepatch_sample", "set_ftrace_filter")
    tfs.echo("*:mod:hello", "set_ftrace_filter", append=True)
    tfs.echo("function", "current_tracer")
    tfs.sh("cat /proc/cmdline; sleep 10ms")
    assert tfs.trace_entries() == []
    assert tfs.cat("enabled_functions") == ""
    tfs.echo("!*:mod:livepatch_sample", "set_ftrace_filter", append=True)
    assert tfs.cat("set_ftrace_filter") == "*:mod:hello\n"
    assert tfs.echo("!*:mod:livepatch_sample", "set_ftrace_filter", append=True, fail=True)
    tfs.sh("insmod hello.ko")
    # its init (freed after it ran, so named by address) and the function the init calls
    init, greet = (f for _, _, _, f in tfs.trace_entries())
    assert init.startswith("0xffffffffa") and greet == "hello_greet"
    tfs.echo("hello_greet:mod:hello", "set_ftrace_notrace")
    assert tfs.cat("set_ftrace_notrace") == "hello_greet [hello]\n"
    assert tfs.echo("nosuch:mod:hello", "set_ftrace_filter", append=True, fail=True)  # loaded: no match


def test_mod_patterns(tfs):
    """`:mod:` takes a glob of modules; `!glob` means vmlinux and the modules it does not match."""
    tfs.sh("insmod hello.ko")
    tfs.echo("*:mod:*", "set_ftrace_filter")
    assert tfs.cat("set_ftrace_filter") == "hello_greet [hello]\nhello_exit [hello]\n"
    tfs.echo("*_proc_show:mod:!hello", "set_ftrace_filter")
    assert "cmdline_proc_show\n" in tfs.cat("set_ftrace_filter") and "[" not in tfs.cat("set_ftrace_filter")
    tfs.echo("!*:mod:hello", "set_ftrace_filter", append=True)  # nothing of hello's there: a no-op
    tfs.echo("*greet:mod:hel*", "set_ftrace_filter", append=True)
    assert tfs.lines("set_ftrace_filter")[-1] == "hello_greet [hello]"


def test_triggers_on_a_module_function_leave_with_it(tfs):
    """A trigger works on a module's function and goes when the module does."""
    tfs.sh("insmod hello.ko")
    tfs.echo("hello_exit:traceoff", "set_ftrace_filter")
    assert tfs.cat("set_ftrace_filter") == f"{ALL_FUNCS}\nhello_exit [hello]:traceoff:unlimited\n"
    tfs.sh("rmmod hello")
    assert tfs.tracing_on() == "0"  # hello_exit ran on the way out
    assert tfs.cat("set_ftrace_filter") == f"{ALL_FUNCS}\n"
    assert tfs.cat("enabled_functions") == ""


# --- func-filter-pid.tc, func-filter-notrace-pid.tc ------------------------------------------


def _pid_case(tfs, pid_file, pid):
    """The scripts' do_test set-up, in their order (the pid before the tracer): the syscalls here
    for do_execve*/ *do_fork, which this kernel lacks; sysmon's reads (every 250 ms) are the other
    task's calls."""
    tfs.echo("0", "tracing_on")
    tfs.echo("sys_*", "set_ftrace_filter")
    tfs.echo(str(pid), pid_file)
    tfs.echo("function", "current_tracer")


def _counts(tfs, pid):
    entries = tfs.trace_entries()
    return sum(p == pid for _, p, _, _ in entries), sum(p != pid for _, p, _, _ in entries)


def test_func_filter_pid(tfs):
    """func-filter-pid.tc, without its function-fork half and its instance (both need
    trace_options and instances/): with the shell's pid in set_ftrace_pid only its calls are traced."""
    pid = tfs.pid_of("sh")
    assert tfs.cat("set_ftrace_pid") == "no pid\n"
    _pid_case(tfs, "set_ftrace_pid", pid)
    assert tfs.cat("set_ftrace_pid") == f"{pid}\n"
    tfs.echo("1", "tracing_on")
    tfs.sh("sleep 300ms; cat /proc/cmdline")
    count_pid, count_other = _counts(tfs, pid)
    assert count_pid > 0 and count_other == 0
    # without the pid filter, the other task's calls are there
    tfs.echo("", "set_ftrace_pid")
    tfs.echo("", "trace")
    tfs.sh("sleep 300ms")
    assert _counts(tfs, pid)[1] > 0
    tfs.echo("1 bogus", "set_ftrace_pid", append=True, fail=True)
    assert tfs.cat("set_ftrace_pid") == "no pid\n"


def test_func_filter_notrace_pid(tfs):
    """func-filter-notrace-pid.tc: the shell's pid in set_ftrace_notrace_pid hides its calls only;
    in both files, it wins and nothing is traced."""
    pid = tfs.pid_of("sh")
    _pid_case(tfs, "set_ftrace_notrace_pid", pid)
    assert tfs.cat("set_ftrace_notrace_pid") == f"{pid}\n"
    tfs.echo("1", "tracing_on")
    tfs.sh("sleep 300ms; cat /proc/cmdline")
    count_pid, count_other = _counts(tfs, pid)
    assert count_pid == 0 and count_other > 0
    tfs.echo("0", "tracing_on")
    tfs.echo("", "trace")
    tfs.echo(str(pid), "set_ftrace_pid")
    tfs.echo("1", "tracing_on")
    tfs.sh("sleep 300ms; cat /proc/cmdline")
    assert _counts(tfs, pid) == (0, 0)


def test_pid_filter_costs_nothing_once_cleared(tfs):
    """The function tracer's ops calls ftrace_pid_func only while a pid list is set; clearing both
    gives its handler back, on the site's trampoline as well."""
    m = tfs.system.machine
    ops = m.kernel.function_tracer.ops
    tfs.echo("cmdline_proc_show", "set_ftrace_filter")
    tfs.echo("function", "current_tracer")
    own = ops.struct.func
    tfs.echo("7 1", "set_ftrace_pid")
    tfs.echo("0", "set_ftrace_notrace_pid")
    assert tfs.cat("set_ftrace_pid") == "1\n7\n"
    assert ops.struct.func == m.image.addr("ftrace_pid_func") and ops.struct.saved_func == own
    # a tracer giving its ops another handler meanwhile gives it to saved_func
    pid = m.kernel.ftrace_pid
    pid.set_func(ops, m.image.addr("ftrace_empty_func"))
    assert ops.struct.func == m.image.addr("ftrace_pid_func")
    pid.set_func(ops, own)
    tfs.echo("", "set_ftrace_pid")
    tfs.echo("", "set_ftrace_notrace_pid")
    assert ops.struct.func == own == m.image.addr("function_trace_call")
    assert "(function_trace_call+0x0/" in tfs.cat("enabled_functions")


# --- func_cpumask.tc ---------------------------------------------------------------------------


def test_func_cpumask(tfs):
    """func_cpumask.tc: with tracing_cpumask 2 only CPU 1's calls are recorded."""
    assert tfs.cat("tracing_cpumask") == "3\n"
    tfs.echo("0", "tracing_on")
    tfs.echo("", "trace")
    tfs.echo("2", "tracing_cpumask")
    assert int(tfs.cat("tracing_cpumask"), 16) == 2
    tfs.echo("function", "current_tracer")
    tfs.echo("1", "tracing_on")
    tfs.sh("cat /proc/cmdline; sleep 20ms")
    tfs.echo("0", "tracing_on")
    cpus = {cpu for _, _, cpu, _ in tfs.trace_entries()}
    assert cpus == {1}
    assert tfs.echo("4", "tracing_cpumask", fail=True) == "echo: write error: Value too large for defined data type\n"
    assert tfs.echo("xyz", "tracing_cpumask", fail=True) == "echo: write error: Invalid argument\n"
    tfs.echo("3", "tracing_cpumask")
    tfs.echo("1", "tracing_on")
    tfs.sh("sleep 20ms")
    assert {cpu for _, _, cpu, _ in tfs.trace_entries()} == {0, 1}


# --- func_profile_stat.tc, func_profiler.tc ----------------------------------------------------

PROFILE_HEADER = "  Function                               Hit\n  --------                               ---\n"


def test_func_profile_stat(tfs):
    """func_profile_stat.tc: while profiling, trace_stat/function0 changes; once stopped, not."""
    assert tfs.cat("function_profile_enabled") == "0\n"
    assert tfs.cat("trace_stat/function0") == PROFILE_HEADER
    tfs.echo("1", "function_profile_enabled")
    before = tfs.cat("trace_stat/function0")
    tfs.sh("cat /proc/cmdline; sleep 1s")
    during = tfs.cat("trace_stat/function0")
    assert during != before
    tfs.echo("0", "function_profile_enabled")
    after = tfs.cat("trace_stat/function0")
    tfs.sh("cat /proc/cmdline; sleep 1s")
    assert tfs.cat("trace_stat/function0") == after
    rows = after.splitlines()[2:]
    assert after.startswith(PROFILE_HEADER) and rows
    hits = [int(row[32:]) for row in rows]
    assert hits == sorted(hits, reverse=True)
    for row in rows:
        assert re.fullmatch(r"  [\w.]{1,30} +\d+", row) and len(row) == 44, row


def test_profile_counts_each_call(tfs):
    """Each call is one hit, on the CPU that made it; the profiler follows set_ftrace_filter."""
    tfs.echo("*_proc_show", "set_ftrace_filter")
    tfs.echo("1", "function_profile_enabled")
    tfs.sh("cat /proc/cmdline; cat /proc/cmdline; cat /proc/version; cat /proc/cmdline")
    tfs.echo("0", "function_profile_enabled")
    cpu = task_by_comm(tfs.system.machine, "sh").running_on
    cpu = 1 if cpu is None else cpu
    assert tfs.cat(f"trace_stat/function{cpu}") == (
        PROFILE_HEADER + f"  {'cmdline_proc_show':<30}  {3:10d}\n  {'version_proc_show':<30}  {1:10d}\n"
    )
    assert tfs.cat(f"trace_stat/function{1 - cpu}") == PROFILE_HEADER


def test_func_profiler(tfs):
    """func_profiler.tc, with the function tracer: a filter written while the profiler runs still
    limits the function tracer after the profiler stops, and clearing it traces everything again."""
    tfs.echo("function", "current_tracer")
    tfs.echo("1", "function_profile_enabled")
    tfs.sh("sleep 100ms")
    tfs.echo("*schedule", "set_ftrace_filter")
    tfs.echo("", "trace")
    tfs.echo("0", "function_profile_enabled")
    tfs.sh("sleep 100ms")
    funcs = {f for _, _, _, f in tfs.trace_entries()}
    assert funcs and funcs <= {"schedule", "__schedule"}
    tfs.echo("", "set_ftrace_filter")
    tfs.echo("", "trace")
    tfs.sh("sleep 100ms")
    assert {f for _, _, _, f in tfs.trace_entries()} - {"schedule", "__schedule"}


# --- func_stack_tracer.tc ----------------------------------------------------------------------

STACK_HEADER = "        Depth    Size   Location    ({n} entries)\n        -----    ----   --------\n"
# %pS: the function and offset, or the bare address of a module's init freed since
STACK_ROW = re.compile(r"^ *(\d+)\) +(\d+) +(\d+)   ([^+ ]+)(\+0x[0-9a-f]+/0x[0-9a-f]+( \[\w+\])?)?$")


def _stack_rows(tfs):
    text = tfs.cat("stack_trace")
    rows = [STACK_ROW.match(line) for line in text.splitlines()[2:]]
    assert all(rows), text
    assert text.startswith(STACK_HEADER.format(n=len(rows)))
    return [(int(r[1]), int(r[2]), int(r[3]), r[4]) for r in rows if r]


def test_func_stack_tracer(tfs):
    """func_stack_tracer.tc: the deepest stack recorded while the tracer runs, then with
    stack_trace_filter '*lock*', a chain whose first entry is a lock function."""
    disabled = tfs.cat("stack_trace")
    assert disabled == STACK_HEADER.format(n=0) + (
        "#\n#  Stack tracer disabled\n#\n"
        "# To enable the stack tracer, either add 'stacktrace' to the\n# kernel command line\n"
        "# or 'echo 1 > /proc/sys/kernel/stack_tracer_enabled'\n#\n"
    )
    tfs.echo("", "stack_trace_filter")
    tfs.echo("0", "stack_max_size")
    tfs.sh("echo 1 > /proc/sys/kernel/stack_tracer_enabled")
    tfs.sh("cat /proc/cmdline; sleep 20ms")
    tfs.sh("echo 0 > /proc/sys/kernel/stack_tracer_enabled")
    rows = _stack_rows(tfs)
    assert rows and int(tfs.cat("stack_max_size")) == rows[0][1]
    for i, (n, depth, size, _) in enumerate(rows):
        below = rows[i + 1][1] if i + 1 < len(rows) else 0
        assert n == i and size == depth - below

    tfs.echo("*lock*", "stack_trace_filter")
    lines = tfs.lines("stack_trace_filter")
    assert lines and all("lock" in line for line in lines)
    tfs.echo("0", "stack_max_size")
    tfs.sh("echo 1 > /proc/sys/kernel/stack_tracer_enabled")
    tfs.sh("cat /proc/cmdline")
    tfs.sh("echo 0 > /proc/sys/kernel/stack_tracer_enabled")
    rows = _stack_rows(tfs)
    assert "lock" in rows[0][3]
    # the sites it used are free again
    assert tfs.cat("enabled_functions") == ""
    assert tfs.system.vfs.read("/proc/sys/kernel/stack_tracer_enabled") == "0\n"


def test_stack_tracer_on_a_module_function(tfs):
    """The deepest chain through a module's function names the module as %pS does; the stack
    tracer's filter is outside any trace array, so `:mod:` and triggers there get ENODEV."""
    for word in ("*:mod:livepatch_sample", "schedule:traceoff"):
        assert tfs.echo(word, "stack_trace_filter", fail=True) == "echo: write error: No such device\n"
    tfs.sh("insmod livepatch-sample.ko; wait /sys/kernel/livepatch/livepatch_sample/transition 0")
    tfs.echo("livepatch_cmdline_proc_show", "stack_trace_filter")
    assert tfs.cat("stack_trace_filter") == "livepatch_cmdline_proc_show [livepatch_sample]\n"
    tfs.sh("echo 1 > /proc/sys/kernel/stack_tracer_enabled")
    assert tfs.sh("cat /proc/cmdline") == "this has been live patched\n"
    rows = _stack_rows(tfs)
    assert rows[0][3] == "livepatch_cmdline_proc_show"
    assert tfs.cat("stack_trace").splitlines()[2].endswith(" [livepatch_sample]")


def test_filter_files_after_an_ftrace_bug():
    """With ftrace dead (an ftrace bug at boot) the filter files refuse every write with ENODEV,
    as opening them fails in Linux."""
    from klpemu.system import System

    system = System()
    m = system.machine
    m.mem.write(m.image.addr("cmdline_proc_show"), b"\x90" * 5)
    system.boot()
    assert m.kernel.ftrace.disabled
    for name, text in (
        ("set_ftrace_filter", "schedule"),
        ("set_ftrace_notrace", "schedule"),
        ("set_ftrace_filter", "schedule:traceoff"),
    ):
        status, _, err = shell_run(system, f"echo '{text}' > {T}/{name}")
        assert (status, err) == (1, "echo: write error: No such device\n")
