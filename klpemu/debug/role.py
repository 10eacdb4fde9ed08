"""What part of ftrace an address belongs to, in the words trace-call uses (klpemu/trace_call.py):
the fentry site, a trampoline, an ftrace handler, or a livepatch's new function."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..machine.machine import Machine


def _function(m: Machine, addr: int) -> str | None:
    sym = m.image.symbolize(addr)
    return None if sym.startswith("0x") else sym.split("+", 1)[0]


def ftrace_role(m: Machine, addr: int) -> str:
    """ "site", "trampoline", "handler: NAME", "new function: NAME", or "" for anything else."""
    k = m._kernel
    if k is None:
        return ""
    ft = k.ftrace
    if any(start <= addr < end for start, end, _, _ in ft.tramps.templates.values()):
        return "trampoline"
    if ft.trampoline_at(addr) is not None:
        return "trampoline"
    name = _function(m, addr)
    if name is None:
        return ""
    # A handler or a new function is named even at its own fentry site, as trace-call names it.
    if any(name == _function(m, ops.struct.func) for ops in ft.ops):
        return f"handler: {name}"
    lp = k.livepatch
    for patch in lp.patches:
        for func in lp.all_funcs(patch):
            if func.new_func and name == _function(m, func.new_func):
                return f"new function: {name}"
    return "site" if ft.records.find(addr) is not None else ""
