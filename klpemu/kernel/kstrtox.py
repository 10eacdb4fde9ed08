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
