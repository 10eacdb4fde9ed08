"""The shell's core: the command table, running a line (its pipelines and their filters), and
what the shell does when a command is interrupted or the guest stops answering."""

from __future__ import annotations

import io
import os
import sys
from collections import deque
from collections.abc import Callable
from errno import ETIMEDOUT
from typing import TYPE_CHECKING, TextIO

from ..errors import Interrupted, KlpemuError
from ..system import System
from .progress import Progress
from .syntax import Stage, SyntaxProblem, parse_pipeline, split_commands

if TYPE_CHECKING:
    from ..debug.kernel_program import KernelProgram
    from .debugger import ShellDebugger

CommandFn = Callable[["Shell", list[str]], int]
COMMANDS: dict[str, tuple[CommandFn, str]] = {}
# Commands that take the rest of the line as gdb does, not as sh words: a C expression's `|`,
# `>`, `&` and quotes are its own. A `/FMT` after the name (`x/4xg`, `print/x`) comes first.
RAW_COMMANDS: set[str] = set()
STATUS_INTERRUPTED = 130  # 128 + SIGINT, as sh reports a command killed by Ctrl-C


def command(name: str, usage: str, *, raw: bool = False):
    def register(fn: CommandFn) -> CommandFn:
        COMMANDS[name] = (fn, usage)
        if raw:
            RAW_COMMANDS.add(name)
        return fn

    return register


def raw_argv(cmd: str) -> list[str] | None:
    """argv of a raw command (name, then `/FMT` if given, then the rest of the line if any), or
    None when the line is not one."""
    first, _, rest = cmd.strip().partition(" ")
    name, slash, fmt = first.partition("/")
    if name not in RAW_COMMANDS:
        return None
    return [name] + ([f"/{fmt}"] if slash else []) + ([rest.strip()] if rest.strip() else [])


class UsageError(Exception):
    pass


