"""tracefs `error_log`: the last errors of the probe and filter parsers, each with the command and
a caret under the place that was wrong (kernel/trace/trace.c's tracing_log_err)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...machine.machine import Machine

TRACING_LOG_ERRS_MAX = 8
CMD_PREFIX = "  Command: "


@dataclass(frozen=True)
class LoggedError:
    ts: int  # local_clock() in ns
    loc: str  # "trace_kprobe", "event filter parse error", ...
    text: str
    cmd: str
    pos: int

    def format(self) -> str:
        sec, ns = divmod(self.ts, 1_000_000_000)
        caret = " " * (len(CMD_PREFIX) + self.pos)
        return f"[{sec:5d}.{ns // 1000:06d}] {self.loc}: error: {self.text}\n{CMD_PREFIX}{self.cmd}\n{caret}^\n"


class ErrorLog:
    def __init__(self, machine: Machine):
        self.m = machine
        self.entries: deque[LoggedError] = deque(maxlen=TRACING_LOG_ERRS_MAX)

    def log(self, loc: str, cmd: str, text: str, pos: int) -> None:
        self.entries.append(LoggedError(self.m.now, loc, text, cmd, pos))

    def text(self) -> str:
        return "".join(e.format() for e in self.entries)

    def write(self, data: str) -> None:
        """Any write clears, as opening error_log with O_TRUNC does."""
        self.entries.clear()
