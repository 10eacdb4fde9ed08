"""The kernel's control plane: the subsystems the host runs for the firmware kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .conflicts import Conflicts
from .ftrace import Ftrace
from .ftrace.ftrace_pid import FtracePid
from .ftrace.function_profile import FunctionProfile
from .ftrace.stack_tracer import StackTracer
from .ftrace.trace_array import Tracing
from .ftrace.trace_output import TraceOutput
from .ftrace.tracing_cpumask import TracingCpumask
from .kallsyms import Kallsyms
from .kprobes import Kprobes
from .livepatch.core import Livepatch
from .livepatch.patch import KlpPatchLayer
from .module import Modules
from .panic import Taint
from .slab import Slab
from .text_poke import TextPoke
from .trace_events import TraceEvents

if TYPE_CHECKING:
    from ..machine.console import Console
    from ..machine.machine import Machine


class Kernel:
    """Builds one instance of each subsystem and hands each its peers; each registers the
    hypercalls it serves. Two peers are connected after the fact, since each is used by
    what it needs: the conflict record (kprobes and livepatch report to it, and it names them)
    and the loader's klp_apply_section_relocs (the livepatch core needs the loader)."""

    def __init__(self, machine: Machine, console: Console):
        self.slab = Slab(machine)
        self.text_poke = TextPoke(machine)
        self.conflicts = Conflicts(machine)
        self.ftrace = Ftrace(machine, self.text_poke, self.conflicts)
        self.trace_output = TraceOutput(machine)
        self.tracing = Tracing(machine, self.ftrace, self.trace_output)
        self.function_tracer = self.tracing.top.function
        self.ftrace_pid = FtracePid(machine, self.ftrace)
        self.tracing_cpumask = TracingCpumask(machine)
        self.stack_tracer = StackTracer(machine, self.ftrace)
        self.function_profile = FunctionProfile(machine, self.ftrace, self.function_tracer.filters)
        self.taint = Taint(machine)
        self.modules = Modules(machine, self.ftrace, console, self.taint)
        self.kallsyms = Kallsyms(machine, self.modules)
        self.klp_patch = KlpPatchLayer(machine, self.ftrace)
        self.livepatch = Livepatch(machine, self.klp_patch, self.modules)
        self.kprobes = Kprobes(machine, self.ftrace, self.text_poke, self.modules, self.conflicts)
        self.conflicts.connect(self.kprobes, self.livepatch)
        self.trace_events = TraceEvents(machine, self.kprobes, self.trace_output, self.function_tracer.buffer)
        self.trace_events.files.alloc_snapshot = self.tracing.alloc_snapshot
        self.modules.use_klp_relocs(self.livepatch.relocs.apply_section_relocs)
        self.modules.add_notifier(self.kprobes.module_coming, self.kprobes.module_going)
        self.modules.add_notifier(self._ftrace_module_coming, self._ftrace_module_going)
        events = self.trace_events.kprobe_events
        self.modules.add_notifier(events.module_coming, events.module_going)
        self.modules.add_live_notifier(self.kprobes.module_live)
        self.modules.add_notifier(self.tracing.graph.module_coming, self.tracing.graph.module_going)
        machine.attach_kernel(self)

    def _ftrace_module_coming(self, mod) -> None:
        """process_cached_mods: each trace array's `:mod:` commands kept for this module."""
        for tr in self.tracing.arrays():
            tr.function.filters.module_coming(mod)
            tr.function.notrace_filters.module_coming(mod)

    def _ftrace_module_going(self, mod) -> None:
        for tr in self.tracing.arrays():
            tr.function.probes.module_going(set(mod.records))

    def check_consistency(self) -> list[str]:
        """Every place a subsystem keeps a host cache of guest state, checked against guest
        memory (the randomised tests call it after every step). Empty when all agree."""
        return (
            self.ftrace.check_consistency()
            + self.modules.check_consistency()
            + self.klp_patch.check_consistency()
            + self.kprobes.check_consistency()
        )
