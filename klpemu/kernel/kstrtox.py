"""lib/kstrtox.c's kstrtobool, which sysfs attributes and module parameters share: only the first
character counts (two for on/off), so "yes", "true\n" and "enable" all parse."""

from __future__ import annotations

from errno import EINVAL

from ..errors import KlpemuError


def kstrtobool(s: str) -> bool:
    first, second = s[:1], s[1:2]
    if first in ("y", "Y", "t", "T", "1", "e", "E"):
        return True
    if first in ("n", "N", "f", "F", "0", "d", "D"):
        return False
    if first in ("o", "O") and second in ("n", "N"):
        return True
    if first in ("o", "O") and second in ("f", "F"):
        return False
    raise KlpemuError(f"'{s.rstrip()}' is not a boolean", EINVAL)


def _parse_base(s: str, base: int) -> tuple[str, int]:
    """_parse_integer_fixup_radix: base 0 reads 0x as hex and a leading 0 as octal."""
    if base == 0:
        if s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
            return s[2:], 16
        if s[:1] == "0":
            return s, 8
        return s, 10
    if base == 16 and s[:2].lower() == "0x":
        return s[2:], 16
    return s, base


def kstrtoull(s: str, base: int = 0, bits: int = 64) -> int | None:
    """The value, or None where kstrtoull fails (empty, junk, out of range); one trailing
    newline is allowed, as in the kernel."""
    if s.endswith("\n"):
        s = s[:-1]
    if s.startswith("+"):
        s = s[1:]
    digits, radix = _parse_base(s, base)
    if not digits:
        return None
    value = 0
    for ch in digits:
        d = int(ch, 36) if ch.isalnum() and ch.isascii() else 99
        if d >= radix:
            return None
        value = value * radix + d
    return value if value < (1 << bits) else None


def kstrtoll(s: str, base: int = 0, bits: int = 64) -> int | None:
    if s.startswith("-"):
        v = kstrtoull(s[1:], base, bits)
        return -v if v is not None and v <= 1 << (bits - 1) else None
    v = kstrtoull(s, base, bits)
    return v if v is not None and v < 1 << (bits - 1) else None


def simple_strtoul(s: str, base: int = 0) -> tuple[int, int]:
    """The value of the longest number at the start of s, and where it ended."""
    digits, radix = _parse_base(s, base)
    start = len(s) - len(digits)
    value, i = 0, start
    while i < len(s) and s[i].isascii() and s[i].isalnum() and int(s[i], 36) < radix:
        value = value * radix + int(s[i], 36)
        i += 1
    if i == start and radix == 16:  # "0x" alone: the 0
        return 0, 1
    return value, i
