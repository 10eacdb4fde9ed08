"""drgn's console on the live machine: drgn's own globals and list helpers, reading guest memory."""

from __future__ import annotations

import io
import sys

import pytest
from machine_util import booted_system

pytest.importorskip("drgn")

from klpemu.debug.drgn_console import run_drgn_console  # noqa: E402
from klpemu.kernel.tasks import all_tasks  # noqa: E402


def test_the_console_walks_the_task_list_with_drgns_helpers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))  # drgn keeps its history there
    system = booted_system()
    lines = [
        'print(prog["nr_tasks"].value_())',
        'print([t.comm.string_().decode() for t in list_for_each_entry("struct task_struct", '
        'prog["task_list"].address_of_(), "tasks")])',
        'print(container_of(prog["task_list"].next, "struct task_struct", "tasks").pid.value_())',
        "print(machine.task_on(0)[1])",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert run_drgn_console(system) == 0
    out = capsys.readouterr().out
    printed = [line.removeprefix(">>> ") for line in out.splitlines() if line.startswith(">>> ") and line[4:]]
    tasks = all_tasks(system.machine)
    listed = [t for t in tasks if t.pid != 0]  # the idle tasks are not on the task list
    assert printed == [
        str(len(tasks)),
        str([t.comm for t in listed]),
        str(listed[0].pid),
        system.machine.task_on(0)[1],
    ]
