"""The shell at a terminal: line editing and completion through readline, history kept across
sessions, and Ctrl-C (stop the running command, or clear the line) and Ctrl-D (exit)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TextIO

from .core import COMMANDS, STATUS_INTERRUPTED, Shell
from .filters import FILTERS

PROMPT = "# "
EXIT_WORDS = ("exit", "quit", "logout")
# Commands whose operands are kernel functions, and those whose operands are modules.
TAKES_FUNCTION = ("disas", "trace-call", "kprobe", "break", "tbreak")
TAKES_SHIPPED_MODULE = ("insmod", "modinfo", "kpatch")
TAKES_LOADED_MODULE = ("rmmod",)


def history_path() -> Path:
    """$XDG_DATA_HOME/klpemu/history, the XDG base directory default being ~/.local/share."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "klpemu" / "history"


def install_sigint(shell: Shell) -> None:
    """Ctrl-C while a command runs stops the machine at the next slice (the command then
    reports the interrupt); otherwise it interrupts the Python code (the prompt, a script
    between commands) as usual."""

    def on_sigint(_signum: int, _frame: object) -> None:
        if shell.busy:
            shell.interrupt()
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def tty_echoes_ctrl_c(stream: TextIO) -> bool:
    """Whether the terminal prints ^C itself when Ctrl-C is typed while a command runs."""
    try:
        import termios
    except ImportError:
        return False
    try:
        lflag = termios.tcgetattr(stream.fileno())[3]
    except (termios.error, OSError, ValueError, AttributeError):
        return False  # not a terminal
    return bool(lflag & termios.ECHO and lflag & termios.ECHOCTL)


class Completer:
    """readline's completer: commands first, then by command guest paths, modules and kernel
    functions. Built from host-side state only, so completing never runs the guest."""

    def __init__(self, shell: Shell):
        self.shell = shell
        self.matches: list[str] = []

    def __call__(self, text: str, state: int) -> str | None:
        import readline

        if state == 0:
            try:
                line = readline.get_line_buffer()[: readline.get_begidx()]
                # A finished word gets its space, as in sh; a directory waits for more.
                found = sorted(set(self.candidates(line, text)))
                self.matches = [w if w.endswith("/") else w + " " for w in found]
            except Exception:  # a completer's error would be swallowed by readline anyway
                self.matches = []
        return self.matches[state] if state < len(self.matches) else None

    def candidates(self, before: str, text: str) -> list[str]:
        segment = before
        for sep in ";|":
            segment = segment.rsplit(sep, 1)[-1]
        words = segment.split()
        after_pipe = "|" in before and before.rsplit("|", 1)[-1] == segment and ";" not in segment
        if not words:
            names = list(FILTERS) if after_pipe else list(COMMANDS) + list(EXIT_WORDS)
            return [n for n in names if n.startswith(text)]
        cmd = words[0]
        if text.startswith("/"):
            return self.paths(text)
        if cmd == "help":
            return [n for n in COMMANDS if n.startswith(text)]
        if cmd in TAKES_FUNCTION:
            return [s.name for s in self.shell.machine.image.functions() if s.name.startswith(text)]
        if cmd in TAKES_SHIPPED_MODULE or cmd in TAKES_LOADED_MODULE:
            return [n for n in self.modules(cmd in TAKES_SHIPPED_MODULE) if n.startswith(text)]
        return []

    def paths(self, text: str) -> list[str]:
        from ..fs.vfs import Dir

        head, _, tail = text.rpartition("/")
        out = []
        for node in self.shell.system.vfs.listdir(head or "/"):
            if node.name.startswith(tail):
                out.append(f"{head}/{node.name}" + ("/" if isinstance(node, Dir) else ""))
        return out

    def modules(self, shipped: bool) -> list[str]:
        from ..kernel.module.kmod import shipped_modules_dir

        names = [m.name for m in self.shell.machine.kernel.modules.list()]
        if shipped:
            names += [p.stem for p in shipped_modules_dir().glob("*.ko")]
        return names


class Terminal:
    def __init__(self, shell: Shell, stdin: TextIO = sys.stdin):
        self.shell = shell
        self.stdin = stdin

    def run(self) -> int:
        install_sigint(self.shell)
        if not self.stdin.isatty():
            return self._run_piped()
        return self._run_tty()

    def _read_piped(self, _prompt: str) -> str | None:
        line = self.stdin.readline()
        return line if line else None

    def _read_tty(self, prompt: str) -> str | None:
        """A line at a breakpoint's stop: Ctrl-C clears it, Ctrl-D ends the input there."""
        try:
            return input(prompt)
        except KeyboardInterrupt:
            self.shell.out.write("^C\n")
            return ""
        except EOFError:
            self.shell.out.write("\n")
            return None

    def _run_piped(self) -> int:
        """Commands from a pipe or file, one a line, without prompt or editing."""
        sh = self.shell
        sh.read_input = self._read_piped
        while True:
            try:
                line = self.stdin.readline()
            except KeyboardInterrupt:
                return STATUS_INTERRUPTED
            if not line or line.strip() in EXIT_WORDS:
                return sh.status
            sh.run_line(line)

    def _run_tty(self) -> int:
        import readline

        sh = self.shell
        history = history_path()
        try:
            readline.read_history_file(history)
        except OSError:
            pass  # the first session, or an unreadable file: start empty
        readline.set_history_length(1000)
        readline.set_completer(Completer(sh))
        readline.set_completer_delims(" \t\n;|>")
        readline.parse_and_bind("tab: complete")
        sh.echoed_ctrl_c = tty_echoes_ctrl_c(self.stdin)
        sh.read_input = self._read_tty
        while True:
            try:
                line = input(PROMPT)
            except KeyboardInterrupt:
                # readline does not echo ^C at the prompt: say it, and start a fresh line
                sh.out.write("^C\n")
                sh.out.flush()
                continue
            except EOFError:
                sh.out.write("\n")
                return sh.status
            if line.strip():
                self._save_history(history)
            if line.strip() in EXIT_WORDS:
                return sh.status
            try:
                sh.run_line(line)
            except KeyboardInterrupt:  # between two commands of the line: the rest is dropped
                sh.out.write("\n" if sh.echoed_ctrl_c else "^C\n")
                sh.status = STATUS_INTERRUPTED

    @staticmethod
    def _save_history(path: Path) -> None:
        import readline

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
        except OSError as e:
            print(f"klpemu: cannot save the history in {path}: {e.strerror}", file=sys.stderr)
