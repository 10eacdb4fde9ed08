"""/sys/kernel/tracing: ftrace's files, with Linux's names, modes and text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import tracefs_arrays, tracefs_events
from .tracefs_controls import mount_controls
from .vfs import VFS, File, parse_bool01

if TYPE_CHECKING:
    from ..machine.machine import Machine


def mount(vfs: VFS, machine: Machine) -> None:
    ft = machine.kernel.ftrace
    tracer = machine.kernel.function_tracer
    d = vfs.makedirs("/sys/kernel/tracing", 0o700)

    def write_tracer(data: str) -> None:
        tracer.set_tracer(data.strip())

    def write_tracing_on(data: str) -> None:
        tracer.tracing_on = parse_bool01(data, "tracing_on")

    def write_filter(data: str, append: bool = False) -> None:
        tracer.set_filter(data, append=append)

    def write_notrace(data: str, append: bool = False) -> None:
        tracer.set_filter(data, append=append, notrace=True)

    def write_trace(data: str) -> None:
        tracer.reset()

    d.add(File("available_tracers", 0o444, lambda: " ".join(tracer.tr.tracers) + "\n"))
    d.add(File("current_tracer", 0o644, lambda: tracer.current + "\n", write_tracer))
    d.add(File("available_filter_functions", 0o444, ft.available_filter_functions))
    d.add(File("set_ftrace_filter", 0o644, tracer.filter_text, write_filter))
    d.add(File("set_ftrace_notrace", 0o644, lambda: tracer.filter_text(notrace=True), write_notrace))
    d.add(File("tracing_on", 0o644, lambda: f"{int(tracer.tracing_on)}\n", write_tracing_on))
    d.add(File("trace", 0o644, tracer.text, write_trace))
    d.add(File("enabled_functions", 0o444, ft.enabled_functions))
    d.add(File("touched_functions", 0o444, ft.touched_functions))
    saved = machine.kernel.tracing.saved_cmdlines
    d.add(File("saved_cmdlines", 0o444, saved.text))
    d.add(File("saved_cmdlines_size", 0o644, saved.size_text, saved.write_size))
    mount_controls(d, machine)
    tracefs_arrays.mount(d, machine)
    tracefs_events.mount(d, machine.kernel.trace_events)
