"""Lab 1 (fentry sites): plausible wrong answers fail with a message that says which."""

from __future__ import annotations

from lab_util import failures, set_answer, shell, solved


def test_swapped_bytes_and_a_function_for_the_trampoline(tmp_path):
    ws = solved(tmp_path, "fentry", 4)
    ans = dict(line.split(": ", 1) for line in (ws.path / "answer.txt").read_text().splitlines())
    set_answer(ws, before=ans["after"], after=ans["before"], trampoline="0x" + ans["site"][2:])
    text = failures(ws)
    assert "bytes while traced, not before" in text
    assert "untraced bytes" in text
    assert "a function, not what the site calls" in text
    assert not any(line.startswith("site:") for line in text.splitlines())  # the site itself was right


def test_answers_right_but_tracer_turned_off_again(tmp_path):
    ws = solved(tmp_path, "fentry", 6)
    shell(ws, "echo nop > /sys/kernel/tracing/current_tracer")
    text = failures(ws)
    assert "function tracer is not on" in text and "still a NOP" in text


def test_tracing_every_function_and_a_wrong_site(tmp_path):
    ws = solved(tmp_path, "fentry", 8)
    f = ws.scenario.variant["function"]
    shell(ws, "echo > /sys/kernel/tracing/set_ftrace_filter")
    set_answer(ws, site="0xffffffff81000000")
    text = failures(ws)
    assert f"not only {f}" in text
    assert "not the address of" in text
