"""Running checkers: one workspace (`check`), a class's workspaces (`grade`), and every lab's
reference solution over many seeds (`selftest`)."""

from __future__ import annotations

import csv
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import LABS, get_lab
from .base import Lab
from .result import CheckResult
from .workspace import Workspace


def check_workspace(ws: Workspace) -> CheckResult:
    lab = get_lab(ws.scenario.lab)
    return lab.check(ws, ws.machine())


def start_workspace(lab: Lab, seed: int, path: str | Path) -> Workspace:
    sc = lab.scenario(seed)
    files = {"README.md": lab.sheet(sc), **lab.starter_files(sc)}
    return Workspace.create(path, sc, files)


@dataclass
class Grade:
    workspace: str
    lab: str
    seed: int | None
    passed: bool
    problems: list[str]
    hints_used: int
    seconds: float

    def row(self) -> dict:
        return {
            "workspace": self.workspace,
            "lab": self.lab,
            "seed": self.seed,
            "passed": self.passed,
            "problems": len(self.problems),
            "first_problem": self.problems[0] if self.problems else "",
            "hints_used": self.hints_used,
            "seconds": round(self.seconds, 2),
        }


def grade(paths: list[str]) -> list[Grade]:
    out = []
    for p in paths:
        ws = Workspace(p)
        t0 = time.perf_counter()
        try:
            sc = ws.scenario
            res = check_workspace(ws)
            g = Grade(str(ws.path), sc.lab, sc.seed, res.passed, [q.what for q in res.problems], ws.hints_shown(), 0.0)
        except Exception as e:  # a broken workspace is a failed one, not a crashed grading run
            g = Grade(str(ws.path), "?", None, False, [f"cannot check: {e}"], 0, 0.0)
        g.seconds = time.perf_counter() - t0
        out.append(g)
    return out


def write_grades(grades: list[Grade], prefix: str) -> tuple[Path, Path]:
    rows = [g.row() for g in grades]
    csv_path, json_path = Path(prefix + ".csv"), Path(prefix + ".json")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["workspace"])
        w.writeheader()
        w.writerows(rows)
    full = [{**g.row(), "problems": g.problems} for g in grades]
    json_path.write_text(json.dumps(full, indent=2) + "\n")
    return csv_path, json_path


@dataclass
class SelftestResult:
    lab: str
    seeds: int
    failures: list[str]
    seconds: float


def selftest(seeds: int, labs: list[Lab] | None = None) -> list[SelftestResult]:
    """Each lab's reference solution must pass its checker, and an untouched workspace fail it."""
    out = []
    for lab in labs or LABS:
        t0 = time.perf_counter()
        failures = []
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                ws = start_workspace(lab, seed, Path(tmp) / "ws")
                if check_workspace(ws).passed:
                    failures.append(f"seed {seed}: an untouched workspace passes")
                lab.solve(ws)
                res = check_workspace(ws)
                if not res.passed:
                    failures.append(f"seed {seed}: the reference solution fails: {res.problems[0].what}")
        out.append(SelftestResult(lab.id, seeds, failures, time.perf_counter() - t0))
    return out
