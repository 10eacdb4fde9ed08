"""Lab 7 (atomic replace and system states): wrong predictions, replaced modules left loaded and
sequences run otherwise fail with a message that says which."""

from __future__ import annotations

from lab_util import failures, set_answer, shell, solved, workspace

from klpemu.lab import get_lab


def _seed_with_refusal() -> int:
    lab = get_lab("replace")
    return next(s for s in range(20) if "refused" in lab.truth(lab.scenario(s))[0])


def test_everything_predicted_loaded_and_replaced_modules_left(tmp_path):
    seed = _seed_with_refusal()
    ws = solved(tmp_path, "replace", seed)
    fates, last = get_lab("replace").truth(ws.scenario)
    set_answer(ws, **{str(i): "loaded" for i in range(1, len(fates) + 1)})
    stale = [c for c in get_lab("replace").solution_commands(ws.scenario) if c.startswith("rmmod")]
    (ws.path / ".lab" / "history").write_text(
        "".join(line + "\n" for line in ws.history() if line not in stale)  # as if rmmod was never run
    )
    text = failures(ws)
    i = fates.index("refused") + 1
    assert f"{i} (insmod {ws.scenario.variant['sequence'][i - 1]}): you say loaded, the kernel refused it" in text
    if stale:
        assert "still loaded though replaced" in text


def test_sequence_not_run(tmp_path):
    ws = workspace(tmp_path, "replace", 2)
    fates, _ = get_lab("replace").truth(ws.scenario)
    set_answer(ws, **{str(i): f for i, f in enumerate(fates, 1)})
    assert "did not load the whole sequence" in failures(ws)


def test_sequence_run_backwards(tmp_path):
    ws = workspace(tmp_path, "replace", 4)
    seq = ws.scenario.variant["sequence"]
    for module in reversed(seq):
        shell(ws, f"insmod {module}; sleep 1500ms")
    fates, _ = get_lab("replace").truth(ws.scenario)
    set_answer(ws, **{str(i): f for i, f in enumerate(fates, 1)})
    text = failures(ws)
    assert "did not load the whole sequence" in text or "went otherwise" in text or "patches left" in text
