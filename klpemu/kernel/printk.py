"""The kernel log: reading the guest's printk ring as dmesg, and adding the host's own lines."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from ..machine.kstr import kbytes, kstr

if TYPE_CHECKING:
    from ..machine.machine import Machine


class LogLevel(IntEnum):
    """A record's level, as include/linux/kern_levels.h numbers them."""

    EMERG = 0
    ALERT = 1
    CRIT = 2
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7


@dataclass(frozen=True)
class LogRecord:
    seq: int
    ts_nsec: int
    caller_id: int
    level: int
    text: str

    def dmesg_line(self) -> str:
        sec, ns = divmod(self.ts_nsec, 1_000_000_000)
        return f"[{sec:5d}.{ns // 1000:06d}] {self.text}"


def records(machine: Machine, since_seq: int = 0) -> list[LogRecord]:
    rb = machine.var("printk_rb")
    ring = rb.records
    n = len(ring)
    next_seq = rb.next_seq
    out = []
    for seq in range(max(since_seq, next_seq - n, 0), next_seq):
        r = ring[seq % n]
        text = kstr(machine.mem.read(r.addr_of("text"), r.text_len))
        out.append(LogRecord(r.seq, r.ts_nsec, r.caller_id, r.level, text))
    return out


def dmesg(machine: Machine) -> str:
    return "".join(rec.dmesg_line() + "\n" for rec in records(machine))


def log_store(machine: Machine, text: str, level: int = LogLevel.WARNING, caller_id: int = 0) -> None:
    """Append a record exactly as the guest's log_store does, for lines the host prints as the kernel."""
    rb = machine.var("printk_rb")
    ring = rb.records
    seq = rb.next_seq
    r = ring[seq % len(ring)]
    data = kbytes(text)[: r.type.member("text")[1].size]
    r.seq = seq
    r.ts_nsec = machine.now
    r.caller_id = caller_id
    r.level = level
    r.text_len = len(data)
    machine.mem.write(r.addr_of("text"), data)
    rb.next_seq = seq + 1
