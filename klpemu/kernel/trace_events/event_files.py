"""The per-event controls (kernel/trace/trace_events.c, trace_events_trigger.c): enable with soft
mode, set_event, filters and triggers written into each event's guest struct trace_event_file,
and set_event_pid. The host only writes the switches and programs; the guest acts on them."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from errno import EEXIST, EINVAL
from typing import TYPE_CHECKING

from ...abi import ETT, EVENT_ENABLED_PID_FORK, EVENT_FILE_FL, EVENT_PID_MAX, FILTER_CMP, FILTER_OP, FILTER_PRED_FN
from ...errors import KlpemuError
from .event import Trigger
from .filter import FilterParseError, error_text, parse_filter

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from . import EventRegistry
    from .error_log import ErrorLog
    from .event import EventCall

SOFT_MODE, SOFT_DISABLED = EVENT_FILE_FL["SOFT_MODE"], EVENT_FILE_FL["SOFT_DISABLED"]
TRIGGER_MODE, FILTERED, PID_FILTER, TRIGGER_COND = (
    EVENT_FILE_FL["TRIGGER_MODE"],
    EVENT_FILE_FL["FILTERED"],
    EVENT_FILE_FL["PID_FILTER"],
    EVENT_FILE_FL["TRIGGER_COND"],
)
TRIGGERS = ("traceon", "traceoff", "snapshot", "stacktrace", "enable_event", "disable_event")
TRIGGER_TYPES = {
    "traceon": "TRACE_ONOFF",
    "traceoff": "TRACE_ONOFF",
    "snapshot": "SNAPSHOT",
    "stacktrace": "STACKTRACE",
    "enable_event": "EVENT_ENABLE",
    "disable_event": "EVENT_ENABLE",
}


class EventFiles:
    def __init__(self, machine: Machine, registry: EventRegistry, error_log: ErrorLog):
        self.m = machine
        self.registry = registry
        self.error_log = error_log
        self.system_filters: dict[str, str] = {}
        # Called before an event records for the first time (the ring gets its full size) and
        # when a kprobe event is switched (its kprobes are armed or disarmed).
        self.on_first_enable: Callable[[], None] = lambda: None
        self.arm: Callable[[EventCall, bool], None] = lambda call, on: None
        # Called when an event starts or stops running (on or in soft mode): saved_cmdlines.
        self.on_hook: Callable[[bool], None] = lambda on: None
        # A snapshot trigger allocates the top trace array's snapshot buffer (tracing_alloc_snapshot).
        self.alloc_snapshot: Callable[[], None] = lambda: None

    # --- guest files ---------------------------------------------------------------------------

    def _file(self, addr: int):
        return self.m.struct("trace_event_file", addr)

    def _flags(self, call: EventCall) -> int:
        return int(self._file(call.files[0]).flags) if call.files else 0

    def _update(self, call: EventCall, *, enabled: bool | None = None, set_: int = 0, clear: int = 0) -> None:
        for addr in call.files:
            f = self._file(addr)
            if enabled is not None:  # other bits are not the event's (saved_cmdlines' on sched_switch)
                f.enabled = (int(f.enabled) & ~1) | int(enabled)
            f.flags = (int(f.flags) | set_) & ~clear

    def attach(self, call: EventCall, addr: int) -> None:
        """A new guest file of call (a kprobe event's probe): it takes the event's state."""
        src = self._file(call.files[0]) if call.files else None
        call.files.append(addr)
        f = self._file(addr)
        f.event_type = call.id
        if src is not None:
            f.enabled, f.flags, f.filter, f.triggers = src.enabled, src.flags, src.filter, src.triggers
        elif self.pids or self.notrace_pids:
            f.flags = PID_FILTER

    # --- enable --------------------------------------------------------------------------------

    def enable_text(self, call: EventCall) -> str:
        """`0`, `1`, and `*` in soft mode (event_enable_read)."""
        flags = self._flags(call)
        out = "1" if (call.enabled or call.soft_refs) and not flags & SOFT_DISABLED else "0"
        if flags & (SOFT_DISABLED | SOFT_MODE):
            out += "*"
        return out + "\n"

    def set_enabled(self, call: EventCall, on: bool) -> None:
        """__ftrace_event_enable_disable without soft_disable: an event held in soft mode stays
        hooked when turned off, soft-disabled. In soft mode a write sets or clears the
        soft-disabled flag whatever the event's state was (a function trigger may have flipped it)."""
        if on == call.enabled:
            if call.soft_refs:
                self._update(call, clear=SOFT_DISABLED) if on else self._update(call, set_=SOFT_DISABLED)
            return
        if on:
            self.on_first_enable()
            if not call.soft_refs:
                self.arm(call, True)
                self.on_hook(True)
            call.enabled = True
            self._update(call, enabled=True, clear=SOFT_DISABLED)
        else:
            call.enabled = False
            if call.soft_refs:
                self._update(call, set_=SOFT_DISABLED)
            else:
                self._update(call, enabled=False)
                self.arm(call, False)
                self.on_hook(False)

    def soft_enable(self, call: EventCall, on: bool) -> None:
        """A trigger takes (on) or lets go of (off) soft mode on call."""
        if on:
            call.soft_refs += 1
            if call.soft_refs == 1:
                self.on_first_enable()
                if not call.enabled:
                    self.arm(call, True)
                    self.on_hook(True)
                    self._update(call, enabled=True, set_=SOFT_MODE | SOFT_DISABLED)
                else:
                    self._update(call, set_=SOFT_MODE)
        else:
            call.soft_refs -= 1
            if call.soft_refs == 0:
                if not call.enabled:
                    self._update(call, enabled=False, clear=SOFT_MODE | SOFT_DISABLED)
                    self.arm(call, False)
                    self.on_hook(False)
                else:
                    self._update(call, clear=SOFT_MODE | SOFT_DISABLED)

    def system_enable_text(self, calls: list[EventCall]) -> str:
        states = {c.enabled for c in calls}
        return "X\n" if len(states) > 1 else f"{int(states.pop()) if states else 0}\n"

    # --- set_event / available_events ----------------------------------------------------------

    def available_events(self) -> str:
        return "".join(f"{c.system}:{c.name}\n" for c in self.registry.calls)

    def set_event_text(self) -> str:
        return "".join(f"{c.system}:{c.name}\n" for c in self.registry.calls if c.enabled)

    def _match(self, word: str) -> list[EventCall]:
        """ftrace_set_clr_event's match: `sys:event`, `sys:` (all of sys), `event` or `sys`
        alone, each part a glob."""
        if ":" in word:
            system, event = word.split(":", 1)
            event = event or "*"
            return [
                c
                for c in self.registry.calls
                if fnmatch.fnmatchcase(c.system, system or "*") and fnmatch.fnmatchcase(c.name, event)
            ]
        return [
            c for c in self.registry.calls if fnmatch.fnmatchcase(c.name, word) or fnmatch.fnmatchcase(c.system, word)
        ]

    def write_set_event(self, data: str, append: bool = False) -> None:
        if not append:
            for c in self.registry.calls:
                self.set_enabled(c, False)
        for word in data.split():
            on = not word.startswith("!")
            matches = self._match(word.lstrip("!"))
            if not matches:
                raise KlpemuError(f"{word}: no such event", EINVAL)
            for c in matches:
                self.set_enabled(c, on)

    # --- filter --------------------------------------------------------------------------------

    def filter_text(self, call: EventCall) -> str:
        return call.filter_text or "none\n"

    def write_system_filter(self, system: str, calls: list[EventCall], data: str) -> None:
        """A subsystem's `filter` (apply_subsystem_event_filter): the filter goes to each event
        that has its fields, and the write fails if none has them; `0` clears every event's."""
        text = data.strip()
        if text in ("0", ""):
            for call in calls:
                self.write_filter(call, "0")
            self.system_filters.pop(system, None)
            return
        programs = []
        for call in calls:
            try:
                programs.append((call, parse_filter(text, call)))
            except FilterParseError as e:
                if e.err != "FIELD_NOT_FOUND":
                    self.error_log.log("event filter parser", text, str(e), e.pos)
                    self.system_filters[system] = error_text(text, e)
                    raise
        if not programs:
            err = FilterParseError("BAD_SUBSYS_FILTER", 0)
            self.error_log.log("event filter parser", text, str(err), 0)
            self.system_filters[system] = error_text(text, err)
            raise err
        for call, program in programs:
            self._free_filter(call)
            self._write_program(call, program)
            call.filter_text = text + "\n"
        self.system_filters[system] = text + "\n"

    def system_filter_text(self, system: str) -> str:
        return self.system_filters.get(system, "none\n")

    def _free_filter(self, call: EventCall) -> None:
        self._update(call, clear=FILTERED)
        for addr in call.files:
            self._file(addr).filter = 0
        for addr in call.filter_mem:
            self.m.heap.free(addr)
        call.filter_mem = []

    def write_filter(self, call: EventCall, data: str) -> None:
        """apply_event_filter: `0` (or nothing) clears; a bad filter is logged, shown in the
        file with its caret, and leaves the event unfiltered."""
        text = data.strip()
        if text in ("0", ""):
            self._free_filter(call)
            call.filter_text = ""
            return
        try:
            program = parse_filter(text, call)
        except FilterParseError as e:
            self._free_filter(call)
            call.filter_text = error_text(text, e)
            self.error_log.log("event filter parser", text, str(e), e.pos)
            raise
        self._free_filter(call)
        self._write_program(call, program)
        call.filter_text = text + "\n"

    def _write_program(self, call: EventCall, program) -> None:
        base = self._build_program(program, call.filter_mem)
        for addr in call.files:
            self._file(addr).filter = base
        self._update(call, set_=FILTERED)

    def _build_program(self, program, mem: list[int]) -> int:
        """The guest's struct filter_pred array for program; its allocations go into mem."""
        m = self.m
        size = m.types.sizeof("filter_pred")
        base = m.heap.kzalloc(size * (len(program) + 1))
        mem.append(base)
        for i, step in enumerate(program):
            v = m.struct("filter_pred", base + i * size)
            v.op = FILTER_OP[step.op]
            pred = step.pred
            if pred is not None:
                v.fn = FILTER_PRED_FN[pred.fn]
                v.cmp = FILTER_CMP[pred.cmp]
                setattr_not(v, int(pred.not_))
                v.offset, v.size = pred.offset, pred.size
                v.val = pred.val if pred.val < 1 << 63 else pred.val - (1 << 64)
                if pred.fn in ("STRING", "STRLOC", "COMM"):
                    raw = pred.pattern.encode() + b"\0"
                    s = m.heap.kzalloc(len(raw))
                    m.mem.write(s, raw)
                    mem.append(s)
                    v.str = s
        m.struct("filter_pred", base + len(program) * size).op = FILTER_OP["END"]
        return base

    # --- triggers ------------------------------------------------------------------------------

    def trigger_text(self, call: EventCall) -> str:
        if not call.triggers:
            return "# Available triggers:\n#" + "".join(f" {t}" for t in TRIGGERS) + "\n"
        out = []
        for t in call.triggers:
            count = int(self.m.struct("event_trigger_data", t.guest).count)
            target = f":{t.target.system}:{t.target.name}" if t.target else ""
            cond = f" if {t.filter_text}" if t.filter_text else ""
            out.append(f"{t.name}{target}:{'unlimited' if count < 0 else f'count={count}'}{cond}\n")
        return "".join(out)

    def write_trigger(self, call: EventCall, data: str, find: Callable[[str, str], EventCall | None]) -> None:
        """event_trigger_write: `[!]CMD[:SYS:EVENT][:COUNT] [if FILTER]`."""
        text = data.strip()
        if not text:
            return
        text, cond = (text.split(None, 1) + [""])[:2]
        filter_text = ""
        if cond:
            if cond[:2] != "if" or (len(cond) > 2 and not cond[2].isspace()):
                raise KlpemuError(f"{cond}: expected `if FILTER`", EINVAL)
            filter_text = cond[2:].strip()
        remove = text.startswith("!")
        parts = text.lstrip("!").split(":")
        name = parts[0]
        if name not in TRIGGERS:
            raise KlpemuError(f"{name}: no such trigger", EINVAL)
        target = None
        rest = parts[1:]
        if name in ("enable_event", "disable_event"):
            if len(rest) < 2:
                raise KlpemuError(f"{name} needs SYSTEM:EVENT", EINVAL)
            target = find(rest[0], rest[1])
            if target is None:
                raise KlpemuError(f"{rest[0]}:{rest[1]}: no such event", EINVAL)
            rest = rest[2:]
        count = -1
        if rest and rest[0]:
            try:
                count = int(rest[0], 0)
            except ValueError:
                raise KlpemuError(f"{rest[0]}: not a count", EINVAL) from None
        trig = Trigger(name, count, target, filter_text=filter_text)
        existing = next((t for t in call.triggers if t.key() == trig.key()), None)
        if remove:
            if existing is not None:
                self._remove_trigger(call, existing)
            return
        if existing is not None:
            raise KlpemuError(f"{name} is already set", EEXIST)
        if name.startswith("trace") and any(t.name.startswith("trace") for t in call.triggers):
            raise KlpemuError("a traceon/traceoff trigger is already set", EEXIST)
        program = None
        if filter_text:
            try:
                program = parse_filter(filter_text, call)
            except FilterParseError as e:
                self.error_log.log("event filter parser", filter_text, str(e), e.pos)
                raise
        self._add_trigger(call, trig, program)

    def _add_trigger(self, call: EventCall, trig: Trigger, program=None) -> None:
        m = self.m
        trig.guest = m.heap.kzalloc(m.types.sizeof("event_trigger_data"))
        v = m.struct("event_trigger_data", trig.guest)
        v.post = int(trig.post)
        if trig.name == "snapshot":
            self.alloc_snapshot()
        if program is not None:
            v.filter = self._build_program(program, trig.filter_mem)
        v.trigger_type = ETT[TRIGGER_TYPES[trig.name]]
        v.on = int(trig.name in ("traceon", "enable_event"))
        v.count = trig.count
        if trig.target is not None:
            self.soft_enable(trig.target, True)
            v.target = trig.target.files[0] if trig.target.files else 0
        call.triggers.append(trig)
        self._link_triggers(call)
        self.soft_enable(call, True)  # the event runs for its triggers (trace_event_trigger_enable_disable)

    def _remove_trigger(self, call: EventCall, trig: Trigger) -> None:
        call.triggers.remove(trig)
        self._link_triggers(call)
        self.soft_enable(call, False)
        if trig.target is not None:
            self.soft_enable(trig.target, False)
        self.m.heap.free(trig.guest)
        for addr in trig.filter_mem:
            self.m.heap.free(addr)

    def _link_triggers(self, call: EventCall) -> None:
        for i, t in enumerate(call.triggers):
            nxt = call.triggers[i + 1].guest if i + 1 < len(call.triggers) else 0
            self.m.struct("event_trigger_data", t.guest).next = nxt
        head = call.triggers[0].guest if call.triggers else 0
        for addr in call.files:
            self._file(addr).triggers = head
        if call.triggers:
            self._update(call, set_=TRIGGER_MODE)
        else:
            self._update(call, clear=TRIGGER_MODE)
        if any(t.filter_text or t.post for t in call.triggers):
            self._update(call, set_=TRIGGER_COND)
        else:
            self._update(call, clear=TRIGGER_COND)

    def release(self, call: EventCall) -> None:
        """An event going away (a kprobe event deleted): its filter, triggers and soft mode."""
        self._free_filter(call)
        for t in list(call.triggers):
            self._remove_trigger(call, t)

    # --- set_event_pid -------------------------------------------------------------------------

    # The guest's lists are the truth: with options/event-fork it adds children and drops the exited.

    def _read_pid_list(self, var: str) -> list[int]:
        table = self.m.var(var)
        raw = self.m.mem.read(table.addr_of("pids"), 4 * int(table.nr))
        return [int.from_bytes(raw[i : i + 4], "little", signed=True) for i in range(0, len(raw), 4)]

    @property
    def pids(self) -> list[int]:
        return self._read_pid_list("event_pid_list")

    @property
    def notrace_pids(self) -> list[int]:
        return self._read_pid_list("event_notrace_pid_list")

    def pid_text(self) -> str:
        return "".join(f"{p}\n" for p in self.pids)

    def notrace_pid_text(self) -> str:
        return "".join(f"{p}\n" for p in self.notrace_pids)

    def write_pids(self, data: str, append: bool = False) -> None:
        self._write_pid_list("event_pid_list", self.pids, data, append)

    def write_notrace_pids(self, data: str, append: bool = False) -> None:
        self._write_pid_list("event_notrace_pid_list", self.notrace_pids, data, append)

    def set_event_fork(self, on: bool) -> None:
        """options/event-fork: the guest's fork and exit events keep the pid lists."""
        for name in ("sched_process_fork", "sched_process_exit"):
            f = self.m.var(f"event_{name}")
            f.enabled = (int(f.enabled) & ~EVENT_ENABLED_PID_FORK) | (EVENT_ENABLED_PID_FORK if on else 0)

    def _write_pid_list(self, var: str, old: list[int], data: str, append: bool) -> None:
        """set_event_pid and set_event_notrace_pid: the guest's list, and PID_FILTER on every event
        while either has pids."""
        pids = list(old) if append else []
        for word in data.split():
            if not word.isdigit():
                raise KlpemuError(f"{word}: not a pid", EINVAL)
            if int(word) not in pids:
                pids.append(int(word))
        if len(pids) > EVENT_PID_MAX:
            raise KlpemuError("too many pids", EINVAL)
        table = self.m.var(var)
        base = table.addr_of("pids")
        for i, pid in enumerate(pids):
            self.m.mem.write(base + 4 * i, pid.to_bytes(4, "little", signed=True))
        table.nr = len(pids)
        on = bool(self.pids or self.notrace_pids)
        for call in self.registry.calls:
            if on:
                self._update(call, set_=PID_FILTER)
            else:
                self._update(call, clear=PID_FILTER)


def setattr_not(view, value: int) -> None:
    """struct filter_pred's `not`, a Python keyword."""
    setattr(view, "not", value)
