"""A progress line on stderr for commands that run the machine for long: drawn by a thread, so
the run itself is the same whether or not anyone watches it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """While the block runs, after `after` seconds of wall time, redraw `status()` on one line
    of stream every `every` seconds; erase it at the end. Only on a terminal unless forced,
    so logs and pipes get no carriage returns."""

    def __init__(
        self, stream: TextIO, status: Callable[[], str], *, after: float = 1.0, every: float = 0.25, force: bool = False
    ):
        self.stream = stream
        self.status = status
        self.after = after
        self.every = every
        self.enabled = force or stream.isatty()
        self._done = threading.Event()
        self._drawn = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, name="klpemu-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _draw(self) -> None:
        start = time.monotonic()
        if self._done.wait(self.after):
            return
        while not self._done.is_set():
            wall = time.monotonic() - start
            self.stream.write(f"\r\033[K{self.status()} ({wall:.0f}s; Ctrl-C stops)")
            self.stream.flush()
            self._drawn = True
            self._done.wait(self.every)
