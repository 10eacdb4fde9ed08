"""The kernel's taint mask and how it reads: /proc/sys/kernel/tainted, the letters of an oops
report's `Tainted:` field, of /proc/modules and /sys/module/<mod>/taint (kernel/panic.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .printk import LogLevel, log_store

if TYPE_CHECKING:
    from ..machine.machine import Machine

# taint_flags, in bit order: (letter when set, letter when not set). Bit 19 (J, FWCTL) came later
# than the kernels whose dump_stack line this machine prints, which have 19 flags.
TAINT_FLAGS = (
    ("P", "G"),  # 0 PROPRIETARY_MODULE
    ("F", " "),  # 1 FORCED_MODULE
    ("S", " "),  # 2 CPU_OUT_OF_SPEC
    ("R", " "),  # 3 FORCED_RMMOD
    ("M", " "),  # 4 MACHINE_CHECK
    ("B", " "),  # 5 BAD_PAGE
    ("U", " "),  # 6 USER
    ("D", " "),  # 7 DIE
    ("A", " "),  # 8 OVERRIDDEN_ACPI_TABLE
    ("W", " "),  # 9 WARN
    ("C", " "),  # 10 CRAP
    ("I", " "),  # 11 FIRMWARE_WORKAROUND
    ("O", " "),  # 12 OOT_MODULE
    ("E", " "),  # 13 UNSIGNED_MODULE
    ("L", " "),  # 14 SOFTLOCKUP
    ("K", " "),  # 15 LIVEPATCH
    ("X", " "),  # 16 AUX
    ("T", " "),  # 17 RANDSTRUCT
    ("N", " "),  # 18 TEST
)
TAINT_PROPRIETARY_MODULE, TAINT_DIE, TAINT_OOT_MODULE, TAINT_LIVEPATCH = 0, 7, 12, 15


def module_taint_letters(taints: int) -> str:
    """module_flags_taint: the letter of each set bit, no placeholders (/proc/modules, sysfs)."""
    return "".join(on for bit, (on, _) in enumerate(TAINT_FLAGS) if taints & (1 << bit))


class Taint:
    """tainted_mask and debug_locks, as add_taint changes them."""

    def __init__(self, machine: Machine):
        self.m = machine
        self.mask = 0
        self.debug_locks = True

    def test(self, flag: int) -> bool:
        return bool(self.mask & (1 << flag))

    def add(self, flag: int, lockdep_now_unreliable: bool) -> None:
        """add_taint: the first taint that makes lockdep unreliable turns lock debugging off."""
        if lockdep_now_unreliable and self.debug_locks:
            self.debug_locks = False
            log_store(self.m, "Disabling lock debugging due to kernel taint", LogLevel.WARNING)
        self.mask |= 1 << flag

    def print_tainted(self) -> str:
        """print_tainted: `Not tainted`, or one letter or placeholder per flag."""
        if not self.mask:
            return "Not tainted"
        return "Tainted: " + "".join(on if self.mask & (1 << bit) else off for bit, (on, off) in enumerate(TAINT_FLAGS))

    def proc_taint_write(self, value: int) -> None:
        """proc_taint: a write can set bits, never clear them; an unknown bit is dropped."""
        for bit in range(len(TAINT_FLAGS)):
            if value & (1 << bit):
                self.add(bit, lockdep_now_unreliable=False)
