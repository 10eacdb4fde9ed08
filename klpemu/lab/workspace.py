"""A student's lab directory: the sheet and starter files they edit, and `.lab/` with what the
tool keeps: the scenario, every shell command they ran on the lab's machine, the hints shown.

The machine is not saved to disk: it is deterministic for its scenario, so replaying the recorded
commands on a fresh boot rebuilds exactly the state the student left (a snapshot lives in memory
only). `check` inspects that rebuilt machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import KlpemuError
from ..system import System
from .scenario import Scenario

if TYPE_CHECKING:
    from ..shell import Shell

STATE_DIR = ".lab"
SCENARIO = "scenario.json"
HISTORY = "history"
HINTS = "hints.json"


class LabError(KlpemuError):
    """A lab command given something it cannot use (no workspace there, an unknown lab...)."""


def run_commands(system: System, text: str) -> tuple[int, str, str]:
    """Run shell commands on system; (status, stdout, stderr)."""
    from ..shell import Shell

    out, err = io.StringIO(), io.StringIO()
    status = Shell(system, out=out, err=err).run_line(text)
    return status, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    """The student's commands name their files relative to the workspace (insmod ./patch.ko)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class Workspace:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).resolve()
        self.state = self.path / STATE_DIR

    # --- creation ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], scenario: Scenario, files: dict[str, str]) -> Workspace:
        ws = cls(path)
        if ws.state.exists():
            raise LabError(f"{ws.path} is a lab workspace already ('klpemu lab reset' starts it again)")
        if ws.path.exists() and any(ws.path.iterdir()):
            raise LabError(f"{ws.path} is not empty: give a new directory")
        ws.state.mkdir(parents=True)
        (ws.state / SCENARIO).write_text(scenario.to_json())
        (ws.state / HISTORY).write_text("")
        for name, text in sorted(files.items()):
            (ws.path / name).write_text(text)
        return ws

    def reset(self) -> None:
        """Back to the scenario's freshly booted machine and no hints shown; the student's files stay."""
        self.scenario  # noqa: B018 - refuses a directory that is no workspace
        (self.state / HISTORY).write_text("")
        (self.state / HINTS).unlink(missing_ok=True)

    # --- what is stored ------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        f = self.state / SCENARIO
        try:
            return Scenario.from_json(f.read_text())
        except FileNotFoundError:
            raise LabError(
                f"{self.path} is not a lab workspace (no {STATE_DIR}/{SCENARIO}; see 'klpemu lab start')"
            ) from None
        except (ValueError, TypeError) as e:
            raise LabError(f"{f} is damaged ({e}); 'klpemu lab start' a new workspace") from e

    def history(self) -> list[str]:
        f = self.state / HISTORY
        return [line for line in f.read_text().splitlines() if line.strip()] if f.exists() else []

    def record(self, line: str) -> None:
        with open(self.state / HISTORY, "a") as f:
            f.write(line.rstrip("\n") + "\n")

    def hints_shown(self) -> int:
        f = self.state / HINTS
        return int(json.loads(f.read_text()).get("shown", 0)) if f.exists() else 0

    def set_hints_shown(self, n: int) -> None:
        (self.state / HINTS).write_text(json.dumps({"shown": n}) + "\n")

    def file(self, name: str) -> str | None:
        f = self.path / name
        return f.read_text(errors="replace") if f.is_file() else None

    # --- the machine ---------------------------------------------------------------------------

    def machine(self) -> System:
        """The scenario's machine with every recorded command replayed: the state the student left."""
        system = self.scenario.boot()
        history = self.history()
        if history:
            with chdir(self.path):
                run_commands(system, "\n".join(history))
        return system

    def recording_shell(self, system: System) -> Shell:
        """A shell on system that records each line it is given, for the next replay."""
        from ..shell import Shell

        workspace = self

        class RecordingShell(Shell):
            def run_line(self, line: str) -> int:
                if not self._pending:  # a line typed, not one of a script's own commands
                    workspace.record(line)
                return super().run_line(line)

        return RecordingShell(system, sys.stdout, sys.stderr)

    def run(self, system: System, line: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
        """Run one line the student typed on system, and record it for the next replay."""
        from ..shell import Shell

        self.record(line)
        with chdir(self.path):
            return Shell(system, out=out or sys.stdout, err=err or sys.stderr).run_line(line)
