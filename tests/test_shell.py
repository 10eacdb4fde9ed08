"""The shell as a user drives it: golden transcripts of commands and their errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from machine_util import booted_system, shell_run

from klpemu.shell import split_commands


@pytest.fixture(scope="module")
def system():
    return booted_system()


run = shell_run


def test_split_commands_respects_quotes_and_comments():
    assert split_commands("echo 'a;b'; ps\n# note\ncat /proc/cmdline") == ["echo 'a;b'", "ps", "cat /proc/cmdline"]


def test_ps_lists_idle_tasks_kthreads_and_user_tasks(system):
    status, out, _ = run(system, "ps")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "STATE", "CPU", "PATCH", "COMM"]
    rows = [line.split() for line in lines[1:]]
    comms = [r[-1] for r in rows]
    assert comms[:2] == ["[swapper/0]", "[swapper/1]"]
    assert {"init", "sysmon", "sh", "[kthreadd]", "[khungtaskd]", "[krecurse]", "[kworker/0:1]"} <= set(comms)
    by_comm = {r[-1]: r for r in rows}
    assert by_comm["init"][0] == "1" and by_comm["[kthreadd]"][0] == "2"
    assert all(r[3] == "-1" for r in rows)  # no transition: every patch_state is -1
    assert by_comm["[khungtaskd]"][1] == "S"


def test_cat_proc_cmdline_runs_in_the_guest(system):
    status, out, _ = run(system, "cat /proc/cmdline")
    assert (status, out) == (0, system.machine.config.cmdline + "\n")


def test_cat_meminfo_has_linux_layout(system):
    _, out, _ = run(system, "cat /proc/meminfo")
    assert out.splitlines()[0] == "MemTotal:          65536 kB"
    assert all(re.fullmatch(r"[A-Za-z()]+:\s+\d+ kB", line) for line in out.splitlines())


def test_sleeping_kthread_stack_in_proc_format(system):
    pid = next(p for p in range(1, 20) if run(system, f"cat /proc/{p}/comm")[1] == "khungtaskd\n")
    status, out, _ = run(system, f"sleep 10ms; cat /proc/{pid}/stack")
    lines = out.splitlines()
    assert status == 0
    assert lines[0].startswith("[<0>] __schedule+0x")
    assert [l.split()[1].split("+")[0] for l in lines] == [
        "__schedule",
        "schedule",
        "schedule_timeout",
        "watchdog",
        "ret_from_fork",
        "ret_from_fork_asm",
    ]
    assert all(re.fullmatch(r"\[<0>\] \w+\+0x[0-9a-f]+/0x[0-9a-f]+", l) for l in lines)


def test_ls_l_shows_linux_modes(system):
    _, out, _ = run(system, "ls -l /proc")
    modes = {line.split()[-1]: line.split()[0] for line in out.splitlines()}
    assert modes["cmdline"] == "-r--r--r--"
    assert modes["sysrq-trigger"] == "--w-------"
    assert modes["1"] == "dr-xr-xr-x"
    _, out, _ = run(system, "ls -l /proc/1")
    modes = {line.split()[-1]: line.split()[0] for line in out.splitlines()}
    assert modes == {"comm": "-rw-r--r--", "patch_state": "-r--r--r--", "stack": "-r--------", "status": "-r--r--r--"}
    _, out, _ = run(system, "ls /sys/kernel")
    assert out.split() == ["debug", "livepatch", "tracing"]


def test_patch_state_file(system):
    assert run(system, "cat /proc/1/patch_state")[1] == "-1\n"


@pytest.mark.parametrize(
    "cmd, message",
    [
        ("bogus", "klpemu: bogus: command not found"),
        ("cat /proc/nope", "cat: /proc/nope: No such file or directory"),
        ("ls /nope", "ls: cannot access '/nope': No such file or directory"),
        ("cat /proc", "cat: /proc: Is a directory"),
        ("cat /proc/sysrq-trigger", "cat: /proc/sysrq-trigger: Permission denied"),
        ("echo x > /proc/cmdline", "klpemu: /proc/cmdline: Permission denied"),
        ("echo NOPE > /sys/kernel/debug/provoke-crash/DIRECT", "echo: write error: Invalid argument"),
        ("sleep forever", "sleep: invalid time interval 'forever'"),
        ("step x", "step: 'x' is not a number"),
        ("disas no_such_function", "disas: symbol 'no_such_function' not found"),
    ],
)
def test_mistakes_get_clear_messages(system, cmd, message):
    status, _, err = run(system, cmd)
    assert status == 1
    assert err.splitlines()[0] == message


def test_echo_to_stdout(system):
    assert run(system, "echo hello world")[1] == "hello world\n"


def test_disas_shows_the_fentry_site_as_a_nop(system):
    # Boot turned the `call __fentry__` at every site into a NOP5.
    _, out, _ = run(system, "disas cmdline_proc_show")
    first = out.splitlines()[1]
    assert "<+0>:" in first and "0f 1f 44 00 00" in first and "nopl" in first


def test_step_prints_each_instruction_with_changed_registers(system):
    status, out, _ = run(system, "step 5 --cpu 1")
    lines = [l for l in out.splitlines() if not l.startswith("cpu1  --")]
    assert status == 0 and len(lines) == 5
    assert all(l.startswith("cpu1 ffffffff") for l in lines)
    assert any("rsp=0x" in l for l in lines)


def test_cli_shell_dash_c_and_script(tmp_path):
    script = tmp_path / "s.klp"
    script.write_text("echo one\n# comment\necho two\n")
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "shell", "--script", str(script)], capture_output=True, text=True, check=True
    )
    assert res.stdout == "one\ntwo\n"
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "shell", "-c", "cat /proc/cmdline; dmesg"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.splitlines()[0] == "console=ttyS0 root=/dev/vda ro quiet"
    assert any(l.endswith("Run /sbin/init as init process") for l in res.stdout.splitlines())
