"""A small stand-in for Linux's tools/testing/selftests/ftrace/ftracetest and test.d/functions:
helpers over a booted System's tracefs for the .tc cases ported to pytest. Shell commands run
through the shell, so the guest runs between them as it would between a script's lines;
ftrace_errlog_check compares error_log with a caret pattern."""

from __future__ import annotations

import re

from machine_util import shell_run

from klpemu.errors import KlpemuError

TRACING = "/sys/kernel/tracing"
ERRLOG_LINE = re.compile(r"^\[ *\d+\.\d{6}\] (.*)$")


class Ftracetest:
    def __init__(self, system, instance: str = ""):
        self.system = system
        self.vfs = system.vfs
        self.dir = f"{TRACING}/instances/{instance}" if instance else TRACING

    def sh(self, cmd: str, ok: bool = True) -> str:
        """Run shell commands (relative file names are the trace array's); their stdout."""
        status, out, err = shell_run(self.system, cmd)
        if ok:
            assert status == 0, f"{cmd}: {err}"
        return out

    def path(self, name: str) -> str:
        return name if name.startswith("/") else f"{self.dir}/{name}"

    def cat(self, name: str) -> str:
        return self.vfs.read(self.path(name))

    def write(self, name: str, text: str, append: bool = False) -> None:
        self.vfs.write(self.path(name), text + "\n", append=append)

    def try_write(self, name: str, text: str, *, append: bool = False) -> int:
        """`echo TEXT > FILE` (or >>) as a script sees it: 0, or the errno of the failed write."""
        try:
            self.vfs.write(self.path(name), text, append=append)
        except KlpemuError as e:
            return e.errno
        return 0

    def echo(self, text: str, name: str, append: bool = False) -> tuple[int, str]:
        """`echo TEXT > FILE` through the shell: (status, stderr)."""
        status, _, err = shell_run(self.system, f"echo {text} {'>>' if append else '>'} {self.path(name)}")
        return status, err

    def exists(self, name: str) -> bool:
        return self.vfs.exists(self.path(name))

    # test.d/functions
    def disable_tracing(self) -> None:
        self.write("tracing_on", "0")

    def enable_tracing(self) -> None:
        self.write("tracing_on", "1")

    def clear_trace(self) -> None:
        self.write("trace", "")

    def reset_tracer(self) -> None:
        self.write("current_tracer", "nop")

    def sleep(self, duration: str = "1s") -> None:
        self.sh(f"sleep {duration}")

    def lines(self, name: str = "trace") -> list[str]:
        return [line for line in self.cat(name).splitlines() if not line.startswith("#")]

    def errlog_check(self, prefix: str, pattern: str, file: str) -> str:
        """ftrace_errlog_check: write the command (the pattern without its ^) to file, which must
        fail, and check that error_log's caret stands where the ^ was. Returns the error's
        entry without its timestamp, for the test to compare with Linux's message."""
        pos = len(pattern.split("^")[0].encode()) if "^" in pattern else 0
        command = pattern.replace("^", "")
        self.try_write("error_log", "")
        assert self.try_write(file, command, append=True) != 0, f"{command!r} was accepted"
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
    ft.sh("insmod klab_sleeper; rmmod klab_sleeper; cat /proc/cmdline; sleep 10ms")


def trace_lines(ft: Ftracetest) -> list[str]:
    return ft.lines("trace")


def event_names(ft: Ftracetest) -> set[str]:
    """`awk '{ print $5 }'` of the trace lines: the event column."""
    return {line.split()[4].rstrip(":") for line in trace_lines(ft)}