class Shell:
    def __init__(self, system: System, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.system = system
        self.machine = system.machine
        self.out = out
        self.err = err
        self.status = 0
        self._oops_shown = False
        self.redirect: tuple[str, str] | None = None  # the running command's `>` or `>>`, target
        self.busy = False  # a command is running: Ctrl-C stops the machine rather than the line
        self.echoed_ctrl_c = False  # the terminal has printed ^C itself
        self.progress_after = 1.0  # seconds of wall time before a long run shows its progress
        self.progress_always = False  # and not only on a terminal
        # Commands not yet run, innermost run_line last: a stop at a breakpoint reads from them
        # first, then from read_input (the terminal's, when there is one).
        self._pending: list[deque[str]] = []
        self.read_input: Callable[[str], str | None] | None = None
        self.debug_cpu = 0  # the CPU that print's $registers, bt and x read: the stopped one
        self.debugger: ShellDebugger | None = None  # made by the first break or watch
        self.kernel_program: KernelProgram | None = None  # drgn's view, made by the first print
        self.print_count = 0  # print's $N

    def error(self, msg: str) -> int:
        self.out.flush()  # keep a script's output and its errors in order
        print(msg, file=self.err)
        self.err.flush()
        return 1

    def run_line(self, line: str) -> int:
        """Run a line or a script; an interrupted command ends it with status 130."""
        pending = deque(split_commands(line))
        self._pending.append(pending)
        try:
            while pending:
                self.status = self.execute(pending.popleft())
                if self.status == STATUS_INTERRUPTED:
                    break
        finally:
            self._pending.pop()
        return self.status

    def next_input(self, prompt: str) -> str | None:
        """The next command for a stop at a breakpoint: the rest of the line or script being
        run, else a line from the terminal (whose other commands then wait their turn); None
        when there is no more input."""
        for pending in reversed(self._pending):
            if pending:
                return pending.popleft()
        if self.read_input is None:
            return None
        line = self.read_input(prompt)
        if line is None:
            return None
        commands = split_commands(line)
        if self._pending and len(commands) > 1:
            self._pending[-1].extendleft(reversed(commands[1:]))
        return commands[0] if commands else ""

    def interrupt(self) -> None:
        """From the SIGINT handler, while a command runs: stop it at the next slice boundary."""
        self.machine.request_stop()

    def progress(self, status: Callable[[], str]) -> Progress:
        return Progress(self.err, status, after=self.progress_after, force=self.progress_always)

    def reboot(self) -> None:
        """A fresh machine booted with this one's options, in place of this one."""
        self.system = System(self.machine.config).boot()
        self.machine = self.system.machine
        self._oops_shown = False

    def execute(self, cmd: str) -> int:
        raw = raw_argv(cmd)
        try:
            stages = [Stage(raw)] if raw is not None else parse_pipeline(cmd)
        except SyntaxProblem as e:
            self.error(str(e))
            return e.status
        if not stages[0].argv:
            return 0
        self.machine.clear_stop()  # a Ctrl-C that came between commands is spent
        self.busy = True
        try:
            return self._pipeline(stages)
        finally:
            self.busy = False

    def _pipeline(self, stages: list[Stage]) -> int:
        from .filters import FILTERS

        first, rest = stages[0], stages[1:]
        filters = []
        for stage in rest:
            name = stage.argv[0]
            if name not in FILTERS:
                self.error(f"klpemu: {name}: cannot read a pipe (the filters are {', '.join(sorted(FILTERS))})")
                return 2
            if stage.redirect is not None:
                self.error(f"klpemu: {name}: output redirection is only supported for echo")
                return 2
            try:
                filters.append(FILTERS[name][0](stage.argv[1:]))
            except UsageError as e:
                return self.error(f"{name}: {e}\nusage: {FILTERS[name][1]}")
        if first.argv[0] in FILTERS:
            self.error(f"klpemu: {first.argv[0]}: only reads a pipe (e.g. dmesg | {first.argv[0]} ...)")
            return 2
        argv = first.argv
        if first.redirect is not None and argv[0] != "echo":
            self.error(f"klpemu: {argv[0]}: output redirection is only supported for echo")
            return 2
        self.redirect = first.redirect
        real_out = self.out
        captured = io.StringIO()
        if filters:
            self.out = captured
        try:
            status = self.run_command(argv)
        finally:
            self.out = real_out
            self.redirect = None
        if not filters:
            return status
        if status == STATUS_INTERRUPTED:
            return status
        text = captured.getvalue()
        for f in filters:
            text, status = f(text)
        self.out.write(text)
        return status

    def run_command(self, argv: list[str]) -> int:
        entry = COMMANDS.get(argv[0])
        if entry is None:
            return self.error(f"klpemu: {argv[0]}: command not found")
        if argv[1:] == ["--help"]:
            from .help import print_help

            return print_help(self, argv[0])
        try:
            return entry[0](self, argv[1:])
        except UsageError as e:
            return self.error(f"{argv[0]}: {e}\nusage: {entry[1]}")
        except Interrupted:
            self.out.flush()
            self.err.write("\n" if self.echoed_ctrl_c else "^C\n")
            self.err.flush()
            return STATUS_INTERRUPTED
        except KlpemuError as e:
            if self.machine.oops is not None and not self._oops_shown:
                self._oops_shown = True
                return self.error(str(self.machine.oops))
            return self.error(f"{argv[0]}: {self.describe(e)}{self.timeout_note(e)}")

    @staticmethod
    def describe(e: KlpemuError) -> str:
        if e.errno and str(e).startswith("/"):
            return f"{e}: {os.strerror(e.errno)}"
        return str(e)

    def timeout_note(self, e: KlpemuError) -> str:
        """After a message for an error: when the guest did not answer, what it is doing."""
        return f"\n{self.guest_activity()}" if e.errno == ETIMEDOUT else ""

    def guest_activity(self) -> str:
        """What the guest's console process is doing when it does not answer: its state and stack."""
        from ..kernel.stacktrace import unwind_task
        from ..kernel.tasks import all_tasks

        sh = next((t for t in all_tasks(self.machine) if t.comm == "sh" and not t.is_kthread), None)
        if sh is None:
            return "the guest has no sh process"
        lines = [f"sh (pid {sh.pid}) is in state {sh.state_letter()} on cpu {sh.cpu}, in:"]
        trace = unwind_task(self.machine, sh)
        lines += [f"  {f.symbol}" for f in trace.kernel_frames]
        lines.append("the console waits for it: 'reboot' starts a fresh machine with the same options")
        return "\n".join(lines)
