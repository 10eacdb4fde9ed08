"""`klpemu demo`: the livepatch sample from insmod to rmmod, and a transition a task holds up."""

from __future__ import annotations

import io

import pytest

from klpemu import cli
from klpemu.demo import shorten_trace
from klpemu.machine.machine import DEFAULT_CMDLINE

PATCHED = "this has been live patched"


@pytest.fixture(scope="module")
def demo() -> str:
    out = io.StringIO()
    from klpemu.demo import run_demo

    assert run_demo(out=out) == 0
    return out.getvalue()


def outputs(text: str, cmd: str) -> list[str]:
    """What each run of `# cmd` printed, in order."""
    found = []
    for block in text.split(f"\n# {cmd}\n")[1:]:
        lines = []
        for line in block.splitlines():
            if line.startswith(("# ", "### ", "## ")) or (not line and lines and lines[-1] == ""):
                break
            lines.append(line)
        found.append("\n".join(lines).strip("\n"))
    return found


def test_part1_patched_text_then_the_original_again(demo):
    part1 = demo.split("\n## Part 2")[0]
    assert outputs(part1, "cat /proc/cmdline") == [DEFAULT_CMDLINE, PATCHED, DEFAULT_CMDLINE]
    assert part1.index("# insmod livepatch-sample.ko") < part1.index(PATCHED)
    assert part1.index("# wait --gone /sys/kernel/livepatch/livepatch_sample") < part1.rindex(DEFAULT_CMDLINE)
    assert outputs(part1, "cat /sys/kernel/livepatch/livepatch_sample/transition") == ["1", "0"]
    assert "livepatch_sample [enabled]" in outputs(part1, "kpatch list")[0]
    assert outputs(part1, "lsmod") == ["Module                  Size  Used by"]


def test_the_stepped_call_reaches_the_new_function_through_klp_ftrace_handler(demo):
    trace = demo[demo.index("# trace-call cmdline_proc_show") : demo.index("### Every reader now gets")]
    parts = [line[3:].split(" -- ")[0] for line in trace.splitlines() if line.startswith("== ")]
    assert parts == [
        "site",
        "trampoline: save regs",
        "trampoline: call handler",
        "handler: klp_ftrace_handler",
        "trampoline: restore regs",
        "trampoline: return",
        "new function: livepatch_cmdline_proc_show",
        "return",
    ]
    assert "callq" in trace.split("[site]")[1].splitlines()[0]
    assert "more instructions ..." in trace  # the new function's body, shortened
    assert trace.rstrip().endswith(PATCHED)


def test_the_log_lines_are_linuxs(demo):
    part1, part2 = demo.split("\n## Part 2")
    log1 = part1[part1.index("### The kernel log, from the insmod on:") :].splitlines()[1:]
    assert [line.split("] ", 1)[1] for line in log1 if line] == [
        "livepatch_sample: tainting kernel with TAINT_LIVEPATCH",
        "livepatch: enabling patch 'livepatch_sample'",
        "livepatch: 'livepatch_sample': initializing patching transition",
        "livepatch: 'livepatch_sample': starting patching transition",
        "livepatch: 'livepatch_sample': completing patching transition",
        "livepatch: 'livepatch_sample': patching complete",
        "livepatch: 'livepatch_sample': initializing unpatching transition",
        "livepatch: 'livepatch_sample': starting unpatching transition",
        "livepatch: 'livepatch_sample': completing unpatching transition",
        "livepatch: 'livepatch_sample': unpatching complete",
    ]
    assert "livepatch: 'livepatch_sample': reversing transition from patching to unpatching" in part2
    assert demo.rstrip().endswith("livepatch: 'livepatch_sample': unpatching complete")


def test_part2_shows_the_task_in_the_way_then_the_reversal(demo):
    part2 = demo.split("\n## Part 2")[1]
    assert "krecurse.depth=120" in part2
    ps_patching, ps_reversed = outputs(part2, "ps")
    states = {line.split()[-1]: line.split()[3] for line in ps_patching.splitlines()[1:]}
    assert states["[krecurse]"] == "0" and "1" in states.values()
    assert all(line.split()[3] == "-1" for line in ps_reversed.splitlines()[1:])  # completed
    assert "livepatch: 'livepatch_sample': reversing transition from patching to unpatching" in part2
    assert "livepatch: 'livepatch_sample': unpatching complete" in part2
    first, later = outputs(part2, "blocking")[:2]
    assert first.startswith("'livepatch_sample': patching transition, attempt 2\n")
    assert "[krecurse]       unreliable stack: more than 100 frames" in first
    # Three seconds on, whoever was running has switched; krecurse alone is left.
    assert later.splitlines()[0] == "'livepatch_sample': patching transition, attempt 5"
    assert later.splitlines()[1:] == [line for line in first.splitlines() if "[krecurse]" in line]
    pid = next(line.split()[0] for line in ps_patching.splitlines() if line.endswith("[krecurse]"))
    assert outputs(part2, f"cat /proc/{pid}/patch_state") == ["0"]


def test_the_demo_is_deterministic_and_the_cli_runs_it(demo, capsys):
    assert cli.main(["demo"]) == 0
    assert "klpemu demo" in (again := capsys.readouterr().out)
    assert again == demo


def test_shorten_trace_keeps_headers_and_the_ends_of_long_parts():
    body = [f"[new function: f] insn {i}" for i in range(100)]
    text = "\n".join(["== site -- x", "[site] call", "", "== new function: f -- y", *body, "", "summary"]) + "\n"
    short = shorten_trace(text).splitlines()
    assert short[:4] == ["== site -- x", "[site] call", "", "== new function: f -- y"]
    assert short[4:12] == body[:8]
    assert short[12] == "    ... 89 more instructions ..."
    assert short[13:16] == body[-3:]
    assert short[16:] == ["", "summary"]
