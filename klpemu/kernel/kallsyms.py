"""/proc/kallsyms and kptr_restrict: every kernel and module symbol with its address and type
letter, then the ftrace trampolines, or with zeroes where the reader may not see addresses
(kernel/kallsyms.c)."""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .module.internal import INIT_TYPES

if TYPE_CHECKING:
    from ..machine.machine import Machine
    from .module import Modules


class Kallsyms:
    """The kernel's kallsyms as a reader sees it, and the kptr_restrict sysctl that decides."""

    def __init__(self, machine: Machine, modules: Modules):
        self.m = machine
        self.mods = modules
        self.kptr_restrict = 0  # Linux's default; 1 hides addresses from readers without CAP_SYSLOG

    def show_value(self) -> bool:
        """kallsyms_show_value: the shell runs as root, which has CAP_SYSLOG, so only
        kptr_restrict=2 hides addresses from it."""
        return self.kptr_restrict < 2

    def set_kptr_restrict(self, data: str) -> None:
        """proc_dointvec_minmax_sysadmin with the bounds 0 and 2."""
        try:
            value = int(data.strip())
        except ValueError:
            raise KlpemuError("kptr_restrict takes 0, 1 or 2", EINVAL) from None
        if not 0 <= value <= 2:
            raise KlpemuError("kptr_restrict takes 0, 1 or 2", EINVAL)
        self.kptr_restrict = value

    def proc_kallsyms(self) -> str:
        """s_show over vmlinux's symbols, then each module's in the modules list's order; a
        module symbol's letter is upper case when the module exports it (EXPORT_SYMBOL)."""
        show = self.show_value()
        lines = [f"{addr if show else 0:016x} {letter} {name}\n" for addr, letter, name in self.m.image.kallsyms]
        for mod in self.mods.list():
            if self.mods.state(mod) == "MODULE_STATE_UNFORMED":
                continue
            for name, addr, _, _, _, mem_type, letter in mod.symtab:
                if mem_type in INIT_TYPES and not mod.mem.get(mem_type, (0, 0))[1]:
                    continue  # init memory freed after init: its symbols went with it
                export = mod.syms.get(name)
                exported = export is not None and not export.gpl_only and export.value == addr
                kind = letter.upper() if exported else letter
                lines.append(f"{addr if show else 0:016x} {kind} {name}\t[{mod.name}]\n")
        # ftrace_mod_get_kallsym: the private trampolines made at run time.
        for ops in self.m.kernel.ftrace.ops:
            tramp = ops.struct.trampoline
            if tramp and ops.struct.trampoline_size:
                lines.append(f"{tramp if show else 0:016x} t ftrace_trampoline\t[__builtin__ftrace]\n")
        return "".join(lines)
