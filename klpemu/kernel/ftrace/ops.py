"""struct ftrace_ops on the host side: a handle on the guest struct, its hashes and its kind.

The guest struct (func, next, flags, filter/notrace hashes, trampoline) is what machine code
reads; this class keeps what only the host needs: a name, the Python callback if the handler is
on the host, and the filter as a set for quick membership tests when records are recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...abi import FTRACE_OPS_FL
from ...machine.types import Pointer

FL = FTRACE_OPS_FL  # by short name: FL["SAVE_REGS"]

# A Python handler: (ip, parent_ip, regs) -> None, where regs is a typed view of the saved
# pt_regs (writable: setting regs.ip redirects, as a native handler would).
PyHandler = Callable[[int, int, object], None]


@dataclass(eq=False)
class FtraceOps:
    name: str
    addr: int  # the guest struct ftrace_ops, as a typed Pointer (see struct)
    kind: str  # "native" (a guest function), "python" (a host callback), "stub"
    handler: PyHandler | None = None
    filter: set[int] = field(default_factory=set)  # empty: every function
    notrace: set[int] = field(default_factory=set)
    owned: bool = True  # allocated by the host (freed on release), not kernel core data

    @property
    def struct(self) -> Pointer:
        """The guest's struct ftrace_ops, typed."""
        assert isinstance(self.addr, Pointer), "made by Ftrace, which gives it a typed address"
        return self.addr

    def matches(self, ip: int) -> bool:
        return (not self.filter or ip in self.filter) and ip not in self.notrace

    def __repr__(self) -> str:
        return f"<ftrace_ops {self.name} at 0x{self.addr:x}>"
