"""An int3 probe: its instruction prepared to run out of line, its int3 (arch/x86/kernel/kprobes/core.c)."""

from __future__ import annotations

from errno import EILSEQ
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ..printk import LogLevel, log_store
from . import insn as x86
from .probe import FLAG

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..text_poke import TextPoke
    from .table import KprobeTable

INT3 = 0xCC


class ArchKprobes:
    def __init__(self, machine: Machine, text_poke: TextPoke, table: KprobeTable):
        self.m = machine
        self.text_poke = text_poke
        self.table = table

    def original_bytes(self, addr: int, size: int) -> bytes:
        """recover_probed_instruction: text as it was before any kprobe's int3."""
        data = bytearray(self.m.mem.read(addr, size))
        for i in range(size):
            if data[i] == INT3:
                p = self.table.get(addr + i)
                if p and not self.m.struct("kprobe", p).flags & FLAG["FTRACE"]:
                    data[i] = self.m.struct("kprobe", p).opcode
        return bytes(data)

    def prepare(self, kp: int) -> None:
        """arch_prepare_kprobe: check the boundary, classify the instruction and write its
        out-of-line copy, followed by an int3, to a fresh slot."""
        m = self.m
        v = m.struct("kprobe", kp)
        addr = v.addr
        func = m.image.function_at(addr)
        if func is None:
            raise KlpemuError(f"no function at 0x{addr:x}", EILSEQ)
        x86.check_boundary(self.original_bytes, func.addr, addr)
        code = self.original_bytes(addr, x86.MAX_INSN_SIZE)
        slot = m.heap.alloc_text(x86.MAX_INSN_SIZE + 1)
        try:
            prep = x86.prepare(code, addr, slot)
        except KlpemuError as e:
            m.heap.free(slot)
            if isinstance(e, x86.DisplacementOverflow):
                log_store(m, str(e), LogLevel.ERR)  # arch/x86's pr_err, which has no pr_fmt
            raise
        a = v.ainsn
        a.size, a.emulate_op, a.opcode = prep.size, prep.emulate_op, prep.opcode
        a.indirect_reg, a.rel32, a.ret_imm = prep.indirect_reg, prep.rel32, prep.ret_imm
        v.opcode = code[0]
        if prep.copy:
            self.text_poke.write_early(slot, prep.copy + bytes([INT3]))  # nothing runs it yet
            a.insn = slot
        else:
            m.heap.free(slot)
            a.insn = 0

    def free_slot(self, kp: int) -> None:
        """free_insn_slot, as arch_remove_kprobe does it."""
        v = self.m.struct("kprobe", kp)
        if v.ainsn.insn:
            self.m.heap.free(v.ainsn.insn)
            v.ainsn.insn = 0

    def arm(self, kp: int) -> None:
        """arch_arm_kprobe."""
        self.text_poke.poke(self.m.struct("kprobe", kp).addr, bytes([INT3]))

    def disarm(self, kp: int) -> None:
        """arch_disarm_kprobe: the first byte back, as the probe saved it."""
        v = self.m.struct("kprobe", kp)
        self.text_poke.poke(v.addr, bytes([v.opcode]))
