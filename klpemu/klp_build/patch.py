"""Reading and applying FIX.patch: a unified diff in `git diff` form (a/PATH, b/PATH, -p1).

Each hunk's context must match the tree exactly (at its line, or a few lines away, as patch(1)
allows an offset); a patch that does not apply changes nothing. The hunks also give, per file,
how old line numbers move to new ones, so that a function whose code differs only by a moved
__LINE__ is not taken for a changed one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KlpemuError

HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
FUZZ_LINES = 50  # how far from its stated line a hunk's context may be found


class PatchError(KlpemuError):
    def __init__(self, message: str):
        super().__init__(message, 22)


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[str] = field(default_factory=list)  # ' ', '-', '+' prefixed


@dataclass
class FilePatch:
    path: str  # relative to the checkout root, as in b/PATH
    hunks: list[Hunk] = field(default_factory=list)
    new_file: bool = False

    def new_line(self, old: int) -> int | None:
        """Where old line `old` is after the patch; None if the patch removed or rewrote it."""
        shift = 0
        for h in self.hunks:
            end = h.old_start + h.old_len
            if old >= end:
                shift += h.new_len - h.old_len
            elif old >= h.old_start:
                line = h.old_start
                new = h.new_start
                for text in h.lines:
                    if text[0] == " ":
                        if line == old:
                            return new
                        line, new = line + 1, new + 1
                    elif text[0] == "-":
                        if line == old:
                            return None
                        line += 1
                    else:
                        new += 1
                return None
        return old + shift

    def changed_new_lines(self) -> set[int]:
        """New-file line numbers of added lines, and of the lines next to a removal."""
        out: set[int] = set()
        for h in self.hunks:
            new = h.new_start
            for text in h.lines:
                if text[0] == "+":
                    out.add(new)
                    new += 1
                elif text[0] == "-":
                    out.update((new - 1, new))
                else:
                    new += 1
        return out


def parse_patch(text: str, name: str = "patch") -> list[FilePatch]:
    files: list[FilePatch] = []
    cur: FilePatch | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = line[4:].split("\t")[0], lines[i + 1][4:].split("\t")[0]
            if new == "/dev/null":
                raise PatchError(f"{name}: {old}: removing a file is not supported")
            if not new.startswith("b/"):
                raise PatchError(f"{name}: {new}: expected a b/ path (a patch in git diff form)")
            cur = FilePatch(new[2:], new_file=old == "/dev/null")
            files.append(cur)
            i += 2
            continue
        m = HUNK.match(line)
        if m:
            if cur is None:
                raise PatchError(f"{name}:{i + 1}: a hunk before any file header")
            h = Hunk(int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1))
            i += 1
            old_left, new_left = h.old_len, h.new_len
            while old_left or new_left:
                if i >= len(lines):
                    raise PatchError(f"{name}: {cur.path}: truncated hunk at line {h.old_start}")
                body = lines[i] or " "
                if body.startswith("\\"):
                    i += 1
                    continue
                if body[0] not in " -+":
                    raise PatchError(f"{name}:{i + 1}: {cur.path}: malformed hunk line {body!r}")
                h.lines.append(body)
                old_left -= body[0] != "+"
                new_left -= body[0] != "-"
                i += 1
            cur.hunks.append(h)
            continue
        i += 1
    if not files:
        raise PatchError(f"{name}: no file changes found (expected a patch in git diff form)")
    return files


def _apply_one(fp: FilePatch, old: list[str], name: str) -> list[str]:
    out: list[str] = []
    pos = 0
    for h in fp.hunks:
        want = [t[1:] for t in h.lines if t[0] != "+"]
        start = max(h.old_start - 1, 0) if h.old_len else h.old_start
        for delta in sorted(range(-FUZZ_LINES, FUZZ_LINES + 1), key=abs):
            at = start + delta
            if at >= pos and old[at : at + len(want)] == want:
                break
        else:
            raise PatchError(f"{name}: {fp.path}: hunk at line {h.old_start} does not apply")
        out += old[pos:at]
        out += [t[1:] for t in h.lines if t[0] != "-"]
        pos = at + len(want)
    return out + old[pos:]


def apply_patch(files: list[FilePatch], root: Path, name: str = "patch") -> None:
    """Apply to the checkout at root (which holds firmware/): all files or none."""
    results = {}
    for fp in files:
        path = root / fp.path
        if fp.new_file:
            if path.exists():
                raise PatchError(f"{name}: {fp.path}: already exists")
            old: list[str] = []
        else:
            try:
                old = path.read_text().splitlines()
            except OSError as e:
                raise PatchError(f"{name}: {fp.path}: {e.strerror}") from None
        results[path] = _apply_one(fp, old, name)
    for path, new in results.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(new) + "\n")
