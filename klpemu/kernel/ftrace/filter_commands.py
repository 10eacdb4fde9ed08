"""The command language of set_ftrace_filter, set_ftrace_notrace and stack_trace_filter.

Each whitespace-separated word is `[!]GLOB[:COMMAND[:PARAM]]`, as kernel/trace/ftrace.c's
ftrace_process_regex reads it: a bare glob adds the functions it matches (`!` removes them),
`GLOB:mod:MODULE` does the same within one module and, while that module is not loaded, is kept
and applied when it loads (ftrace_mod_callback, cache_mod, process_cached_mods), and the
function triggers (`FUNC:traceoff[:N]`, ...) go to the function probes. A write is all or
nothing: the first bad word fails it with the kernel's errno and nothing it named is applied.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from errno import EINVAL, ENODEV
from typing import TYPE_CHECKING, Protocol

from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..module.internal import Module
    from .core import Ftrace
    from .function_probes import FunctionProbes
    from .ops import FtraceOps

ALL_FUNCTIONS = "#### all functions enabled ####\n"
NO_FUNCTIONS_DISABLED = "#### no functions disabled ####\n"


class OpsOwner(Protocol):
    """What a filter file edits the hash of: the owner's ops (made when first asked for)."""

    @property
    def ops(self) -> FtraceOps: ...


@dataclass(frozen=True)
class FilterWord:
    """One word of a filter write: `!` or not, the function glob, a command and its parameter."""

    negate: bool
    glob: str
    command: str | None = None
    param: str | None = None

    @classmethod
    def parse(cls, word: str) -> FilterWord:
        negate = word.startswith("!")
        if negate:
            word = word[1:]
        if ":" not in word:
            return cls(negate, word)
        glob, rest = word.split(":", 1)
        command, _, param = rest.partition(":")
        return cls(negate, glob, command, param if _ else None)


def module_matches(pattern: str, module: str) -> bool:
    """A `:mod:` pattern against a function's module ("" for vmlinux): a glob names modules only;
    `!glob` names vmlinux and every module it does not match (`:mod:!*` is the core kernel)."""
    if pattern.startswith("!"):
        return not module or not fnmatch.fnmatchcase(module, pattern[1:])
    return bool(module) and fnmatch.fnmatchcase(module, pattern)


