"""Lab 4 (a first livepatch): modules that do not do what the sheet asks, and sessions that stop
half-way, fail with a message that says which."""

from __future__ import annotations

import shutil

import pytest
from lab_util import failures, shell, workspace

from klpemu.lab import get_lab
from klpemu.lab.first_patch import KO, LP, SOURCE, build, expected_line

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="building a module needs gcc")


def test_no_module_built(tmp_path):
    assert f"there is no {KO}" in failures(workspace(tmp_path, "first-patch", 1))


def test_skeleton_built_as_handed_out(tmp_path):
    ws = workspace(tmp_path, "first-patch", 2)
    build(ws.path / SOURCE)
    text = failures(ws)
    assert "does not load in a fresh machine" in text and ".old_name" in text


def test_wrong_line_and_session_left_patched(tmp_path):
    ws = workspace(tmp_path, "first-patch", 3)
    get_lab("first-patch").prepare(ws)
    src = ws.path / SOURCE
    src.write_text(src.read_text().replace(expected_line(ws.scenario), "this has been live patched"))
    build(src)
    shell(ws, f"insmod ./{KO}; wait {LP}/transition 0")
    text = failures(ws)
    assert "shows 'this has been live patched'" in text
    assert "never disabled to the end" in text


def test_wrong_function_and_module_left_loaded(tmp_path):
    ws = workspace(tmp_path, "first-patch", 4)
    lab = get_lab("first-patch")
    lab.prepare(ws)
    src = ws.path / SOURCE
    target = ws.scenario.variant["target"]
    other = "version_proc_show" if target != "version_proc_show" else "uptime_proc_show"
    src.write_text(src.read_text().replace(f'.old_name = "{target}"', f'.old_name = "{other}"'))
    build(src)
    shell(ws, "; ".join(lab.solution_commands(ws.scenario)[:-1]))  # all but rmmod
    text = failures(ws)
    assert f"replaces vmlinux:{other}" in text
    assert "still loaded" in text
