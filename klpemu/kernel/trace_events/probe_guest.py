"""A kprobe event's probe in guest memory: a struct trace_kprobe (its kretprobe, whose kprobe
kprobes registers), and each argument's fetch program, which the guest's kprobe_dispatcher /
kretprobe_dispatcher run at every hit (firmware/kernel/trace/trace_kprobe.c)."""

from __future__ import annotations

from errno import ENOENT
from typing import TYPE_CHECKING

from ...abi import FETCH_NOP_SYMBOL, FETCH_OP, PROBE_NOFAULT_RANGES
from ...errors import KlpemuError
from ...machine.kstr import kbytes
from ...machine.memory import PAGE_SIZE, PTE_USER
from .trace_probe import FetchInsn, split_symbol_offset

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .trace_probe import ProbeArg


class GuestAllocations:
    """What one probe took from the kernel heap, freed together."""

    def __init__(self, machine: Machine):
        self.m = machine
        self.addrs: list[int] = []

    def zalloc(self, size: int) -> int:
        addr = self.m.heap.kzalloc(max(size, 1))
        self.addrs.append(addr)
        return addr

    def string(self, text: str) -> int:
        raw = kbytes(text) + b"\0"
        addr = self.zalloc(len(raw))
        self.m.mem.write(addr, raw)
        return addr

    def free(self) -> None:
        for addr in self.addrs:
            self.m.heap.free(addr)
        self.addrs.clear()


def resolve_symbol(machine: Machine, lookup, text: str) -> int:
    """traceprobe_update_arg: `@SYM[+|-OFFS]`'s address."""
    split = split_symbol_offset(text)
    addr = lookup(split[0]) if split is not None else None
    if addr is None or split is None:
        raise KlpemuError(f"{text}: no such symbol", ENOENT)
    return (addr + split[1]) & (2**64 - 1)


def write_program(machine: Machine, mem: GuestAllocations, code: list[FetchInsn], lookup) -> int:
    """The fetch_insn array of one argument."""
    m = machine
    size = m.types.sizeof("fetch_insn")
    base = mem.zalloc(size * len(code))
    symbol_addr = None
    for i, insn in enumerate(code):
        v = m.struct("fetch_insn", base + i * size)
        v.op = FETCH_NOP_SYMBOL if insn.op == "NOP_SYMBOL" else FETCH_OP[insn.op]
        v.basesize, v.lshift, v.rshift = insn.basesize, insn.lshift, insn.rshift
        v.size, v.param = insn.size, insn.param
        v.offset = insn.offset
        if insn.op == "NOP_SYMBOL":
            symbol_addr = resolve_symbol(m, lookup, insn.data)
        elif insn.op == "DATA":
            v.immediate = mem.string(insn.data)
        elif insn.op == "IMM" and symbol_addr is not None:
            v.immediate, symbol_addr = symbol_addr, None
        else:
            v.immediate = insn.immediate
    return base


def build_trace_kprobe(
    machine: Machine,
    mem: GuestAllocations,
    type_id: int,
    args: list[ProbeArg],
    size: int,
    lookup,
    entry_args: list[int] | None = None,
) -> int:
    """A struct trace_kprobe with its trace_probe filled; the caller sets the place and handlers."""
    m = machine
    tk = mem.zalloc(m.types.sizeof("trace_kprobe"))
    arg_size = m.types.sizeof("probe_arg")
    parg = mem.zalloc(arg_size * len(args)) if args else 0
    for i, a in enumerate(args):
        v = m.struct("probe_arg", parg + i * arg_size)
        v.code = write_program(m, mem, a.code, lookup)
        v.offset = a.offset
        v.dynamic = int(a.type.is_string)
    v = m.struct("trace_kprobe", tk)
    v.file.event_type = type_id
    tp = v.tp
    tp.nr_args = len(args)
    tp.size = size
    tp.args = parg
    if entry_args:  # the entry handler's program: each argument, then where it goes
        steps: list[FetchInsn] = []
        for i, param in enumerate(entry_args):
            steps += [FetchInsn("ARG", param=param), FetchInsn("ST_EDATA", offset=8 * i)]
        tp.entry_arg = write_program(m, mem, [*steps, FetchInsn("END")], lookup)
    return tk


def write_nofault_ranges(machine: Machine) -> None:
    """probe_nofault_ranges: the mapped virtual ranges, merged, each kernel or user memory, that
    a probe may read (copy_from_kernel_nofault and copy_from_user_nofault's answer here)."""
    ranges: list[list[int]] = []
    for va, _pa, flags in machine.mem.mapped_pages():
        user = int(bool(flags & PTE_USER) and va < 1 << 63)
        if ranges and ranges[-1][1] == va and ranges[-1][2] == user:
            ranges[-1][1] = va + PAGE_SIZE
        else:
            ranges.append([va, va + PAGE_SIZE, user])
    table = machine.var("probe_nofault_ranges")
    for i in range(PROBE_NOFAULT_RANGES):
        start, end, user = ranges[i] if i < len(ranges) else (0, 0, 0)
        table[i].start, table[i].end, table[i].user = start, end, user
