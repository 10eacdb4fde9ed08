"""`klpemu shell`: a Linux-like console over the running machine, interactive or scripted.

core: the command table and running a line; syntax: quoting, `;` and pipelines; filters: what
a pipe can feed; commands: the commands; cmd_inspect: print, ptype, drgn and dump; cmd_debug
and debugger: breakpoints, stops and stepping; help: the commands' descriptions; terminal: line
editing, history, completion and Ctrl-C at a terminal; progress: the progress line of long runs."""

from __future__ import annotations

from . import cmd_debug, cmd_fs, cmd_inspect, cmd_timeline, commands, help  # noqa: F401  (they register the commands)
from .commands import parse_duration_ns
from .core import COMMANDS, STATUS_INTERRUPTED, Shell, UsageError, command
from .syntax import split_commands

__all__ = ["COMMANDS", "STATUS_INTERRUPTED", "Shell", "UsageError", "command", "parse_duration_ns", "split_commands"]
