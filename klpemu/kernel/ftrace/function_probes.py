"""Function triggers: `FUNC:traceon[:N]`, `FUNC:traceoff[:N]`, `FUNC:stacktrace[:N]`,
`FUNC:snapshot[:N]`, `FUNC:enable_event:SYS:EVENT[:N]`, `FUNC:disable_event:SYS:EVENT[:N]` in
set_ftrace_filter.

As kernel/trace/ftrace.c's function probes: each trigger kind, counted or not, is one probe with
its own ftrace_ops (func function_trace_probe_call, filter = the trigger's functions) and a
mapper of each function's remaining count. The callbacks run in the guest
(kernel/trace/ftrace_probes.c); the host allocates the probes, writes the mappers, and reads the
counts back to list them as Linux does (`FUNC:traceoff:unlimited`, `FUNC:traceoff:count=2`).

The event triggers (trace_events.c's event_enable_func) hold their event in soft mode while they
exist, so its enable reads `0*` until a call of FUNC clears the soft-disabled flag (`1*`). Each
write makes one struct event_probe_data (the event's file, the count, enable or disable), shared
by the functions it named: their mapper entries point at it, and it goes, with its hold on the
event, when the last of them is removed. Listed as event_enable_print lists them
(`FUNC:enable_event:SYS:EVENT:unlimited`, `...:count=N`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..trace_events.event import EventCall
    from .core import Ftrace
    from .filter_commands import FilterWord
    from .ops import FtraceOps

UNLIMITED = -1
MASK64 = (1 << 64) - 1

# trigger -> the guest callback its probe runs
TRIGGERS = {
    "traceon": "ftrace_traceon_probe",
    "traceoff": "ftrace_traceoff_probe",
    "stacktrace": "ftrace_stacktrace_probe",
    "snapshot": "ftrace_snapshot_probe",
    "enable_event": "event_enable_probe",
    "disable_event": "event_enable_probe",
}
EVENT_TRIGGERS = ("enable_event", "disable_event")


@dataclass(eq=False)
class Probe:
    trigger: str
    counted: bool  # written with a `:N`: the probe keeps a count per function
    ops: FtraceOps
    addr: int  # the guest struct ftrace_func_probe


def parse_count(param: str) -> int:
    """kstrtoul base 0: decimal, 0x hex or 0 octal; an empty count is unlimited."""
    if param == "":
        return UNLIMITED
    text = param.lower()
    try:
        if text.startswith("0x"):
            value = int(text[2:], 16)
        elif text.startswith("0") and len(text) > 1:
            value = int(text[1:], 8)
        else:
            value = int(text, 10)
    except ValueError:
        raise KlpemuError(f"{param}: not a count", EINVAL) from None
    if value < 0:
        raise KlpemuError(f"{param}: not a count", EINVAL)
    return value


class FunctionProbes:
    def __init__(self, machine: Machine, ftrace: Ftrace, tr: int, alloc_snapshot: Callable[[], None] | None = None):
        self.m = machine
        self.ft = ftrace
        self.tr = tr  # the guest's struct trace_array the probes act on
        # ftrace_trace_snapshot_callback allocates the snapshot buffer when the trigger is made
        self.alloc_snapshot = alloc_snapshot
        self.edata: dict[int, EventCall] = {}  # the guest's struct event_probe_data -> its event
        self.probes: list[Probe] = []  # in the order they were made, as tr->func_probes lists them
        types = machine.types
        self._map_size = types.sizeof("ftrace_func_map")
        self._maps_at = types.offsetof("ftrace_func_mapper", "maps")

    def knows(self, command: str) -> bool:
        return command in TRIGGERS

    def _find(self, trigger: str, counted: bool) -> Probe | None:
        return next((p for p in self.probes if p.trigger == trigger and p.counted == counted), None)

    # --- the guest mapper ----------------------------------------------------------------------

    def counts(self, probe: Probe) -> dict[int, int]:
        """ip -> remaining count (-1 unlimited), as the guest has them now."""
        mapper = self.m.mem.read_u64(probe.addr + self.m.types.offsetof("ftrace_func_probe", "mapper"))
        if not mapper:
            return {}
        n = self.m.mem.read_u64(mapper)
        raw = self.m.mem.read(mapper + self._maps_at, n * self._map_size)
        if probe.trigger in EVENT_TRIGGERS:  # the guest's struct event_probe_data
            return {ip: data for ip, data in struct.iter_unpack("<QQ", raw)}
        return {ip: count for ip, count in struct.iter_unpack("<Qq", raw)}

    def _write_mapper(self, probe: Probe, counts: dict[int, int]) -> None:
        m = self.m
        slot = probe.addr + m.types.offsetof("ftrace_func_probe", "mapper")
        old = m.mem.read_u64(slot)
        new = 0
        if counts:
            new = m.heap.kzalloc(self._maps_at + self._map_size * len(counts))
            m.mem.write_u64(new, len(counts))
            m.mem.write(
                new + self._maps_at, b"".join(struct.pack("<QQ", ip, counts[ip] & MASK64) for ip in sorted(counts))
            )
        m.mem.write_u64(slot, new)  # one store: the handler sees the old mapper or the new
        if old:
            m.heap.free(old)

    # --- registering and unregistering ----------------------------------------------------------

    def prepare(self, cmd: FilterWord, match: Callable[[str], set[int]]) -> Callable[[], None]:
        """Check one trigger word; return what applies it (after the rest of the write is checked)."""
        word = f"{'!' if cmd.negate else ''}{cmd.glob}:{cmd.command}"
        trigger = cmd.command or ""
        counted = cmd.param is not None
        if trigger in EVENT_TRIGGERS:
            return self._prepare_event(cmd, word, match)
        if cmd.negate:
            # unregister_ftrace_function_probe_func: the probe of that kind (`:N` or not)
            probe = self._find(trigger, counted)
            matched = match(cmd.glob) & set(self.counts(probe)) if probe is not None else set()
            if probe is None or not matched:
                raise KlpemuError(f"{word}: no such trigger", EINVAL)
            return lambda: self._remove(probe, matched)
        count = parse_count(cmd.param) if cmd.param is not None else UNLIMITED
        matched = match(cmd.glob)
        if not matched:
            raise KlpemuError(f"{word}: no function matches", EINVAL)
        return lambda: self._add(trigger, counted, matched, count)

    def _event(self, word: str, system: str, name: str) -> EventCall:
        call = self.m.kernel.trace_events.find(system, name)
        if call is None or not call.files:
            raise KlpemuError(f"{word}: no event {system}:{name}", EINVAL)
        return call

    def _prepare_event(self, cmd: FilterWord, word: str, match: Callable[[str], set[int]]) -> Callable[[], None]:
        """event_enable_func: `SYS:EVENT[:N]` after the command; `!` removes that kind (`:N` or
        not) of trigger from the functions, whichever event they name."""
        trigger = cmd.command or ""
        parts = (cmd.param or "").split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise KlpemuError(f"{word}: needs SYSTEM:EVENT", EINVAL)
        call = self._event(word, parts[0], parts[1])
        counted = len(parts) == 3 and parts[2] != ""
        if cmd.negate:
            probe = self._find(trigger, counted)
            matched = match(cmd.glob) & set(self.counts(probe)) if probe is not None else set()
            if probe is None or not matched:
                raise KlpemuError(f"!{cmd.glob}:{trigger}: no such trigger", EINVAL)
            return lambda: self._remove(probe, matched)
        count = parse_count(parts[2]) if counted else UNLIMITED
        matched = match(cmd.glob)
        if not matched:
            raise KlpemuError(f"{word}: no function matches", EINVAL)
        return lambda: self._add_event(trigger, counted, matched, call, count)

    def _add_event(self, trigger: str, counted: bool, ips: set[int], call: EventCall, count: int) -> None:
        m = self.m
        types = m.types
        edata = m.heap.kzalloc(types.sizeof("event_probe_data"))
        m.mem.write_u64(edata + types.offsetof("event_probe_data", "file"), call.files[0])
        m.mem.write(edata + types.offsetof("event_probe_data", "count"), struct.pack("<q", count))
        m.mem.write(edata + types.offsetof("event_probe_data", "enable"), struct.pack("<i", trigger == "enable_event"))
        self.edata[edata] = call
        m.kernel.trace_events.files.soft_enable(call, True)  # __ftrace_event_enable_disable(file, 1, 1)
        self._add(trigger, counted, ips, edata)
        self._drop_unused_edata()

    def _drop_unused_edata(self) -> None:
        """An event_probe_data no function points at any more lets go of its event."""
        used = {data for p in self.probes if p.trigger in EVENT_TRIGGERS for data in self.counts(p).values()}
        for edata in [e for e in self.edata if e not in used]:
            call = self.edata.pop(edata)
            self.m.kernel.trace_events.files.soft_enable(call, False)
            self.m.heap.free(edata)

    def _add(self, trigger: str, counted: bool, ips: set[int], count: int) -> None:
        if trigger == "snapshot" and self.alloc_snapshot is not None:
            self.alloc_snapshot()  # and kept when the trigger goes, as Linux keeps it
        probe = self._find(trigger, counted)
        if probe is None:
            m = self.m
            addr = m.heap.kzalloc(m.types.sizeof("ftrace_func_probe"))
            m.mem.write_u64(addr + m.types.offsetof("ftrace_func_probe", "func"), m.image.addr(TRIGGERS[trigger]))
            m.mem.write_u64(addr + m.types.offsetof("ftrace_func_probe", "tr"), self.tr)
            ops = self.ft.ops_native(trigger, "function_trace_probe_call")
            ops.struct.private = addr
            probe = Probe(trigger, counted, ops, addr)
            self.probes.append(probe)
        counts = self.counts(probe)
        for ip in ips:
            counts.setdefault(ip, count)  # a function that has this trigger keeps its count
        self._write_mapper(probe, counts)
        self.ft.replace_hash(probe.ops, set(counts))
        if probe.ops not in self.ft.ops:
            self.ft.register(probe.ops)

    def _remove(self, probe: Probe, ips: set[int]) -> None:
        counts = {ip: c for ip, c in self.counts(probe).items() if ip not in ips}
        if counts:
            self.ft.replace_hash(probe.ops, set(counts))
            self._write_mapper(probe, counts)
            self._drop_unused_edata()
            return
        self.ft.unregister(probe.ops)
        self._write_mapper(probe, {})
        self.ft.forget(probe.ops)
        self.m.heap.free(probe.addr)
        self.probes.remove(probe)
        self._drop_unused_edata()

    def clear(self) -> None:
        """clear_ftrace_function_probes: every trigger goes (its trace array is being removed)."""
        for probe in list(self.probes):
            self._remove(probe, set(self.counts(probe)))

    def module_going(self, gone: set[int]) -> None:
        """A removed module's functions leave every probe (ftrace_release_mod)."""
        for probe in list(self.probes):
            lost = set(self.counts(probe)) & gone
            if lost:
                self._remove(probe, lost)

    # --- listing -------------------------------------------------------------------------------

    def text(self) -> str:
        lines = []
        for probe in self.probes:
            for ip, count in sorted(self.counts(probe).items()):
                trigger = probe.trigger
                if trigger in EVENT_TRIGGERS:
                    call = self.edata[count]
                    trigger += f":{call.system}:{call.name}"
                    off = self.m.types.offsetof("event_probe_data", "count")
                    count = struct.unpack("<q", self.m.mem.read(count + off, 8))[0]
                tail = "unlimited" if not probe.counted else f"count={count}"
                lines.append(f"{self.ft.symbol_ps(ip)}:{trigger}:{tail}\n")
        return "".join(lines)
