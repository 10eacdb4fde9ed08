"""Lab 2 (the function tracer): plausible wrong states fail with a message that says which."""

from __future__ import annotations

from lab_util import failures, set_answer, shell, solved, workspace

from klpemu.lab import get_lab

T = "/sys/kernel/tracing"


def test_one_function_instead_of_the_glob_and_a_wrong_count(tmp_path):
    ws = workspace(tmp_path, "tracer", 2)
    g, n = ws.scenario.variant["glob"], ws.scenario.variant["notrace"]
    cmds = get_lab("tracer").solution_commands(ws.scenario)
    shell(ws, f"echo {n} > {T}/set_ftrace_filter; " + "; ".join(cmds[1:]))
    set_answer(ws, count="1")
    text = failures(ws)
    assert f"not what the glob {g} selects" in text
    assert "count: 1 is not" in text


def test_notrace_set_after_the_trace_already_shows_it(tmp_path):
    seed = next(s for s in range(20) if get_lab("tracer").scenario(s).variant["notrace"] == "seq_puts")
    ws = workspace(tmp_path, "tracer", seed)
    # cmdline_proc_show calls seq_puts: traced before it goes on the notrace list
    shell(ws, f"echo 'seq_*' > {T}/set_ftrace_filter; echo function > {T}/current_tracer; cat /proc/cmdline")
    shell(ws, f"echo seq_puts > {T}/set_ftrace_notrace")
    set_answer(ws, count="4")
    assert "trace shows calls of seq_puts" in failures(ws)


def test_notrace_cleared(tmp_path):
    ws = solved(tmp_path, "tracer", 5)
    shell(ws, f"echo > {T}/set_ftrace_notrace")
    assert "set_ftrace_notrace holds nothing" in failures(ws)


def test_tracer_left_off(tmp_path):
    ws = solved(tmp_path, "tracer", 4)
    shell(ws, f"echo nop > {T}/current_tracer")
    assert "current_tracer is not `function`" in failures(ws)
