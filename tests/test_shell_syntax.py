"""The shell's grammar as a user meets it: pipes into the built-in filters, quoting, what it
refuses (with sh's status 2), help texts and the command line's own help and version."""

from __future__ import annotations

import subprocess
import sys

import pytest
from machine_util import booted_system, shell_run

from klpemu import __version__
from klpemu.cli import main
from klpemu.shell import COMMANDS
from klpemu.shell.syntax import SyntaxProblem, parse_pipeline, tokenize


@pytest.fixture(scope="module")
def system():
    return booted_system()


run = shell_run


def test_quotes_and_backslashes_make_operators_plain_text():
    assert tokenize("echo 'a|b' \"c && d\" e\\|f > /dev/kmsg") == [
        ("echo", False),
        ("a|b", False),
        ("c && d", False),
        ("e|f", False),
        (">", True),
        ("/dev/kmsg", False),
    ]
    stages = parse_pipeline("dmesg | grep -i 'live patch' | tail -n 2")
    assert [s.argv for s in stages] == [["dmesg"], ["grep", "-i", "live patch"], ["tail", "-n", "2"]]


def test_quoted_pipe_is_written_as_text(system):
    status, out, err = run(system, "echo 'a|b' > /dev/kmsg; dmesg | tail -n 1")
    assert (status, err) == (0, "")
    assert out.endswith("] a|b\n")


def test_redirection_forms_and_quoted_operators_in_echo(system):
    assert run(system, "echo one >/dev/kmsg; echo two>>/dev/kmsg; echo '>' x \\> y > /dev/kmsg") == (0, "", "")
    _, out, _ = run(system, "dmesg | tail -n 3")
    assert [line.split("] ", 1)[1] for line in out.splitlines()] == ["one", "two", "> x > y"]
    assert run(system, "echo '>' 'a|b'") == (0, "> a|b\n", "")
    assert run(system, "echo hi | wc -l") == (0, "1\n", "")


def test_pipes_chain_grep_head_tail_and_wc(system):
    _, dmesg, _ = run(system, "dmesg")
    lines = dmesg.splitlines(keepends=True)
    cpu_lines = [line for line in lines if "CPU" in line]
    assert len(cpu_lines) >= 2
    assert run(system, "dmesg | grep CPU | tail -n 2") == (0, "".join(cpu_lines[-2:]), "")
    assert run(system, "dmesg | grep CPU | head -n 1") == (0, cpu_lines[0], "")
    assert run(system, "dmesg | grep -c CPU") == (0, f"{len(cpu_lines)}\n", "")
    assert run(system, "dmesg | grep -i cpu | wc -l") == (0, f"{sum('cpu' in l.lower() for l in lines)}\n", "")
    assert run(system, "dmesg | grep -v CPU | wc -l") == (0, f"{len(lines) - len(cpu_lines)}\n", "")
    assert run(system, "dmesg | wc -l") == (0, f"{len(lines)}\n", "")
    assert run(system, "dmesg | head -3") == (0, "".join(lines[:3]), "")


def test_grep_without_a_match_fails_as_grep_does(system):
    assert run(system, "cat /proc/cmdline | grep nosuchword") == (1, "", "")
    assert run(system, "cat /proc/cmdline | grep -c nosuchword") == (1, "0\n", "")


