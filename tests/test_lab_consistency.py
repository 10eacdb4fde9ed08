"""Lab 5 (the consistency model): plausible wrong ways out fail with a message that says which."""

from __future__ import annotations

from lab_util import failures, set_answer, shell, solved, workspace

from klpemu.lab import get_lab
from klpemu.lab.inspect import tasks_named

LP = "/sys/kernel/livepatch/klab_sleeper_patch"
RELEASE = "/sys/module/klab_sleeper/parameters/release"


def _start(tmp_path, seed):
    ws = workspace(tmp_path, "consistency", seed)
    t = ws.scenario.variant["target"]
    shell(ws, f"insmod klab_sleeper_patch target={t}; sleep 2s")
    return ws, t


def test_forcing_the_transition_is_refused(tmp_path):
    ws, t = _start(tmp_path, 2)
    shell(ws, f"echo 1 > {LP}/force; sleep 2s")
    set_answer(ws, task="x", function=t)
    text = failures(ws)
    assert "was forced" in text and "switched unchecked" in text


def test_releasing_every_thread(tmp_path):
    ws, t = _start(tmp_path, 3)
    shell(ws, f"echo -1 > {RELEASE}; wait {LP}/transition 0")
    pid = get_lab("consistency").solution_files(ws.scenario, ws.machine())["answer.txt"].split()[1]
    set_answer(ws, task=pid, function=t)
    assert "which were not in the way" in failures(ws)


def test_the_default_target_and_the_wrong_task(tmp_path):
    seed = next(s for s in range(20) if get_lab("consistency").scenario(s).variant["target"] != "klab_commit")
    ws = workspace(tmp_path, "consistency", seed)
    sc = ws.scenario
    shell(ws, "insmod klab_sleeper_patch; sleep 2s")
    other = next(
        c
        for c in tasks_named(ws.machine(), "klabd/")
        if c != f"klabd/{sc.variant['sleepers'].index(sc.variant['target'])}"
    )
    set_answer(ws, task=str(tasks_named(ws.machine(), other)[other]), function="klab_wait")
    text = failures(ws)
    assert f"not {sc.variant['target']}" in text
    assert "not the task that held the transition up" in text
    assert "not where that task slept" in text


def test_transition_left_open(tmp_path):
    ws, t = _start(tmp_path, 4)
    assert "has not completed" in failures(ws)


def test_patch_disabled_after_completing(tmp_path):
    ws = solved(tmp_path, "consistency", 1)
    shell(ws, f"echo 0 > {LP}/enabled; wait --gone {LP}")
    assert "its patch is gone" in failures(ws)
