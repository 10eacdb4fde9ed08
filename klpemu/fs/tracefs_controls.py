"""tracefs files for ftrace's controls beyond the function tracer itself: the pid filters,
tracing_cpumask, the function profiler, the stack tracer and README."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from .tracefs_readme import README
from .vfs import Dir, File

if TYPE_CHECKING:
    from ..machine.machine import Machine


def mount_controls(d: Dir, machine: Machine) -> None:
    kernel = machine.kernel
    pid = kernel.ftrace_pid
    cpumask = kernel.tracing_cpumask
    profile = kernel.function_profile
    stack = kernel.stack_tracer

    def write_pid(data: str, append: bool = False) -> None:
        pid.write(data, append=append)

    def write_notrace_pid(data: str, append: bool = False) -> None:
        pid.write(data, append=append, notrace=True)

    def write_stack_filter(data: str, append: bool = False) -> None:
        stack.filters.write(data, append=append)

    d.add(File("set_ftrace_pid", 0o644, pid.text, write_pid))
    d.add(File("set_ftrace_notrace_pid", 0o644, lambda: pid.text(notrace=True), write_notrace_pid))
    d.add(File("tracing_cpumask", 0o644, cpumask.text, cpumask.write))
    d.add(File("function_profile_enabled", 0o644, lambda: f"{int(profile.enabled)}\n", profile.write_enabled))
    stat = d.mkdir("trace_stat", 0o755)
    for cpu in range(len(machine.cpus)):
        stat.add(File(f"function{cpu}", 0o444, partial(profile.text, cpu)))
    d.add(File("stack_trace", 0o444, stack.text))
    d.add(File("stack_max_size", 0o644, lambda: f"{stack.max_size}\n", stack.set_max_size))
    d.add(File("stack_trace_filter", 0o644, stack.filters.text, write_stack_filter))
    d.add(File("README", 0o444, lambda: README))
