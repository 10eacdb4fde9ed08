"""One error type for the whole project, carrying a Linux errno where one applies."""

from __future__ import annotations

import os


class KlpemuError(Exception):
    """A refused operation. `errno` is the positive Linux errno, or 0 when none applies."""

    def __init__(self, message: str, errno: int = 0):
        super().__init__(message)
        self.errno = errno

    @property
    def strerror(self) -> str:
        return os.strerror(self.errno) if self.errno else str(self)


class Interrupted(KlpemuError):
    """A run stopped on request (Machine.request_stop) before it reached its end."""
