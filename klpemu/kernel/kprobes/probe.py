"""A registered probe as the host keeps it, and kprobes' log lines (include/linux/kprobes.h, kernel/kprobes.c)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...abi import KPROBE_FLAG
from ..printk import LogLevel, log_store

if TYPE_CHECKING:
    from ...machine.machine import Machine

FLAG = KPROBE_FLAG  # by short name: FLAG["GONE"]
PR_FMT = "kprobes: "  # kernel/kprobes.c's pr_fmt

# A Python pre handler: (probe, regs view) -> int (nonzero: it set regs.ip, skip the step);
# a post handler: (probe, regs view, flags) -> None.
PyHandler = Callable[..., int | None]


def pr_info(m: Machine, text: str) -> None:
    log_store(m, PR_FMT + text, LogLevel.INFO)


def pr_warn(m: Machine, text: str) -> None:
    log_store(m, PR_FMT + text, LogLevel.WARNING)


def pr_err(m: Machine, text: str) -> None:
    log_store(m, PR_FMT + text, LogLevel.ERR)


@dataclass(eq=False)
class Probe:
    """What the host keeps about one registered struct kprobe (a kretprobe's embedded one too)."""

    kp: int  # the guest struct kprobe
    owner: str  # the module that registered it, or "host"
    kind: str = "k"  # "k" a kprobe, "r" a kretprobe's entry probe
    rp: int = 0  # the struct kretprobe, for kind "r"
    py: dict[str, PyHandler] = field(default_factory=dict)  # Python handlers by role
    allocations: list[int] = field(default_factory=list)  # host-made memory to free with it
    hits: dict[str, int] = field(default_factory=dict)  # calls of each Python handler
