"""A booted machine with its devices and file views: what the shell and the CLI work on."""

from __future__ import annotations

from .fs import guestfs, kprobesfs, modulefs, procfs, sysctl, sysfs, tracefs
from .fs.vfs import VFS
from .kernel.core import Kernel
from .machine.console import Console
from .machine.machine import Machine, MachineConfig


class System:
    """The machine, the kernel's control plane, the console the shell talks through, and the
    /proc and /sys trees: what builds them and wires them together."""

    def __init__(self, config: MachineConfig | None = None, **overrides):
        machine = Machine(config, **overrides)
        console = Console(machine)
        self._wire(machine, Kernel(machine, console), console)

    @classmethod
    def around(cls, machine: Machine) -> System:
        """A System on a machine that exists already, its kernel attached (a restored snapshot):
        the console came with the kernel's loader, and the file views hold no state of their
        own, so they are built anew."""
        system = cls.__new__(cls)
        system._wire(machine, machine.kernel, machine.kernel.modules.console)
        return system

    def _wire(self, machine: Machine, kernel: Kernel, console: Console) -> None:
        self.machine = machine
        self.kernel = kernel
        self.console = console
        self.vfs = VFS()
        procfs.mount(self.vfs, machine)
        sysfs.mount(self.vfs, machine)
        sysctl.mount(self.vfs, machine)
        tracefs.mount(self.vfs, machine)
        modulefs.mount(self.vfs, machine)
        kprobesfs.mount(self.vfs, machine)
        guestfs.mount(self.vfs, machine, self.console)

    def boot(self) -> System:
        """Boot, then run until the console's shell process waits for input, as a login would."""
        m = self.machine
        m.boot()
        head = m.var_addr("console_wait") + m.types.offsetof("wait_queue_head", "head")
        m.run_until(lambda: m.mem.read_u64(head) != head, 1_000_000_000)
        return self
