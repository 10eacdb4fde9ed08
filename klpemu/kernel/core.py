"""The kernel's control plane: the subsystems the host runs for the firmware kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .conflicts import Conflicts
from .ftrace import Ftrace
from .ftrace.function_tracer import FunctionTracer
from .kprobes import Kprobes
from .livepatch.core import Livepatch
from .livepatch.patch import KlpPatchLayer
from .module import Modules
from .slab import Slab
from .text_poke import TextPoke

if TYPE_CHECKING:
    from ..machine.machine import Machine


class Kernel:
    """Holds one instance of each subsystem; each registers the hypercalls it serves."""

    def __init__(self, machine: Machine):
        self.slab = Slab(machine)
        self.text_poke = TextPoke(machine)
        self.ftrace = Ftrace(machine, self.text_poke)
        self.function_tracer = FunctionTracer(machine, self.ftrace)
        self.modules = Modules(machine, self.ftrace)
        self.klp_patch = KlpPatchLayer(machine)
        self.livepatch = Livepatch(machine, self.klp_patch, self.modules)
        self.kprobes = Kprobes(machine)
        self.conflicts = Conflicts(machine)
        self.modules.add_notifier(self.kprobes.module_coming, self.kprobes.module_going)
        self.modules.add_live_notifier(self.kprobes.module_live)
