"""The function graph tracer's control plane: which trace array it records into, and its filters
(set_graph_function, set_graph_notrace, max_graph_depth, funcgraph-irqs), all in the guest's
fgraph_state that trace_graph_entry reads. The hooks themselves are guest code
(firmware/kernel/trace/fgraph.c, trace_functions_graph.c, return_to_handler)."""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..module.main import Module
    from .core import Ftrace
    from .trace_array import TraceArray


class FunctionGraph:
    def __init__(self, machine: Machine, ftrace: Ftrace):
        self.m = machine
        self.ft = ftrace
        self.owner: TraceArray | None = None
        self.graph_filter: set[int] = set()  # set_graph_function; empty: every function
        self.graph_notrace: set[int] = set()  # set_graph_notrace
        self.max_depth = 0  # max_graph_depth; 0: no limit

    @property
    def state(self):
        return self.m.var("fgraph_state")

    def start(self, tr: TraceArray) -> None:
        self.owner = tr
        self.sync()

    def stop(self) -> None:
        self.owner = None
        self.state.tr = 0

    def sync(self) -> None:
        """Write the filters into fgraph_state; hashes are replaced with one store each."""
        st = self.state
        for member, ips in (("graph_hash", self.graph_filter), ("notrace_hash", self.graph_notrace)):
            old = getattr(st, member)
            setattr(st, member, self.ft._write_hash(ips))
            if old:
                self.m.heap.free(old)
        st.max_depth = self.max_depth
        st.ignore_irqs = 0 if self.owner is None or self.owner.options["funcgraph-irqs"] else 1
        st.tr = self.owner.addr if self.owner is not None else 0

    # --- the files -------------------------------------------------------------------------------

    def set_graph(self, text: str, *, append: bool, notrace: bool) -> None:
        """set_graph_function / set_graph_notrace: names or globs (`>` replaces, `>>` adds);
        an empty write clears."""
        names = text.split()
        current = self.graph_notrace if notrace else self.graph_filter
        new = set(current) if append else set()
        if names:
            new |= self.ft.resolve(names)
        if notrace:
            self.graph_notrace = new
        else:
            self.graph_filter = new
        self.sync()

    def graph_text(self, notrace: bool) -> str:
        ips = self.graph_notrace if notrace else self.graph_filter
        if not ips:
            return "" if notrace else "#### all functions enabled ####\n"
        return "".join(self.ft.symbol_ps(ip) + "\n" for ip in sorted(ips) if ip)

    def set_max_depth(self, text: str) -> None:
        try:
            depth = int(text.strip(), 0)
        except ValueError:
            raise KlpemuError(f"max_graph_depth: {text.strip()!r} is not a number", EINVAL) from None
        if depth < 0:
            raise KlpemuError("max_graph_depth: negative", EINVAL)
        self.max_depth = depth
        self.sync()

    def module_coming(self, mod: Module) -> None:
        pass

    def module_going(self, mod: Module) -> None:
        """A module's functions gone: dropped from the graph filters."""
        ranges = [(base, base + size) for base, size in mod.mem.values() if size]

        def gone(ip: int) -> bool:
            return any(lo <= ip < hi for lo, hi in ranges)

        keep = [{ip for ip in s if not gone(ip)} for s in (self.graph_filter, self.graph_notrace)]
        if keep != [self.graph_filter, self.graph_notrace]:
            self.graph_filter, self.graph_notrace = keep
            self.sync()
