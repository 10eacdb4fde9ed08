"""Trace options (trace_options and options/): the generic ones klpemu implements and each tracer's
own, with Linux's names and defaults (kernel/trace/trace.h's TRACE_ITER_*, the tracers' opts)."""

from __future__ import annotations

from errno import EINVAL

from ...errors import KlpemuError

# Generic options, in trace_options' order, and their defaults.
GENERIC = {
    "print-parent": True,
    "sym-offset": False,
    "sym-addr": False,
    "irq-info": True,
    "markers": True,
    "event-fork": False,
}

# Each tracer's own options: listed in trace_options while it is the current tracer, in options/
# for every tracer the trace array may use.
TRACER_OPTIONS = {
    "function": {"func_stack_trace": False},
    "function_graph": {
        "funcgraph-overrun": False,
        "funcgraph-cpu": True,
        "funcgraph-overhead": True,
        "funcgraph-proc": False,
        "funcgraph-duration": True,
        "funcgraph-abstime": False,
        "funcgraph-irqs": True,
        "funcgraph-tail": False,
        "funcgraph-retval": False,
        "funcgraph-retval-hex": False,
    },
}


class TraceOptions:
    """One trace array's option values."""

    def __init__(self, tracers: tuple[str, ...]):
        self.tracers = tracers
        self.values: dict[str, bool] = dict(GENERIC)
        for t in tracers:
            self.values.update(TRACER_OPTIONS.get(t, {}))

    def __getitem__(self, name: str) -> bool:
        return self.values[name]

    def names(self) -> list[str]:
        """What options/ holds."""
        return list(self.values)

    def listed(self, tracer: str) -> list[str]:
        """trace_options' lines: the generic options, then the current tracer's; `no` when off."""
        names = list(GENERIC) + list(TRACER_OPTIONS.get(tracer, {}))
        return [name if self.values[name] else f"no{name}" for name in names]

    def set(self, name: str, on: bool) -> None:
        if name not in self.values:
            raise KlpemuError(f"{name}: no such trace option", EINVAL)
        self.values[name] = on

    def parse(self, text: str, tracer: str) -> tuple[str, bool]:
        """A write to trace_options: `NAME` sets it, `noNAME` clears it; the generic options and
        the current tracer's only. Returns (name, value)."""
        word = text.strip()
        allowed = set(GENERIC) | set(TRACER_OPTIONS.get(tracer, {}))
        if word in allowed:
            return word, True
        if word.startswith("no") and word[2:] in allowed:
            return word[2:], False
        raise KlpemuError(f"{word}: no such trace option", EINVAL)
