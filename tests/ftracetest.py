"""What Linux's tools/testing/selftests/ftrace/test.d/functions gives a .tc script, over a booted
machine's tracefs: file reads and writes relative to the tracing directory, and
ftrace_errlog_check, which the ported scripts use to compare error_log with a caret pattern."""

from __future__ import annotations

import re

from klpemu.errors import KlpemuError

TRACING = "/sys/kernel/tracing"
ERRLOG_LINE = re.compile(r"^\[ *\d+\.\d{6}\] (.*)$")


class Ftracetest:
    def __init__(self, system):
        self.system = system
        self.vfs = system.vfs

    def path(self, name: str) -> str:
        return name if name.startswith("/") else f"{TRACING}/{name}"

    def cat(self, name: str) -> str:
        return self.vfs.read(self.path(name))

    def write(self, name: str, text: str, *, append: bool = False) -> int:
        """`echo TEXT > FILE` (or >>): 0, or the errno of the failed write."""
        try:
            self.vfs.write(self.path(name), text, append=append)
        except KlpemuError as e:
            return e.errno
        return 0

    def exists(self, name: str) -> bool:
        return self.vfs.exists(self.path(name))

    def errlog_check(self, prefix: str, pattern: str, file: str) -> str:
        """ftrace_errlog_check: write the command (the pattern without its ^) to file, which must
        fail, and check that error_log's caret stands where the ^ was. Returns the error's
        entry without its timestamp, for the test to compare with Linux's message."""
        pos = len(pattern.split("^")[0].encode()) if "^" in pattern else 0
        command = pattern.replace("^", "")
        self.write("error_log", "")
        assert self.write(file, command, append=True) != 0, f"{command!r} was accepted"
        log = self.cat("error_log")
        assert f"{prefix}: error:" in log, log
        last = log.splitlines()[-1]
        assert len(last) + 1 == 13 + pos, f"{command!r}: caret at {len(last) - 11}, want {pos}\n{log}"
        first, *rest = log.splitlines()
        m = ERRLOG_LINE.match(first)
        assert m, first
        return "\n".join([m.group(1), *rest])


def yield_(ft: Ftracetest) -> None:
    """The scripts' `yield` (a ping, which forks and wakes tasks): here a module whose init
    forks a kernel thread and whose removal lets it exit, then a read of /proc/cmdline."""
    from machine_util import shell_run

    status, _, err = shell_run(ft.system, "insmod klab_sleeper; rmmod klab_sleeper; cat /proc/cmdline; sleep 10ms")
    assert status == 0, err


def trace_lines(ft: Ftracetest) -> list[str]:
    return [line for line in ft.cat("trace").splitlines() if not line.startswith("#")]


def event_names(ft: Ftracetest) -> set[str]:
    """`awk '{ print $5 }'` of the trace lines: the event column."""
    return {line.split()[4].rstrip(":") for line in trace_lines(ft)}
