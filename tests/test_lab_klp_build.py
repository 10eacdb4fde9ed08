"""Lab 9 (klp-build): patches to the wrong function, with the wrong text, or refused by klp-build,
and sessions that never load the module, fail with a message that says which; the reference
passes; a seed fixes the workspace."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import pytest
from lab_util import failures, shell, solved, workspace

from klpemu.klp_build import klp_build
from klpemu.lab import get_lab
from klpemu.lab.grading import check_workspace
from klpemu.lab.klp_build import KO, PATCH, TARGETS, expected_line, reference_patch

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc")

STRUCT_CHANGE = Path(__file__).parent / "klp_build" / "refuse-struct-layout.patch"


def _other(target: str) -> str:
    return next(t for t in sorted(TARGETS) if t != target)


def _write_and_build(ws, text: str) -> None:
    (ws.path / PATCH).write_text(text)
    klp_build(ws.path / PATCH, output=ws.path / KO, out=io.StringIO())


def test_same_seed_same_workspace_and_the_variants_differ(tmp_path):
    a, b = workspace(tmp_path, "klp-build", 3, "a"), workspace(tmp_path, "klp-build", 3, "b")
    assert (a.path / "README.md").read_bytes() == (b.path / "README.md").read_bytes()
    lab = get_lab("klp-build")
    assert len({lab.scenario(s).variant["target"] for s in range(20)}) == len(TARGETS)
    assert expected_line(lab.scenario(1)) != expected_line(lab.scenario(2))


def test_untouched_workspace_asks_for_the_patch(tmp_path):
    text = failures(workspace(tmp_path, "klp-build", 1))
    assert f"there is no {PATCH} and no {KO}" in text and "klpemu klp-build" in text


def test_reference_passes_and_a_disabled_patch_fails(tmp_path):
    ws = solved(tmp_path, "klp-build", 2)
    assert check_workspace(ws).passed
    shell(ws, "echo 0 > /sys/kernel/livepatch/livepatch_fix/enabled; wait --gone /sys/kernel/livepatch/livepatch_fix")
    assert "no longer enabled" in failures(ws)


def test_patch_to_the_wrong_function(tmp_path):
    ws = workspace(tmp_path, "klp-build", 4)
    sc = ws.scenario
    other = _other(sc.variant["target"])
    wrong = dataclasses.replace(sc, variant={**sc.variant, "target": other})
    _write_and_build(ws, reference_patch(wrong))
    text = failures(ws)
    assert f"replaces vmlinux:{other}" in text and f"vmlinux:{sc.variant['target']} alone" in text
    assert "never loaded" in text


def test_patch_printing_the_wrong_text(tmp_path):
    ws = workspace(tmp_path, "klp-build", 5)
    _write_and_build(ws, reference_patch(ws.scenario).replace(expected_line(ws.scenario), "fixed: nothing"))
    shell(ws, "; ".join(get_lab("klp-build").solution_commands(ws.scenario)))
    text = failures(ws)
    assert "shows 'fixed: nothing'" in text and "seq_puts" in text


def test_patch_klp_build_refuses(tmp_path):
    ws = workspace(tmp_path, "klp-build", 6)
    (ws.path / PATCH).write_text(STRUCT_CHANGE.read_text() + reference_patch(ws.scenario))
    text = failures(ws)
    assert "klp-build refuses your fix.patch" in text and "struct proc_dir_entry" in text


def test_patch_not_in_git_diff_form(tmp_path):
    ws = workspace(tmp_path, "klp-build", 7)
    (ws.path / PATCH).write_text(reference_patch(ws.scenario).replace("b/firmware/", "firmware/"))
    text = failures(ws)
    assert "klp-build cannot use your fix.patch" in text and "git diff form" in text
