"""The `trace` file's text (kernel/trace/trace_output.c): a registry of decoders, one per record
type, each formatting a record of the ring as the rest of its line after the context columns.

A decoder is registered with the record's C struct (whose first member is a struct trace_entry),
so it reads the type's fields by name:

    out.register(types.enum("TRACE_FN"), "ftrace_entry", lambda rec: f"{sym(rec.ip)} <-...")

Trace events register their own types (>= __TRACE_LAST_TYPE) the same way. A record of a type
nobody registered prints as Linux prints it: "Unknown type N".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...machine.types import Type, decode_scalar
from ..tasks import all_tasks
from .trace_options import TraceOptions

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .ring_buffer import RawRecord, RingBuffer
    from .saved_cmdlines import SavedCmdlines

IRQS_OFF, NEED_RESCHED, HARDIRQ, SOFTIRQ, PREEMPT_RESCHED = 0x01, 0x04, 0x08, 0x10, 0x20

HEADER_IRQ = """\
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""
HEADER_NOIRQ = """\
#           TASK-PID     CPU#     TIMESTAMP  FUNCTION
#              | |         |         |         |
"""


def flag_chars(flags: int, preempt: int) -> str:
    irqs = "d" if flags & IRQS_OFF else "."
    if flags & NEED_RESCHED and flags & PREEMPT_RESCHED:
        resched = "N"
    elif flags & NEED_RESCHED:
        resched = "n"
    elif flags & PREEMPT_RESCHED:
        resched = "p"
    else:
        resched = "."
    hard, soft = flags & HARDIRQ, flags & SOFTIRQ
    irq = "H" if hard and soft else "h" if hard else "s" if soft else "."
    depth = f"{preempt & 0xF:x}" if preempt & 0xF else "."
    return f"{irqs}{resched}{irq}{depth}."


class Record:
    """One record as a decoder sees it: the ring's stamp and CPU, the common fields (type, flags,
    preempt_count, pid) and, by attribute, the fields of the type's C struct."""

    __slots__ = ("ts", "cpu", "raw", "_struct")

    def __init__(self, raw: RawRecord, struct: Type | None):
        self.ts = raw.ts
        self.cpu = raw.cpu
        self.raw = raw.entry  # the record's bytes from its struct trace_entry on
        self._struct = struct

    @property
    def type(self) -> int:
        return int.from_bytes(self.raw[0:2], "little")

    @property
    def flags(self) -> int:
        return self.raw[2]

    @property
    def preempt_count(self) -> int:
        return self.raw[3]

    @property
    def pid(self) -> int:
        return int.from_bytes(self.raw[4:8], "little", signed=True)

    def offsetof(self, name: str) -> int:
        assert self._struct is not None
        return self._struct.member(name)[0]

    def __getattr__(self, name: str) -> Any:
        struct = self._struct
        if struct is None:
            raise AttributeError(name)
        off, t = struct.member(name)
        return decode_scalar(t, self.raw[off : off + t.size])


Decoder = Callable[[Record], str]


@dataclass(frozen=True)
class TraceEvent:
    """A registered record type: its C struct and the function that formats it."""

    type: int
    struct: Type
    trace: Decoder


