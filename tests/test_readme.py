"""The README's examples, run.

A shell example is an untagged code block of `$ klpemu ...` commands, each followed by what it
prints; a line `...` stands for any run of lines. Each command runs through the CLI entry on a
machine of its own, as typing it would, with stdout and stderr in one stream as a terminal shows
them. A ```python block runs and must not raise; what it prints must be the untagged block right
after it (or nothing, when there is none). The ```sh blocks (installing, building the image) and
```c ones (fragments of a module) are not run: they need a network, gcc or more context.

The shown outputs hold addresses, offsets and emulated times of the shipped image, so a rebuilt
image changes them: `python tests/test_readme.py --update` takes the new values into README.md
wherever only numbers differ, and leaves any other difference for a person to look at.
"""

from __future__ import annotations

import argparse
import functools
import io
import re
import shlex
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from klpemu import cli
from klpemu.shell import Shell

README = Path(__file__).resolve().parent.parent / "README.md"
ELLIPSIS = "..."


@dataclass(frozen=True)
class Example:
    kind: str  # "shell" or "python"
    line: int  # README line of the command or of the block's first line of code
    section: str
    code: str  # the shell command line (without `$ `), or the Python source
    expected: tuple[str, ...] | None  # the shown output; None: a Python block that shows none
    expected_line: int  # README line of the first line of expected

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.kind}-{re.sub(r'[^a-z0-9]+', '-', self.section.lower()).strip('-')}"


@dataclass(frozen=True)
class Block:
    info: str  # what follows the opening fence: "", "python", "sh", ...
    fence: int  # index in the README's lines of the opening fence
    end: int  # and of the closing one
    body: list[str]
    section: str

    @property
    def first(self) -> int:
        """README line (from 1) of the block's first content line."""
        return self.fence + 2


def _blocks(lines: list[str]) -> list[Block]:
    blocks, section, i = [], "top", 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:]
        if lines[i].startswith("```"):
            end = i + 1
            while not lines[end].startswith("```"):
                end += 1
            blocks.append(Block(lines[i][3:].strip(), i, end, lines[i + 1 : end], section))
            i = end
        i += 1
    return blocks


def _shell_examples(block: Block) -> list[Example]:
    """A block's `$` commands, a command running on over lines until its quotes close."""
    body, first = block.body, block.first
    assert body and body[0].startswith("$ "), f"README.md:{first}: an untagged block that is not `$ klpemu ...`"
    examples, i = [], 0
    while i < len(body):
        start, command = i, body[i][2:]
        while True:
            try:
                shlex.split(command)
                break
            except ValueError:  # a quote still open: the command goes on
                i += 1
                assert i < len(body), f"README.md:{first + start}: the command's quotes never close"
                command += "\n" + body[i]
        i += 1
        out_start = i
        while i < len(body) and not body[i].startswith("$ "):
            i += 1
        out = tuple(body[out_start:i])
        examples.append(Example("shell", first + start, block.section, command, out, first + out_start))
    return examples


def readme_examples(text: str | None = None) -> list[Example]:
    lines = (README.read_text() if text is None else text).splitlines()
    blocks = _blocks(lines)
    examples, taken = [], set()
    for n, block in enumerate(blocks):
        if block.info == "" and n not in taken:
            examples += _shell_examples(block)
        elif block.info == "python":
            expected, expected_line = None, 0
            nxt = blocks[n + 1] if n + 1 < len(blocks) else None
            if (
                nxt is not None
                and nxt.info == ""
                and not (nxt.body and nxt.body[0].startswith("$ "))
                and not any(l.strip() for l in lines[block.end + 1 : nxt.fence])
            ):
                taken.add(n + 1)
                expected, expected_line = tuple(nxt.body), nxt.first
            code = "\n".join(block.body) + "\n"
            examples.append(Example("python", block.first, block.section, code, expected, expected_line))
    return examples


def run_cli(command: str) -> str:
    argv = shlex.split(command)
    assert argv[0] == "klpemu", f"an example runs klpemu, not {argv[0]}"
    out = io.StringIO()
    # The shell's default streams are bound when the module is imported: give it this one.
    with (
        redirect_stdout(out),
        redirect_stderr(out),
        mock.patch.object(cli, "Shell", functools.partial(Shell, out=out, err=out)),
    ):
        cli.main(argv[1:])
    return out.getvalue()


