"""What a checker finds: pass, or the problems in the student's terms, each with a hint."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    what: str  # what is wrong, as the student would see it
    hint: str  # where to look next, without giving the answer away


@dataclass
class CheckResult:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was found right, shown on a pass too

    @property
    def passed(self) -> bool:
        return not self.problems

    def fail(self, what: str, hint: str) -> CheckResult:
        self.problems.append(Problem(what, hint))
        return self

    def ok(self, note: str) -> None:
        self.notes.append(note)

    def report(self) -> str:
        lines = [f"  ok: {n}" for n in self.notes]
        for p in self.problems:
            lines.append(f"  FAIL: {p.what}")
            lines.append(f"        hint: {p.hint}")
        lines.append("PASS" if self.passed else f"FAIL ({len(self.problems)} problem(s))")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "problems": [{"what": p.what, "hint": p.hint} for p in self.problems],
            "notes": list(self.notes),
        }
