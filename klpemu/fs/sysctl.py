"""/proc/sys: the kernel's tunables that this machine has."""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .vfs import VFS, File, parse_bool01

if TYPE_CHECKING:
    from ..machine.machine import Machine


def mount(vfs: VFS, machine: Machine) -> None:
    ft = machine.kernel.ftrace
    kernel = vfs.makedirs("/proc/sys/kernel", 0o555)
    kernel.add(
        File(
            "ftrace_enabled",
            0o644,
            lambda: f"{int(ft.sysctl_enabled)}\n",
            lambda data: ft.set_sysctl_enabled(parse_bool01(data, "ftrace_enabled")),
        )
    )
    stack = machine.kernel.stack_tracer
    kernel.add(File("stack_tracer_enabled", 0o644, lambda: f"{stack.enabled}\n", stack.set_enabled))
    kernel.add(File("printk", 0o644, lambda: _read_printk(machine), lambda data: _write_printk(machine, data)))
    taint = machine.kernel.taint
    kernel.add(File("tainted", 0o644, lambda: f"{taint.mask}\n", lambda data: _write_tainted(machine, data)))
    kallsyms = machine.kernel.kallsyms
    kernel.add(File("kptr_restrict", 0o644, lambda: f"{kallsyms.kptr_restrict}\n", kallsyms.set_kptr_restrict))


def _write_tainted(machine: Machine, data: str) -> None:
    """proc_taint: an unsigned long whose bits are added to the mask; anything else is -EINVAL."""
    try:
        value = int(data.strip())
    except ValueError:
        raise KlpemuError("kernel.tainted takes an unsigned integer", EINVAL) from None
    if not 0 <= value < 2**64:
        raise KlpemuError("kernel.tainted takes an unsigned integer", EINVAL)
    machine.kernel.taint.proc_taint_write(value)


def _read_printk(machine: Machine) -> str:
    """console_loglevel, default_message_loglevel, minimum_console_loglevel and
    default_console_loglevel, tab-separated as proc_dointvec prints them."""
    levels = machine.var("console_printk")
    return "\t".join(str(levels[i]) for i in range(4)) + "\n"


def _write_printk(machine: Machine, data: str) -> None:
    """proc_dointvec: up to four integers, the first ones replaced; anything else is -EINVAL."""
    words = data.split()
    try:
        values = [int(w) for w in words]
    except ValueError:
        raise KlpemuError("kernel.printk takes up to four integers", EINVAL) from None
    if not values or len(values) > 4 or any(not -(2**31) <= v < 2**31 for v in values):
        raise KlpemuError("kernel.printk takes up to four integers", EINVAL)
    levels = machine.var("console_printk")
    assert levels.type.target is not None  # console_printk is an int array, whose elements have a type
    size = levels.type.target.size
    for i, v in enumerate(values):
        machine.mem.write(levels.addr_of() + i * size, v.to_bytes(size, "little", signed=True))