def run_python(example: Example) -> str:
    # Blank lines in front, so a traceback's line numbers are the README's.
    code = compile("\n" * (example.line - 1) + example.code, str(README), "exec")
    out = io.StringIO()
    with redirect_stdout(out):
        exec(code, {"__name__": "__main__"})
    return out.getvalue()


def run(example: Example) -> str:
    return run_cli(example.code) if example.kind == "shell" else run_python(example)


def align(expected, actual: list[str], same) -> tuple[int | None, ...] | None:
    """For each expected line, the index of the actual line it shows (None for an `...`, which
    takes any run of lines), or None when expected does not show actual."""

    @functools.cache
    def go(i: int, j: int):
        if i == len(expected):
            return () if j == len(actual) else None
        if expected[i] == ELLIPSIS:
            for k in range(j, len(actual) + 1):
                rest = go(i + 1, k)
                if rest is not None:
                    return (None, *rest)
            return None
        if j < len(actual) and same(expected[i], actual[j]):
            rest = go(i + 1, j + 1)
            return None if rest is None else (j, *rest)
        return None

    return go(0, 0)


def _lines(text: str) -> list[str]:
    return [l.rstrip() for l in text.splitlines()]  # an editor may strip a shown line's trailing blanks


def _exact(a: str, b: str) -> bool:
    return a.rstrip() == b


def _numbers_aside(a: str, b: str) -> bool:
    def mask(s: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"\b(?:0x)?[0-9a-f]+\b", "#", s)).strip()

    return mask(a) == mask(b)


EXAMPLES = readme_examples()


def test_readme_has_examples():
    kinds = [e.kind for e in EXAMPLES]
    assert "shell" in kinds and "python" in kinds


def test_ellipsis_matches_any_run_of_lines():
    assert align(["a", "...", "d"], ["a", "b", "c", "d"], _exact) == (0, None, 3)
    assert align(["a", "...", "b"], ["a", "b"], _exact) == (0, None, 1)
    assert align(["a", "...", "d"], ["a", "b", "c"], _exact) is None
    assert align(["a"], ["a", "b"], _exact) is None


def test_extraction():
    text = "\n".join(
        [
            "## One",
            "```",
            "$ klpemu shell -c 'a;",
            "                   b'",
            "out",
            "$ klpemu shell -c c",
            "```",
            "```python",
            "print(1)",
            "```",
            "",
            "```",
            "1",
            "```",
            "## Two",
            "```python",
            "x = 1",
            "```",
        ]
    )
    a, c, p1, p2 = readme_examples(text)
    assert (a.kind, a.line, a.section, a.expected, a.expected_line) == ("shell", 3, "One", ("out",), 5)
    assert shlex.split(a.code)[-1] == "a;\n                   b"
    assert (c.line, c.expected, c.expected_line) == (6, (), 7)
    assert (p1.kind, p1.line, p1.code, p1.expected, p1.expected_line) == ("python", 9, "print(1)\n", ("1",), 13)
    assert (p2.section, p2.expected) == ("Two", None)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example(example: Example):
    actual = _lines(run(example))
    expected = example.expected or ()
    if align(expected, actual, _exact) is None:
        hint = (
            "\n(only numbers differ: `python tests/test_readme.py --update` takes them)"
            if align(expected, actual, _numbers_aside) is not None
            else ""
        )
        pytest.fail(
            f"README.md:{example.line} shows:\n"
            + "\n".join(expected)
            + "\n\nbut it prints:\n"
            + "\n".join(actual)
            + hint,
            pytrace=False,
        )


def update() -> int:
    """Take into README.md the numbers each example prints now where the README shows others."""
    lines = README.read_text().splitlines(keepends=True)
    left = 0
    for example in readme_examples():
        expected = example.expected or ()
        actual = _lines(run(example))
        if align(expected, actual, _exact) is not None:
            continue
        shown = align(expected, actual, _numbers_aside)
        if shown is None:
            print(f"README.md:{example.line} ({example.id}): the output differs in more than numbers", file=sys.stderr)
            left += 1
            continue
        for k, j in enumerate(shown):
            if j is not None:
                lines[example.expected_line - 1 + k] = actual[j] + "\n"
        print(f"README.md:{example.line} ({example.id}): updated")
    README.write_text("".join(lines))
    return 1 if left else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Check the README's examples, or take in their new numbers.")
    parser.add_argument("--update", action="store_true", help="rewrite README.md where only numbers differ")
    if parser.parse_args().update:
        sys.exit(update())
    sys.exit(pytest.main([__file__, "-q"]))
