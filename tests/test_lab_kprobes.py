"""Lab 8 (kprobes and livepatch): predictions that disagree with the record, and combinations
never tried, fail with a message that says which."""

from __future__ import annotations

from lab_util import failures, set_answer, shell, solved, workspace

from klpemu.lab.kprobes import CLEANUP, COMBINATIONS


def test_every_combination_refused(tmp_path):
    ws = solved(tmp_path, "kprobes", 2)
    truth = (ws.path / "answer.txt").read_text().split()
    set_answer(ws, **{str(i): "refused" for i in range(1, 5)})
    text = failures(ws)
    wrong = [i for i in range(1, 5) if truth[2 * i - 1] == "allowed"]
    assert wrong  # the variant has an allowed one
    for i in wrong:
        assert f"combination {i}: you say refused, the kernel's record says allowed" in text


def test_right_answers_without_trying(tmp_path):
    right = (solved(tmp_path / "a", "kprobes", 5).path / "answer.txt").read_text()
    ws = workspace(tmp_path, "kprobes", 5)
    (ws.path / "answer.txt").write_text(right)
    assert failures(ws).count("was never tried") == 4


def test_one_combination_skipped_and_an_answer_missing(tmp_path):
    ws = workspace(tmp_path, "kprobes", 7)
    names = ws.scenario.variant["combinations"]
    for name in names[1:]:
        shell(ws, "; ".join(COMBINATIONS[name][1] + CLEANUP))
    set_answer(ws, **{"2": "allowed"})
    text = failures(ws)
    assert "combination 1" in text and "never tried" in text
    assert "no `3: allowed` or `3: refused`" in text
