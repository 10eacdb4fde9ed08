"""The filters a pipeline can end in: grep, head, tail and wc -l, over the text the command
before them printed. Each returns (text, exit status) as its coreutils namesake would."""

from __future__ import annotations

import re
from collections.abc import Callable

from .core import UsageError

Filter = Callable[[str], tuple[str, int]]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _count(args: list[str], name: str) -> int:
    """The N of `-n N` (or `-nN`, `-N`), 10 by default."""
    if not args:
        return 10
    if len(args) == 2 and args[0] == "-n":
        value = args[1]
    elif len(args) == 1 and args[0].startswith("-n"):
        value = args[0][2:]
    elif len(args) == 1 and args[0][1:].isdigit() and args[0].startswith("-"):
        value = args[0][1:]
    else:
        raise UsageError(f"unsupported arguments '{' '.join(args)}'")
    if not value.isdigit():
        raise UsageError(f"invalid number of lines: '{value}'")
    return int(value)


def grep(args: list[str]) -> Filter:
    invert = ignore_case = count = False
    rest = list(args)
    while rest and rest[0].startswith("-") and len(rest[0]) > 1:
        for flag in rest.pop(0)[1:]:
            if flag == "v":
                invert = True
            elif flag == "i":
                ignore_case = True
            elif flag == "c":
                count = True
            else:
                raise UsageError(f"invalid option -- '{flag}'")
    if len(rest) != 1:
        raise UsageError("one PATTERN expected")
    try:
        pattern = re.compile(rest[0], re.IGNORECASE if ignore_case else 0)
    except re.error as e:
        raise UsageError(f"bad pattern '{rest[0]}': {e}") from None

    def run(text: str) -> tuple[str, int]:
        hits = [line for line in _lines(text) if bool(pattern.search(line.rstrip("\n"))) != invert]
        status = 0 if hits else 1
        return (f"{len(hits)}\n" if count else "".join(hits)), status

    return run


def head(args: list[str]) -> Filter:
    n = _count(args, "head")
    return lambda text: ("".join(_lines(text)[:n]), 0)


def tail(args: list[str]) -> Filter:
    n = _count(args, "tail")
    return lambda text: ("".join(_lines(text)[-n:] if n else []), 0)


def wc(args: list[str]) -> Filter:
    if args != ["-l"]:
        raise UsageError("only wc -l is supported")
    return lambda text: (f"{len(_lines(text))}\n", 0)


FILTERS: dict[str, tuple[Callable[[list[str]], Filter], str]] = {
    "grep": (grep, "CMD | grep [-v] [-i] [-c] PATTERN"),
    "head": (head, "CMD | head [-n N]"),
    "tail": (tail, "CMD | tail [-n N]"),
    "wc": (wc, "CMD | wc -l"),
}