@pytest.mark.parametrize(
    "line, status, message",
    [
        ("ps aux", 1, "ps: unsupported argument 'aux' (this command takes none)\nusage: ps\n"),
        ("dmesg -c", 1, "dmesg: unsupported argument '-c' (this command takes none)\nusage: dmesg\n"),
        ("cat /proc/version > version.txt", 2, "klpemu: cat: output redirection is only supported for echo\n"),
        ("ps && dmesg", 2, "klpemu: '&&': command lists are not supported (use ';')\n"),
        ("ps || dmesg", 2, "klpemu: '||': command lists are not supported (use ';')\n"),
        ("sleep 1 &", 2, "klpemu: '&': background jobs are not supported\n"),
        ("echo `ps`", 2, "klpemu: `: command substitution is not supported\n"),
        ('echo "$(ps)"', 2, "klpemu: $(: command substitution is not supported\n"),
        ("cat < /proc/version", 2, "klpemu: '<': input redirection is not supported\n"),
        ("ps | sort", 2, "klpemu: sort: cannot read a pipe (the filters are grep, head, tail, wc)\n"),
        ("grep init", 2, "klpemu: grep: only reads a pipe (e.g. dmesg | grep ...)\n"),
        ("ps |", 2, "klpemu: syntax error: a pipe with no command after it\n"),
        ("| ps", 2, "klpemu: syntax error near unexpected token `|'\n"),
        ("echo >", 2, "klpemu: syntax error near unexpected token `newline'\n"),
        ("echo 'open", 2, "klpemu: syntax error: unterminated quoted string\n"),
        ("ps | wc -c", 1, "wc: only wc -l is supported\nusage: CMD | wc -l\n"),
        ("ps | head -n x", 1, "head: invalid number of lines: 'x'\nusage: CMD | head [-n N]\n"),
        ("ps | grep -x y", 1, "grep: invalid option -- 'x'\nusage: CMD | grep [-v] [-i] [-c] PATTERN\n"),
    ],
)
def test_what_the_shell_does_not_do_is_refused(system, line, status, message):
    assert run(system, line) == (status, "", message)


def test_a_refused_line_runs_nothing(system):
    _, before, _ = run(system, "dmesg | wc -l")
    assert run(system, "echo x > /dev/kmsg && echo y > /dev/kmsg")[0] == 2
    assert run(system, "dmesg | wc -l")[1] == before


def test_help_lists_every_command_and_describes_one(system):
    status, out, _ = run(system, "help")
    assert status == 0
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == sorted(COMMANDS)
    assert "  reboot      a fresh machine with the same options" in out.splitlines()
    status, out, _ = run(system, "help sleep")
    assert status == 0
    assert out == (
        "usage: sleep DURATION (e.g. 10ms, 2s)\n\nrun the machine for a while of emulated time\n\n"
        "Run the machine for DURATION of emulated time (s by default; ns, us, ms, s).\n\n"
        "examples:\n  sleep 10ms\n  sleep 2s\n"
    )
    assert run(system, "sleep --help") == (0, out, "")
    assert run(system, "help grep")[1].startswith("usage: CMD | grep [-v] [-i] [-c] PATTERN\n")
    assert run(system, "help nosuch") == (1, "", "help: no help topics match 'nosuch'\n")


def test_every_command_has_a_summary_and_examples(system):
    from klpemu.shell.help import EXAMPLES, SUMMARY

    assert set(SUMMARY) == set(COMMANDS) == set(EXAMPLES)


def test_version_and_the_bare_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"klpemu {__version__}\n"
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: klpemu [-h] [--version] COMMAND ...")
    for name in ("boot", "shell", "demo", "kpatch", "bench", "build-module"):
        assert f"    {name}" in out


def test_kpatch_help_lists_its_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["kpatch", "--help"])
    out = capsys.readouterr().out
    verbs = [line.split()[0] for line in out.split("commands:\n")[1].splitlines()]
    assert verbs == ["load", "unload", "unload", "info", "list", "signal"]


def test_syntax_problem_carries_sh_status():
    with pytest.raises(SyntaxProblem) as e:
        parse_pipeline("a && b")
    assert e.value.status == 2


def test_a_closed_stdout_ends_quietly(tmp_path):
    import os

    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written, as after `| head -n 1`
    try:
        res = subprocess.run(
            [sys.executable, "-m", "klpemu", "shell", "-c", "ps; dmesg"], stdout=w, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(w)
    assert (res.returncode, res.stderr) == (141, "")
