"""Module parameters: their types, parsing and the values sysfs shows (kernel/params.c)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import KlpemuError
from ..kstrtox import kstrtobool
from .internal import EINVAL, ERANGE

CHARP_MAX = 1024


@dataclass(eq=False)
class Param:
    name: str
    type: str  # int, uint, long, ulong, short, ushort, bool, invbool, charp
    perm: int
    arg: int  # the guest variable


INT_TYPES = {
    "int": (4, True),
    "uint": (4, False),
    "long": (8, True),
    "ulong": (8, False),
    "short": (2, True),
    "ushort": (2, False),
}


def _kstrto(value: str, size: int, signed: bool) -> int:
    """kstrto<type>(s, 0): one number, base from its prefix, a trailing newline allowed."""
    s = value.removesuffix("\n")
    neg = False
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("-") and signed:
        neg, s = True, s[1:]
    if s[:2].lower() == "0x" and len(s) > 2:
        base, digits = 16, s[2:]
    elif s.startswith("0") and len(s) > 1:
        base, digits = 8, s[1:]
    else:
        base, digits = 10, s
    if not digits or any(c not in "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)] for c in digits):
        raise KlpemuError("invalid", EINVAL)
    n = int(digits, base)
    n = -n if neg else n
    bits = size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= n <= hi:
        raise KlpemuError("out of range", ERANGE)
    return n


def _kstrtobool(value: str | None) -> bool:
    if value is None:  # a bool parameter named alone means true
        return True
    return kstrtobool(value)