class TraceOutput:
    def __init__(self, machine: Machine):
        self.m = machine
        self.events: dict[int, TraceEvent] = {}
        self.opts: TraceOptions = TraceOptions(())  # the options of the trace array being printed
        self.saved_cmdlines: SavedCmdlines | None = None
        types = machine.types
        self.register(types.enum("TRACE_FN"), "ftrace_entry", self._print_fn)
        self.register(types.enum("TRACE_PRINT"), "print_entry", self._print_print)
        self.register(types.enum("TRACE_STACK"), "stack_entry", self._print_stack)
        self.register(types.enum("TRACE_GRAPH_ENT"), "ftrace_graph_ent_entry", self._print_graph_ent)
        self.register(types.enum("TRACE_GRAPH_RET"), "ftrace_graph_ret_entry", self._print_graph_ret)

    def register(self, type_id: int, struct_name: str, trace: Decoder) -> None:
        """Format records of type_id (their layout: struct struct_name) with trace. Keep trace a
        bound method or a functools.partial, so a snapshot of the machine copies it."""
        self.events[type_id] = TraceEvent(type_id, self.m.types.struct(struct_name), trace)

    @contextmanager
    def options(self, opts: TraceOptions) -> Iterator[None]:
        """Decoders print with these options (sym-offset, print-parent...) meanwhile."""
        saved, self.opts = self.opts, opts
        try:
            yield
        finally:
            self.opts = saved

    def _opt(self, name: str, default: bool = False) -> bool:
        return self.opts.values.get(name, default)

    # --- symbols, as seq_print_ip_sym and %ps print them --------------------------------------

    def ps(self, ip: int) -> str:
        """%ps: the function's name, ` [module]` for a module's."""
        sym = self.m.image.function_at(ip)
        if sym is None:
            return f"0x{ip:x}"
        return f"{sym.name} [{sym.module}]" if sym.module else sym.name

    def sym(self, ip: int) -> str:
        """seq_print_ip_sym: the name (sym-offset: with +off/size), sym-addr: and the address."""
        if not ip:
            return "0"
        if self._opt("sym-offset"):
            text = self.m.image.symbolize(ip)
        else:
            sym = self.m.image.function_at(ip)
            text = sym.name if sym is not None else f"0x{ip:x}"
        if self._opt("sym-addr"):
            text += f" <{ip:016x}>"
        return text

    # --- the built-in record types --------------------------------------------------------------

    def _print_fn(self, rec: Record) -> str:
        """TRACE_FN: `func <-parent` (print-parent off: `func`)."""
        text = self.sym(rec.ip)
        if self._opt("print-parent", True):
            text += " <-" + self.sym(rec.parent_ip)
        return text

    def _print_print(self, rec: Record) -> str:
        """TRACE_PRINT: `ip: message`."""
        return f"{self.sym(rec.ip)}: {self.print_buf(rec)}"

    def print_buf(self, rec: Record) -> str:
        start = rec.offsetof("buf")
        raw = rec.raw[start:]
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape").rstrip("\n")

    def _print_stack(self, rec: Record) -> str:
        """TRACE_STACK: `<stack trace>`, then ` => caller` lines, innermost first."""
        start = rec.offsetof("caller")
        n = rec.size
        callers = [int.from_bytes(rec.raw[start + 8 * i : start + 8 * i + 8], "little") for i in range(n)]
        return "<stack trace>" + "".join(f"\n => {self.sym(ip)}" for ip in callers)

    def _print_graph_ent(self, rec: Record) -> str:
        return f"graph_ent: func={self.ps(getattr(rec, 'graph_ent.func'))}"

    def _print_graph_ret(self, rec: Record) -> str:
        return f"graph_ret: func={self.ps(getattr(rec, 'ret.func'))}"

    # --- lines --------------------------------------------------------------------------------------

    def record(self, raw: RawRecord) -> Record:
        rec = Record(raw, None)
        event = self.events.get(rec.type)
        if event is not None:
            rec._struct = event.struct
        return rec

    def event_text(self, rec: Record) -> str:
        event = self.events.get(rec.type)
        if event is None:
            return f"Unknown type {rec.type}"
        return event.trace(rec)

    def comms(self) -> dict[int, str]:
        """pid -> comm: the saved_cmdlines the guest kept (a task since gone included), else the
        live task's."""
        live = {t.pid: t.comm for t in all_tasks(self.m) if not t.is_idle}
        if self.saved_cmdlines is not None:
            live.update(self.saved_cmdlines.comms())
        return live

    def context(self, rec: Record, comms: dict[int, str], counter: bool = False) -> str:
        """The columns before the event's text: task-pid, CPU, flags (irq-info), timestamp."""
        pid = rec.pid
        comm = "<idle>" if pid == 0 else comms.get(pid, "<...>")
        text = f"{comm:>16}-{pid:<7} [{rec.cpu:03d}] "
        if self._opt("irq-info", True):
            text += flag_chars(rec.flags, rec.preempt_count)
        if counter:
            return text + f" {rec.ts:12d}: "
        sec, ns = divmod(rec.ts, 1_000_000_000)
        return text + f" {sec:5d}.{ns // 1000:06d}: "

    def line(self, rec: Record, comms: dict[int, str], counter: bool = False) -> str:
        return self.context(rec, comms, counter) + self.event_text(rec) + "\n"

    def header(self, buffer: RingBuffer, shown: int, opts: TraceOptions) -> str:
        """The default header: the entry counts, then the columns (irq-info: with the flags')."""
        cpus = sum(1 for c in self.m.cpus if c.online)
        info = f"# entries-in-buffer/entries-written: {shown}/{buffer.entries_written()}   #P:{cpus}\n#\n"
        if opts.values.get("irq-info", True):
            return info + HEADER_IRQ
        return info + HEADER_NOIRQ

    def text(self, tracer: str, buffer: RingBuffer) -> str:
        """A `trace` file of records in buffer under tracer, with the default options."""
        records = [self.record(r) for r in buffer.records()]
        comms = self.comms()
        body = "".join(self.line(rec, comms) for rec in records)
        return f"# tracer: {tracer}\n#\n" + self.header(buffer, len(records), self.opts) + body
