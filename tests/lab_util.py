"""Helpers shared by the lab tests: workspaces made and checked in-process."""

from __future__ import annotations

from pathlib import Path

from klpemu.lab import get_lab
from klpemu.lab.grading import check_workspace, start_workspace
from klpemu.lab.result import CheckResult
from klpemu.lab.workspace import Workspace


def workspace(tmp_path: Path, lab: str, seed: int = 0, name: str = "ws") -> Workspace:
    return start_workspace(get_lab(lab), seed, tmp_path / name)


def solved(tmp_path: Path, lab: str, seed: int = 0) -> Workspace:
    ws = workspace(tmp_path, lab, seed)
    get_lab(lab).solve(ws)
    return ws


def shell(ws: Workspace, line: str) -> None:
    import io

    ws.run(ws.machine(), line, out=io.StringIO(), err=io.StringIO())


def failures(ws: Workspace) -> str:
    """The checker's problems and hints as one text; the check must have failed."""
    res: CheckResult = check_workspace(ws)
    assert not res.passed, "the check passed"
    return "\n".join(f"{p.what} | {p.hint}" for p in res.problems)


def set_answer(ws: Workspace, **fields: str) -> None:
    """Rewrite answer.txt's fields given (keeping the others)."""
    path = ws.path / "answer.txt"
    lines = [ln for ln in path.read_text().splitlines() if ln.split(":")[0].strip() not in fields]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n")
