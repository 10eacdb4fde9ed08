"""tracefs' files of a trace array (the top level and each instances/NAME): the ring buffer's
(trace_pipe, buffer_size_kb, buffer_total_size_kb, trace_clock, snapshot, trace_marker), the
options (trace_options, options/), and function_graph's filter files at the top level."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from .vfs import Dir, File, parse_bool01

if TYPE_CHECKING:
    from ..kernel.ftrace.trace_array import TraceArray, Tracing
    from ..machine.machine import Machine


def _write_option(tr: TraceArray, name: str, data: str) -> None:
    tr.set_option(name, parse_bool01(data, name))


def _read_option(tr: TraceArray, name: str) -> str:
    return f"{int(tr.options[name])}\n"


def _write_trace_options(tr: TraceArray, data: str) -> None:
    tr.set_option(*tr.options.parse(data, tr.current))


def _write_marker(tr: TraceArray, data: str) -> None:
    tr.mark(data)


def _write_tracing_on(tr: TraceArray, data: str) -> None:
    tr.tracing_on = parse_bool01(data, "tracing_on")


def _write_tracer(tr: TraceArray, data: str) -> None:
    tr.set_tracer(data.strip())


def _write_trace(tr: TraceArray, data: str) -> None:
    tr.buffer.reset()


def _write_filter(tr: TraceArray, notrace: bool, data: str, append: bool = False) -> None:
    tr.function.set_filter(data, append=append, notrace=notrace)


def _write_graph(tr: TraceArray, notrace: bool, data: str, append: bool = False) -> None:
    tr.tracing.graph.set_graph(data, append=append, notrace=notrace)


def array_files(d: Dir, tr: TraceArray) -> None:
    """What every trace array has, besides the files tracefs.py makes at the top level."""
    d.add(File("trace_pipe", 0o444, tr.pipe_read))
    d.add(File("trace_marker", 0o220, None, partial(_write_marker, tr)))
    d.add(
        File(
            "trace_options",
            0o644,
            lambda: "".join(f"{o}\n" for o in tr.options.listed(tr.current)),
            partial(_write_trace_options, tr),
        )
    )
    opts = d.mkdir("options", 0o755)
    for name in tr.options.names():
        opts.add(File(name, 0o644, partial(_read_option, tr, name), partial(_write_option, tr, name)))
    d.add(File("buffer_size_kb", 0o644, tr.buffer_size_text, tr.resize))
    d.add(File("buffer_total_size_kb", 0o444, partial(tr.buffer_size_text, True)))
    d.add(File("trace_clock", 0o644, tr.clock_text, tr.set_clock))
    d.add(File("snapshot", 0o644, tr.snapshot_text, tr.write_snapshot))


def instance_dir(tr: TraceArray) -> Dir:
    """instances/NAME: the trace array's own copies of the top level's tracer files."""
    d = Dir(tr.name, 0o750)
    d.add(File("available_tracers", 0o444, lambda: " ".join(tr.tracers) + "\n"))
    d.add(File("current_tracer", 0o644, lambda: tr.current + "\n", partial(_write_tracer, tr)))
    d.add(File("set_ftrace_filter", 0o644, tr.function.filter_text, partial(_write_filter, tr, False)))
    d.add(File("set_ftrace_notrace", 0o644, partial(tr.function.filter_text, True), partial(_write_filter, tr, True)))
    d.add(File("tracing_on", 0o644, lambda: f"{int(tr.tracing_on)}\n", partial(_write_tracing_on, tr)))
    d.add(File("trace", 0o644, tr.text, partial(_write_trace, tr)))
    array_files(d, tr)
    return d


def _mkdir(tracing: Tracing, name: str) -> Dir:
    return instance_dir(tracing.mkdir(name))


def mount(d: Dir, machine: Machine) -> None:
    """The top level's array files, function_graph's filter files, and instances/."""
    tracing = machine.kernel.tracing
    top = tracing.top
    array_files(d, top)
    graph = tracing.graph
    d.add(File("set_graph_function", 0o644, partial(graph.graph_text, False), partial(_write_graph, top, False)))
    d.add(File("set_graph_notrace", 0o644, partial(graph.graph_text, True), partial(_write_graph, top, True)))
    d.add(File("max_graph_depth", 0o644, lambda: f"{graph.max_depth}\n", graph.set_max_depth))
    inst = d.mkdir("instances", 0o755)
    inst.on_mkdir = partial(_mkdir, tracing)
    inst.on_rmdir = tracing.rmdir
    for tr in tracing.instances.values():  # the files are built anew around a restored machine
        inst.add(instance_dir(tr))
