"""The shell's debugger: a breakpoint stops a running command where it is hit, the commands at
the stop (stepi through a livepatch redirection, bt, x, print, finish, continue) see the frozen
machine, and the command then goes on to its end."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from machine_util import booted_system, shell_run

pytest.importorskip("drgn")

SAMPLE = "insmod livepatch-sample; wait /sys/kernel/livepatch/livepatch_sample/transition 0"


@pytest.fixture
def patched():
    system = booted_system()
    status, _, err = shell_run(system, SAMPLE)
    assert status == 0, err
    return system


def roles(out: str) -> list[str]:
    """The ftrace role of each stop and step, in order (the `<role>` its report ends with)."""
    return [line.rsplit("<", 1)[1][:-1] for line in out.splitlines() if " at ffff" in line and line.endswith(">")]


def test_a_breakpoint_stops_cat_in_shs_call_and_stepi_follows_the_redirection(patched):
    image = patched.machine.image
    site = image.addr("cmdline_proc_show")
    status, out, err = shell_run(patched, "break cmdline_proc_show; cat /proc/cmdline; stepi 100; continue")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Breakpoint 1 at {site:#x}: cmdline_proc_show+0x0/0x2e"
    stop = next(line for line in lines if line.startswith("Breakpoint 1, "))
    assert stop.startswith("Breakpoint 1, cpu") and "[sh:7] breakpoint at " in stop
    assert stop.endswith("<site>") and "ftrace_trampoline [livepatch:cmdline_proc_show]" in stop
    # the site, the livepatch's trampoline, klp_ftrace_handler, back through the trampoline,
    # then the new function: in this order
    order = [
        "site",
        "trampoline",
        "handler: klp_ftrace_handler",
        "trampoline",
        "new function: livepatch_cmdline_proc_show",
    ]
    path = [role for i, role in enumerate(roles(out)) if i == 0 or role != roles(out)[i - 1]]
    assert path[: len(order)] == order, path
    assert lines[-1] == "this has been live patched"


def test_bt_x_print_and_finish_at_a_stop(patched):
    image = patched.machine.image
    status, out, err = shell_run(
        patched,
        "break cmdline_proc_show; cat /proc/cmdline; bt; x/2i $rip; print/x $rip; finish; continue; info break",
    )
    assert (status, err) == (0, ""), err
    lines = out.splitlines()
    bt_end = next(i for i, line in enumerate(lines) if line.startswith("sh:7 on cpu"))
    frames = [line.split()[2] for line in lines if line.startswith("#")]
    assert frames[0].startswith("cmdline_proc_show+0x0/") and frames[1].startswith("seq_read_iter+")
    assert lines[bt_end].endswith("stack reliable")
    site = image.addr("cmdline_proc_show")
    assert lines[bt_end + 1] == (
        f"   {site:#x} <cmdline_proc_show+0x0/0x2e>:\tcallq   "
        f"{patched.kernel.ftrace.site_target(site):#x} <ftrace_trampoline [livepatch:cmdline_proc_show]>"
    )
    assert lines[bt_end + 3] == f"$1 = (unsigned long){site:#x}"
    assert lines[bt_end + 4] == "Run till exit from cmdline_proc_show+0x0/0x2e"
    assert lines[bt_end + 5].split(" at ", 1)[1].split()[1].startswith("seq_read_iter+")
    assert lines[bt_end + 6] == "Value returned: rax = 0x0"
    assert lines[bt_end + 7] == "this has been live patched"
    assert "1       breakpoint     keep 1    " in out


def test_a_breakpoint_in_klp_ftrace_handler_during_a_transition_shows_the_tasks_patch_state():
    system = booted_system()
    status, _, err = shell_run(system, "insmod test_klp_callbacks_busy block_transition=Y; insmod livepatch-sample")
    assert status == 0, err
    assert system.kernel.livepatch.transition.patch is not None  # kept open by the busy module
    status, out, err = shell_run(
        system,
        "tbreak klp_ftrace_handler; cat /proc/cmdline; print $current->comm; print $current->patch_state; "
        "print klp_transition_patch->enabled; continue; info break",
    )
    assert (status, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[2].startswith("Temporary breakpoint 1, cpu") and "<handler: klp_ftrace_handler>" in lines[2]
    assert "[sh:7]" in lines[2]
    assert lines[3] == '$1 = (char [16])"sh"'
    assert lines[4] in ("$2 = (int)0", "$2 = (int)1")  # sh may or may not have switched yet
    assert lines[5] == "$3 = (bool)1"
    assert lines[-1] == "No breakpoints or watchpoints."


def test_break_refuses_what_it_cannot_find_and_commands_need_a_stop(patched):
    status, out, err = shell_run(patched, "break nosuch; break get_idle_time; stepi; continue; delete 9")
    assert err.splitlines() == [
        'break: Function "nosuch" not defined.',
        "break: unresolvable ambiguity for symbol 'get_idle_time': 2 matches",
        "stepi: stepi: the machine is not stopped (set a breakpoint, then run a command)",
        "continue: continue: the machine is not stopped (set a breakpoint, then run a command)",
        "delete: No breakpoint number 9.",
    ]
    assert status == 1


def test_a_breakpoint_for_another_task_lets_sh_through(patched):
    status, out, err = shell_run(patched, "break cmdline_proc_show --task 1; cat /proc/cmdline")
    assert (status, err) == (0, "")
    assert out.splitlines()[-1] == "this has been live patched"
    assert "Breakpoint 1, " not in out


def test_end_of_input_at_a_stop_deletes_the_breakpoints_and_runs_on(patched):
    status, out, err = shell_run(patched, "break cmdline_proc_show; cat /proc/cmdline")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[-2] == "end of input at a stop: breakpoints deleted, the run goes on"
    assert lines[-1] == "this has been live patched"


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_gdbserver_in_the_shell_serves_gdb_then_the_shell_goes_on(tmp_path):
    from klpemu.machine.machine import shipped_image

    shell = subprocess.Popen(
        [sys.executable, "-m", "klpemu", "shell", "-c", f"{SAMPLE}; gdb-symbols; gdbserver 0; cat /proc/cmdline"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert shell.stdout is not None
        lines = []
        while not (line := shell.stdout.readline()).startswith("Listening on port"):
            assert line, shell.stderr.read() if shell.stderr else ""
            lines.append(line)
        port = int(line.split()[-1])
        symbols = next(line for line in lines if line.startswith("add-symbol-file"))
        assert "livepatch-sample.ko 0x" in symbols and " -s .data 0x" in symbols
        gdb = subprocess.run(
            ["gdb", "-nx", "-batch", str(shipped_image())]
            + ["-ex", f"target remote 127.0.0.1:{port}", "-ex", "info threads", "-ex", "kill"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Thread 1.2" in gdb.stdout or "Thread 2" in gdb.stdout, gdb.stdout + gdb.stderr
        out, err = shell.communicate(timeout=60)
    finally:
        shell.kill()
    assert shell.returncode == 0, err
    assert out.splitlines()[-1] == "this has been live patched"


def test_watch_stops_where_the_guest_writes_the_object(patched):
    status, out, err = shell_run(
        patched, "watch pcpu_hot[1].current_task; cat /proc/version; bt; delete; continue; watch task_table[0]"
    )
    lines = out.splitlines()
    types = patched.machine.types
    addr = patched.machine.var_addr("pcpu_hot") + types.sizeof("pcpu_hot") + types.offsetof("pcpu_hot", "current_task")
    assert lines[0] == f"Watchpoint 1: pcpu_hot[1].current_task ({addr:#x}, 8 bytes)"
    stop = next(line for line in lines if line.startswith("Watchpoint 1, "))
    assert stop.startswith("Watchpoint 1, cpu1 ") and "watchpoint (write 0x" in stop
    assert " __switch_to+0x" in stop  # the context switch writes the CPU's current task
    assert any(line.split()[2].startswith("__schedule+") for line in lines if line.startswith("#"))
    assert lines[-1].startswith("klpemu kernel version 1.0")
    size = types.sizeof("task_struct")
    assert err == f"watch: 'task_table[0]' is {size} bytes: a watchpoint covers 1, 2, 4 or 8\n"
    assert status == 1
