"""tracefs' event files: error_log, kprobe_events, dynamic_events, kprobe_profile,
available_events, set_event, set_event_pid, set_event_notrace_pid and events/ (enable, filter, format, id, trigger)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .vfs import Dir, File, parse_bool01

if TYPE_CHECKING:
    from ..kernel.trace_events import EventCall, TraceEvents


def mount(d: Dir, events: TraceEvents) -> None:
    """The files under the tracing directory d."""
    dyn = events.dynamic_events
    files = events.files
    registry = events.registry

    def write_dynamic_events(data: str, append: bool = False) -> None:
        dyn.write(data, append=append)

    d.add(File("error_log", 0o644, events.error_log.text, events.error_log.write))
    d.add(File("kprobe_events", 0o644, dyn.text, write_dynamic_events))
    d.add(File("dynamic_events", 0o644, dyn.text, write_dynamic_events))
    d.add(File("kprobe_profile", 0o444, events.kprobe_events.profile))
    d.add(File("available_events", 0o444, files.available_events))
    d.add(File("set_event", 0o644, files.set_event_text, files.write_set_event))
    d.add(File("set_event_pid", 0o644, files.pid_text, files.write_pids))
    d.add(File("set_event_notrace_pid", 0o644, files.notrace_pid_text, files.write_notrace_pids))

    def event_dir(call: EventCall) -> Dir:
        def write_enable(data: str) -> None:
            files.set_enabled(call, parse_bool01(data, "enable"))

        def write_filter(data: str) -> None:
            files.write_filter(call, data)

        def write_trigger(data: str, append: bool = False) -> None:
            files.write_trigger(call, data, registry.find)

        e = Dir(call.name, 0o755)
        e.add(File("enable", 0o644, lambda: files.enable_text(call), write_enable))
        e.add(File("filter", 0o644, lambda: files.filter_text(call), write_filter))
        e.add(File("format", 0o444, call.format))
        e.add(File("id", 0o444, lambda: f"{call.id}\n"))
        e.add(File("trigger", 0o644, lambda: files.trigger_text(call), write_trigger))
        return e

    def set_all(calls: list[EventCall], data: str) -> None:
        on = parse_bool01(data, "enable")
        for c in calls:
            files.set_enabled(c, on)

    def system_dir(name: str) -> Dir:
        def calls() -> list[EventCall]:
            return registry.systems().get(name, [])

        def children() -> dict[str, File | Dir]:
            out: dict[str, File | Dir] = {c.name: event_dir(c) for c in calls()}
            out["enable"] = File(
                "enable", 0o644, lambda: files.system_enable_text(calls()), lambda data: set_all(calls(), data)
            )
            out["filter"] = File(
                "filter",
                0o644,
                lambda: files.system_filter_text(name),
                lambda data: files.write_system_filter(name, calls(), data),
            )
            return out

        return Dir(name, 0o755, dynamic=children)

    def systems() -> dict[str, File | Dir]:
        out: dict[str, File | Dir] = {name: system_dir(name) for name in registry.systems()}
        out["enable"] = File(
            "enable",
            0o644,
            lambda: files.system_enable_text(registry.calls),
            lambda data: set_all(list(registry.calls), data),
        )
        return out

    d.add(Dir("events", 0o755, dynamic=systems))
