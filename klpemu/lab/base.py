"""What every lab provides: its seeded scenario, its sheet, starter files, hints, a checker of the
state the student produced, and a reference solution the checker must accept."""

from __future__ import annotations

import io
import random
import re

from ..system import System
from .result import CheckResult
from .scenario import Scenario
from .workspace import Workspace, run_commands

ANSWER = "answer.txt"


class Lab:
    id = ""  # what `klpemu lab start` takes
    number = 0  # its place in the progression
    title = ""

    # --- what a variant is ---------------------------------------------------------------------

    def scenario(self, seed: int) -> Scenario:
        raise NotImplementedError

    def sheet(self, sc: Scenario) -> str:
        raise NotImplementedError

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {}

    def hints(self, sc: Scenario) -> list[str]:
        raise NotImplementedError

    # --- the checker ---------------------------------------------------------------------------

    def check(self, ws: Workspace, system: System) -> CheckResult:
        """Inspect system, the machine the student left (ws.machine()), and their files."""
        raise NotImplementedError

    # --- the reference solution ----------------------------------------------------------------

    def solution_commands(self, sc: Scenario) -> list[str]:
        """Shell commands a student would run on the lab's machine."""
        return []

    def solution_files(self, sc: Scenario, system: System) -> dict[str, str]:
        """Files a student would write, computed from the machine after solution_commands."""
        return {}

    def prepare(self, ws: Workspace) -> None:
        """Work outside the machine the solution needs first (building a module)."""

    def solve(self, ws: Workspace) -> None:
        """Do the exercise in ws as a student who got it right would."""
        self.prepare(ws)
        system = ws.machine()
        for cmd in self.solution_commands(ws.scenario):
            ws.run(system, cmd, out=io.StringIO(), err=io.StringIO())
        for name, text in self.solution_files(ws.scenario, system).items():
            (ws.path / name).write_text(text)

    def solution(self, sc: Scenario) -> str:
        """The reference answer for a variant, as an instructor reads it."""
        system = sc.boot()
        lines = [f"# {self.id} (seed {sc.seed}): reference solution", "", "Shell commands (klpemu lab shell):"]
        for cmd in self.solution_commands(sc):
            lines.append(f"  {cmd}")
            run_commands(system, cmd)
        for name, text in self.solution_files(sc, system).items():
            lines += ["", f"{name}:", *(f"  {line}" for line in text.splitlines())]
        return "\n".join(lines) + "\n"


def rng(lab: Lab, seed: int) -> random.Random:
    """A variant's random stream: the same for a lab and seed everywhere, different across labs."""
    return random.Random(f"{lab.id}:{seed}")


def parse_answers(text: str | None) -> dict[str, str]:
    """`key: value` lines (keys lower-cased), `#` comments and blank lines ignored."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_ -]+?)\s*:\s*(.*)", line)
        if m and m.group(2).strip():
            out[m.group(1).strip().lower()] = m.group(2).strip()
    return out


def parse_int(text: str) -> int | None:
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def parse_bytes(text: str) -> bytes | None:
    """Hex bytes as `disas` prints them: `0f 1f 44 00 00`."""
    try:
        return bytes(int(b, 16) for b in text.replace(",", " ").split())
    except ValueError:
        return None
