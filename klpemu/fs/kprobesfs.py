"""/sys/kernel/debug/kprobes: the probes (list), arming them all (enabled), and the blacklist.

The kernel objects hold the data; the text is rendered here, as kernel/kprobes.c's seq_file
show functions render it.
"""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ..abi import KPROBE_FLAG
from ..errors import KlpemuError
from .vfs import VFS, File

if TYPE_CHECKING:
    from ..kernel.ftrace import Ftrace
    from ..kernel.kprobes import Kprobes
    from ..machine.machine import Machine


def report_probe(kprobes: Kprobes, p: int, pp: int) -> str:
    """report_probe: one line of `list` for probe p, whose probe in kprobe_table is pp (p
    itself, or its aggregate, whose flags say how it is armed)."""
    m = kprobes.m
    v = kprobes.view(p)
    kind = "r" if v.pre_handler == kprobes.pre_handler_kretprobe else "k"
    sym = m.image.function_at(v.addr)
    flags = kprobes.view(pp).flags
    tail = (
        ("[GONE]" if v.flags & KPROBE_FLAG["GONE"] else "")
        + ("[DISABLED]" if v.flags & KPROBE_FLAG["DISABLED"] and not v.flags & KPROBE_FLAG["GONE"] else "")
        + ("[OPTIMIZED]" if flags & KPROBE_FLAG["OPTIMIZED"] else "")
        + ("[FTRACE]" if flags & KPROBE_FLAG["FTRACE"] else "")
    )
    if sym is not None:
        return f"{v.addr:016x}  {kind}  {sym.name}+0x{v.addr - sym.addr:x}  {sym.module or ' '} {tail}\n"
    return f"{v.addr:016x}  {kind}  0x{v.addr:x} {tail}\n"


def list_text(kprobes: Kprobes) -> str:
    """show_kprobe_addr: kprobe_table bucket by bucket, an aggregate as its probes."""
    out: list[str] = []
    for p in kprobes.table():
        if kprobes.is_aggregate(p):
            out.extend(report_probe(kprobes, c, p) for c in kprobes.children(p))
        else:
            out.append(report_probe(kprobes, p, p))
    return "".join(out)


def blacklist_text(kprobes: Kprobes, ftrace: Ftrace) -> str:
    """kprobe_blacklist_seq_show: each area and its function (%ps)."""
    return "".join(f"0x{e.start:016x}-0x{e.end:016x}\t{ftrace.symbol_ps(e.start)}\n" for e in kprobes.blacklist.entries)


def mount(vfs: VFS, machine: Machine) -> None:
    kprobes = machine.kernel.kprobes
    ftrace = machine.kernel.ftrace
    d = vfs.makedirs("/sys/kernel/debug/kprobes", 0o700)

    def write_enabled(data: str, append: bool = False) -> None:
        first = data[:1]
        if first in ("y", "Y", "1"):
            kprobes.arm_all()
        elif first in ("n", "N", "0"):
            kprobes.disarm_all()
        else:
            raise KlpemuError("enabled takes 0 or 1", EINVAL)

    d.add(File("list", 0o400, lambda: list_text(kprobes)))
    d.add(File("enabled", 0o600, lambda: "0\n" if kprobes.all_disarmed else "1\n", write_enabled))
    d.add(File("blacklist", 0o400, lambda: blacklist_text(kprobes, ftrace)))
