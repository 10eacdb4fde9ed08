"""A small stand-in for Linux's tools/testing/selftests/ftrace/ftracetest: its helper functions
over a booted System's tracefs, for the .tc cases ported to pytest (run through the shell, so
the guest runs between commands as it would between a script's lines)."""

from __future__ import annotations

from machine_util import shell_run

TRACING = "/sys/kernel/tracing"


class Ftracetest:
    def __init__(self, system, instance: str = ""):
        self.system = system
        self.dir = f"{TRACING}/instances/{instance}" if instance else TRACING

    def sh(self, cmd: str, ok: bool = True) -> str:
        """Run shell commands (relative file names are the trace array's); their stdout."""
        status, out, err = shell_run(self.system, cmd)
        if ok:
            assert status == 0, f"{cmd}: {err}"
        return out

    def path(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def cat(self, name: str) -> str:
        return self.system.vfs.read(self.path(name))

    def write(self, name: str, text: str, append: bool = False) -> None:
        self.system.vfs.write(self.path(name), text + "\n", append=append)

    def echo(self, text: str, name: str, append: bool = False) -> tuple[int, str]:
        """`echo TEXT > FILE` through the shell: (status, stderr)."""
        status, _, err = shell_run(self.system, f"echo {text} {'>>' if append else '>'} {self.path(name)}")
        return status, err

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