class FilterFile:
    """One filter file of one trace array: the hash it edits (on ops, shared with followers such
    as the function profiler, which traces what set_ftrace_filter says), and its cached `:mod:`
    commands."""

    def __init__(
        self,
        machine: Machine,
        ftrace: Ftrace,
        owner: OpsOwner,
        *,
        notrace: bool = False,
        probes: FunctionProbes | None = None,
        commands: bool = True,
    ):
        self.m = machine
        self.ft = ftrace
        self.owner = owner
        self.notrace = notrace
        self.probes = probes
        # False for an ops outside any trace array (the stack tracer's): `:mod:` and the triggers
        # need one, and get -ENODEV without
        self.commands = commands
        self.followers: list[FtraceOps] = []  # ops that share this hash
        self.mods: list[tuple[str, str]] = []  # (function glob, module) for modules not loaded yet

    @property
    def ops(self) -> FtraceOps:
        return self.owner.ops

    def _hash(self) -> set[int]:
        return self.ops.notrace if self.notrace else self.ops.filter

    # --- matching ------------------------------------------------------------------------------

    def match(self, glob: str, module: str | None = None) -> set[int]:
        """match_records: the ftrace locations whose function name matches glob (and whose
        module matches the `:mod:` pattern, if one is given)."""
        out = set()
        image = self.m.image
        ips = self.ft.records.ips()
        if glob.isdigit() and module is None:
            # add_rec_by_index: the N-th line of available_filter_functions, from 1
            index = int(glob) - 1
            return {ips[index]} if 0 <= index < len(ips) else set()
        for ip in ips:
            sym = image.function_at(ip)
            if sym is None or not fnmatch.fnmatchcase(sym.name, glob):
                continue
            if module is not None and not module_matches(module, sym.module):
                continue
            out.add(ip)
        return out

    # --- writing -------------------------------------------------------------------------------

    def write(self, text: str, *, append: bool) -> None:
        """A write to the file: `>` (append False) starts from an empty hash and no cached
        commands, as opening with O_TRUNC does; triggers are left alone either way."""
        if self.ft.disabled:
            raise KlpemuError("ftrace is disabled", ENODEV)  # ftrace_regex_open refuses the file
        ips = set(self._hash()) if append else set()
        mods = list(self.mods) if append else []
        triggers: list[Callable[[], None]] = []
        for word in text.split():
            cmd = FilterWord.parse(word)
            if cmd.command is None:
                self._apply_glob(ips, cmd.negate, self.match(cmd.glob), word)
            elif not self.commands:
                raise KlpemuError(f"{word}: no commands in this file", ENODEV)
            elif cmd.command == "mod":
                self._apply_mod(ips, mods, cmd, word)
            elif self.probes is not None and not self.notrace and self.probes.knows(cmd.command):
                triggers.append(self.probes.prepare(cmd, self.match))
            else:
                raise KlpemuError(f"{word}: unknown filter command", EINVAL)
        self.mods = mods
        with self.ft.batched_update():
            self._commit(ips)
            for apply in triggers:
                apply()

    @staticmethod
    def _apply_glob(ips: set[int], negate: bool, matched: set[int], word: str) -> None:
        if not matched:
            raise KlpemuError(f"{word}: no function matches", EINVAL)
        if negate:
            ips -= matched
        else:
            ips |= matched

    def _apply_mod(self, ips: set[int], mods: list[tuple[str, str]], cmd: FilterWord, word: str) -> None:
        """ftrace_mod_callback: the module's functions if any match, else cache_mod."""
        module = cmd.param or ""
        func = cmd.glob or "*"
        matched = self.match(func, module)
        if matched:
            self._apply_glob(ips, cmd.negate, matched, word)
            return
        if cmd.negate:
            # no inverse filter is cached: `!` drops the matching cached commands
            kept = [(f, mo) for f, mo in mods if not (mo == module and (func == "*" or f == func))]
            if len(kept) == len(mods):
                raise KlpemuError(f"{word}: no cached module command matches", EINVAL)
            mods[:] = kept
            return
        if self.m.kernel.modules.find(module) is not None:
            raise KlpemuError(f"{word}: no function of module {module} matches", EINVAL)
        if (func, module) not in mods:
            mods.append((func, module))

    def _commit(self, ips: set[int]) -> None:
        if not self.notrace and not ips and self.mods:
            ips = {0}  # cached commands make the filter non-empty: nothing else is traced
        for ops in [self.ops, *self.followers]:
            current = ops.notrace if self.notrace else ops.filter
            if current != ips:
                self.ft.replace_hash(ops, set(ips), notrace=self.notrace)

    def share_with(self, ops: FtraceOps) -> None:
        """ftrace_ops_set_global_filter: ops follows this file's hash from now on."""
        self.followers.append(ops)
        self.ft.replace_hash(ops, set(self._hash()), notrace=self.notrace)

    def unshare(self, ops: FtraceOps) -> None:
        self.followers.remove(ops)

    # --- modules -------------------------------------------------------------------------------

    def module_coming(self, mod: Module) -> None:
        """process_cached_mods: the cached commands for this module apply to its functions now,
        and leave the cache."""
        mine = [(f, mo) for f, mo in self.mods if mo == mod.name]
        if not mine:
            return
        ips = set(self._hash()) - {0}
        for func, module in mine:
            ips |= self.match(func, module)
        self.mods = [entry for entry in self.mods if entry not in mine]
        self._commit(ips)

    # --- reading -------------------------------------------------------------------------------

    def text(self) -> str:
        """t_show: the functions (`name [module]`), the cached commands, then the triggers."""
        ips = self._hash()
        if not ips and not self.mods:
            head = NO_FUNCTIONS_DISABLED if self.notrace else ALL_FUNCTIONS
        else:
            # ip 0 stands for a removed module's function or for cached commands: not listed
            head = "".join(self.ft.symbol_ps(ip) + "\n" for ip in sorted(ips) if ip)
        head += "".join(f"{func}:mod:{module}\n" for func, module in self.mods)
        if self.probes is not None and not self.notrace:
            head += self.probes.text()
        return head
