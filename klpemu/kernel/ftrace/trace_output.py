"""The `trace` file's text (kernel/trace/trace_output.c): a registry of decoders, one per record
type, each formatting a record of the ring as the rest of its line after the context columns.

A decoder is registered with the record's C struct (whose first member is a struct trace_entry),
so it reads the type's fields by name:

    out.register(types.enum("TRACE_FN"), "ftrace_entry", lambda rec: f"{sym(rec.ip)} <-...")

Trace events register their own types (>= __TRACE_LAST_TYPE) the same way. A record of a type
nobody registered prints as Linux prints it: "Unknown type N".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...machine.types import Type, decode_scalar
from ..tasks import all_tasks

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .ring_buffer import RawRecord, RingBuffer

IRQS_OFF, NEED_RESCHED, HARDIRQ, SOFTIRQ, PREEMPT_RESCHED = 0x01, 0x04, 0x08, 0x10, 0x20

HEADER = """\
# tracer: {tracer}
#
# entries-in-buffer/entries-written: {shown}/{written}   #P:{cpus}
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
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

    def register(self, type_id: int, struct_name: str, trace: Decoder) -> None:
        """Format records of type_id (their layout: struct struct_name) with trace. Keep trace a
        bound method or a functools.partial, so a snapshot of the machine copies it."""
        self.events[type_id] = TraceEvent(type_id, self.m.types.struct(struct_name), trace)

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
        """pid -> comm of the live tasks, as Linux's saved_cmdlines names a record's task."""
        return {t.pid: t.comm for t in all_tasks(self.m) if not t.is_idle}

    def context(self, rec: Record, comms: dict[int, str]) -> str:
        """The columns before the event's text: task-pid, CPU, flags, timestamp."""
        pid = rec.pid
        comm = "<idle>" if pid == 0 else comms.get(pid, "<...>")
        sec, ns = divmod(rec.ts, 1_000_000_000)
        flags = flag_chars(rec.flags, rec.preempt_count)
        return f"{comm:>16}-{pid:<7} [{rec.cpu:03d}] {flags} {sec:5d}.{ns // 1000:06d}: "

    def text(self, tracer: str, buffer: RingBuffer) -> str:
        """The `trace` file of a trace array whose current tracer is tracer."""
        comms = self.comms()
        records = [self.record(r) for r in buffer.records()]
        lines = [
            HEADER.format(
                tracer=tracer,
                shown=len(records),
                written=buffer.entries_written(),
                cpus=sum(1 for c in self.m.cpus if c.online),
            )
        ]
        for rec in records:
            lines.append(self.context(rec, comms) + self.event_text(rec) + "\n")
        return "".join(lines)
