"""Trace events: the registry of every event (the firmware's static ones, kprobe events), their
type ids and formats, their controls, error_log, and the dynamic event files' commands."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from .dynevent import DynamicEvents
from .error_log import ErrorLog
from .event import EventCall, Field
from .event_files import EventFiles
from .probe_output import print_kprobe, print_kretprobe
from .static_events import STATIC_EVENTS, Rec, StaticEvent, layout
from .trace_kprobe import KprobeEvent, TraceKprobes

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..ftrace.ring_buffer import RingBuffer
    from ..ftrace.trace_output import Record, TraceOutput
    from ..kprobes import Kprobes

# Type ids: the static events' from here at boot, then dynamic events' as they are made.
FIRST_STATIC_ID = 300
FIRST_DYNAMIC_ID = 1000


class EventRegistry:
    """ftrace_events: every event call by system and name, in registration order."""

    def __init__(self, machine: Machine, error_log: ErrorLog, output: TraceOutput):
        self.m = machine
        self.calls: list[EventCall] = []
        self.output = output
        self.files = EventFiles(machine, self, error_log)
        self._next_dynamic = FIRST_DYNAMIC_ID

    def find(self, system: str, name: str) -> EventCall | None:
        return next((c for c in self.calls if c.system == system and c.name == name), None)

    def add(self, system: str, name: str, fields: list[Field], print_fmt: str, id: int = 0) -> EventCall:
        if not id:
            id = self._next_dynamic
            self._next_dynamic += 1
        call = EventCall(system, name, id, fields, print_fmt)
        self.calls.append(call)
        return call

    def remove(self, call: EventCall) -> None:
        self.calls.remove(call)
        self.output.events.pop(call.id, None)

    def systems(self) -> dict[str, list[EventCall]]:
        out: dict[str, list[EventCall]] = {}
        for c in self.calls:
            out.setdefault(c.system, []).append(c)
        return out

    def output_registered(self, call: EventCall, event: KprobeEvent) -> None:
        """A kprobe event's records are printed by its own formatter."""
        struct = "kretprobe_trace_entry_head" if event.is_return else "kprobe_trace_entry_head"
        self.output.register(call.id, struct, partial(self._print_kprobe, event))

    def _print_kprobe(self, event: KprobeEvent, rec: Record) -> str:
        printer = print_kretprobe if event.is_return else print_kprobe
        return printer(self.m.image, event.name, event.args, rec.raw)


class TraceEvents:
    def __init__(self, machine: Machine, kprobes: Kprobes, output: TraceOutput, buffer: RingBuffer):
        self.m = machine
        self.error_log = ErrorLog(machine)
        self.registry = EventRegistry(machine, self.error_log, output)
        self.files = self.registry.files
        self.buffer = buffer
        self.kprobe_events = TraceKprobes(machine, kprobes, self.error_log, self.registry)
        self.dynamic_events = DynamicEvents(self.kprobe_events, buffer.reset)
        self.files.on_first_enable = self._expand
        self.files.arm = self._arm
        self.files.on_hook = self._record_cmd
        for i, event in enumerate(STATIC_EVENTS):
            self._add_static(event, FIRST_STATIC_ID + i)

    def _expand(self) -> None:
        self.buffer.expand()

    def _record_cmd(self, on: bool) -> None:
        """An event running saves the comms of the tasks switched (trace_event_enable_cmd_record)."""
        saved = self.registry.output.saved_cmdlines
        if saved is not None:
            (saved.start if on else saved.stop)()

    def _arm(self, call: EventCall, on: bool) -> None:
        for event in self.kprobe_events.events.values():
            if event.call is call:
                self.kprobe_events.arm(event, on)

    def _add_static(self, event: StaticEvent, type_id: int) -> None:
        types = self.m.types
        struct = types.struct(event.struct)

        def member(name: str) -> tuple[int, int]:
            off, t = struct.member(name)
            return off, t.size

        call = self.registry.add(event.system, event.name, layout(event, member), event.print_fmt, type_id)
        self.files.attach(call, self.m.var_addr(f"event_{event.name}"))
        self.registry.output.register(type_id, event.struct, partial(self._print_static, event, call))

    @staticmethod
    def _print_static(event: StaticEvent, call: EventCall, rec: Record) -> str:
        return f"{event.name}: " + event.text(Rec(rec.raw, call.field_names))

    def find(self, system: str, name: str) -> EventCall | None:
        return self.registry.find(system, name)

    def set_enabled(self, call: EventCall, enable: bool) -> None:
        """An event's `enable` file."""
        self.files.set_enabled(call, enable)


__all__ = ["EventCall", "EventRegistry", "Field", "TraceEvents"]
