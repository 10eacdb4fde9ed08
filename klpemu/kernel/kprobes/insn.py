"""Preparing a probed instruction (arch/x86/kernel/kprobes/core.c): is the address an
instruction boundary, and will the instruction be stepped out of line or emulated.

The decoding is capstone's; what is refused, and with which errno, is Linux's: an address
inside an instruction is -EILSEQ (can_probe), an int3 already there (someone else's
breakpoint) or a RIP-relative operand whose copy could not reach its target is -EINVAL
(__copy_instruction fails), and an instruction that cannot run anywhere but where it is
(iret, far branches, an indirect branch through memory) is -EOPNOTSUPP.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from errno import EILSEQ, EINVAL, EOPNOTSUPP
from functools import cache
from typing import TYPE_CHECKING

from ...abi import KPROBE_EMULATE, MAX_INSN_SIZE, PT_REGS_OFFSET
from ...errors import KlpemuError

if TYPE_CHECKING:
    from capstone import Cs

# enum kprobe_emulate_op, by lower-case short name: EMULATE["jcc"]
EMULATE = {name.lower(): value for name, value in KPROBE_EMULATE.items()}


@cache
def _pt_regs_slot() -> dict[int, tuple[str, int]]:
    """The struct pt_regs member and 8-byte slot of each register an indirect branch may name,
    by capstone register id."""
    from capstone import x86_const as cx

    return {
        cx.X86_REG_R15: ("r15", PT_REGS_OFFSET["r15"] // 8),
        cx.X86_REG_R14: ("r14", PT_REGS_OFFSET["r14"] // 8),
        cx.X86_REG_R13: ("r13", PT_REGS_OFFSET["r13"] // 8),
        cx.X86_REG_R12: ("r12", PT_REGS_OFFSET["r12"] // 8),
        cx.X86_REG_RBP: ("bp", PT_REGS_OFFSET["bp"] // 8),
        cx.X86_REG_RBX: ("bx", PT_REGS_OFFSET["bx"] // 8),
        cx.X86_REG_R11: ("r11", PT_REGS_OFFSET["r11"] // 8),
        cx.X86_REG_R10: ("r10", PT_REGS_OFFSET["r10"] // 8),
        cx.X86_REG_R9: ("r9", PT_REGS_OFFSET["r9"] // 8),
        cx.X86_REG_R8: ("r8", PT_REGS_OFFSET["r8"] // 8),
        cx.X86_REG_RAX: ("ax", PT_REGS_OFFSET["ax"] // 8),
        cx.X86_REG_RCX: ("cx", PT_REGS_OFFSET["cx"] // 8),
        cx.X86_REG_RDX: ("dx", PT_REGS_OFFSET["dx"] // 8),
        cx.X86_REG_RSI: ("si", PT_REGS_OFFSET["si"] // 8),
        cx.X86_REG_RDI: ("di", PT_REGS_OFFSET["di"] // 8),
        cx.X86_REG_RSP: ("sp", PT_REGS_OFFSET["sp"] // 8),
    }


@cache
def _cs() -> Cs:
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.detail = True
    return cs


class DisplacementOverflow(KlpemuError):
    """__copy_instruction's pr_err case: the copy is too far from what its operand names."""


@dataclass
class Prepared:
    """What arch_prepare_kprobe leaves in struct arch_specific_insn, and the copy's bytes."""

    size: int
    emulate_op: int
    opcode: int = 0
    indirect_reg: int = 0
    rel32: int = 0
    ret_imm: int = 0
    copy: bytes = b""  # the instruction as it runs at the slot (RIP-relative operand moved)
    text: str = ""


def decode(code: bytes, addr: int):
    insn = next(_cs().disasm(code, addr, 1), None)
    if insn is None:
        raise KlpemuError(f"cannot decode the instruction at 0x{addr:x}", EILSEQ)
    return insn


def check_boundary(read: Callable[[int, int], bytes], func_start: int, addr: int) -> None:
    """can_probe: decode from the function's start; addr must be where an instruction starts.
    read(addr, n) returns the original bytes (with any kprobe's int3 taken out)."""
    at = func_start
    while at < addr:
        at += decode(read(at, MAX_INSN_SIZE), at).size
    if at != addr:
        raise KlpemuError(f"0x{addr:x} is not on an instruction boundary", EILSEQ)


def prepare(code: bytes, addr: int, slot: int) -> Prepared:
    """prepare_emulation / __copy_instruction for the instruction at addr, to run at slot."""
    insn = decode(code, addr)
    raw = bytes(insn.bytes)
    op = [b for b in insn.opcode if b] or [0]
    first = op[0]
    p = Prepared(insn.size, EMULATE["none"], text=f"{insn.mnemonic} {insn.op_str}".strip())
    if first == 0xCC and len(op) == 1:
        # Someone else's breakpoint: __copy_instruction cannot recover what is under it.
        raise KlpemuError(f"cannot probe '{p.text}' at 0x{addr:x}: another int3 is there", EINVAL)
    if first in (0xFA, 0xFB, 0x9C, 0x9D) and len(op) == 1:
        p.emulate_op, p.opcode = EMULATE["ifmodifiers"], first
    elif first in (0xC2, 0xC3, 0xCA, 0xCB) and len(op) == 1:
        p.emulate_op = EMULATE["ret"]
        if first in (0xC2, 0xCA):
            p.ret_imm = insn.operands[0].imm & 0xFFFF
    elif first in (0x9A, 0xEA, 0xCF) and len(op) == 1:
        raise KlpemuError(f"cannot probe '{p.text}' at 0x{addr:x}", EOPNOTSUPP)
    elif first in (0xE8, 0xE9, 0xEB) and len(op) == 1:
        p.emulate_op = EMULATE["call" if first == 0xE8 else "jmp"]
        p.rel32 = _rel(insn, addr)
    elif 0x70 <= first <= 0x7F or (first == 0x0F and len(op) > 1 and 0x80 <= op[1] <= 0x8F):
        p.emulate_op = EMULATE["jcc"]
        p.opcode = (first if first != 0x0F else op[1]) & 0xF
        p.rel32 = _rel(insn, addr)
    elif 0xE0 <= first <= 0xE3 and len(op) == 1:
        p.emulate_op, p.opcode = EMULATE["loop"], first
        p.rel32 = _rel(insn, addr)
    elif first == 0xFF and insn.modrm is not None and (insn.modrm >> 3) & 7 in (2, 3, 4, 5):
        reg_field, mod = (insn.modrm >> 3) & 7, insn.modrm >> 6
        if reg_field in (3, 5) or mod != 3:
            raise KlpemuError(
                f"cannot probe '{p.text}' at 0x{addr:x}: an indirect branch through memory or a far one", EOPNOTSUPP
            )
        reg = insn.operands[0].reg
        if reg not in _pt_regs_slot():
            raise KlpemuError(f"cannot probe '{p.text}' at 0x{addr:x}", EOPNOTSUPP)
        p.emulate_op = EMULATE["call_indirect" if reg_field == 2 else "jmp_indirect"]
        p.indirect_reg = _pt_regs_slot()[reg][1]
    if p.emulate_op == EMULATE["none"]:
        p.copy = _relocate(insn, raw, addr, slot)
    return p


def _rel(insn, addr: int) -> int:
    target = insn.operands[0].imm & (2**64 - 1)
    return target - (addr + insn.size)


def _relocate(insn, raw: bytes, addr: int, slot: int) -> bytes:
    """The copy at slot: a RIP-relative displacement is moved so it still names its target."""
    from capstone import x86_const as cx

    rip_relative = any(o.type == cx.X86_OP_MEM and o.mem.base == cx.X86_REG_RIP for o in insn.operands)
    if not rip_relative:
        return raw
    off = insn.disp_offset
    disp = struct.unpack_from("<i", raw, off)[0]
    new = disp + addr - slot
    if not -(1 << 31) <= new < (1 << 31):
        raise DisplacementOverflow(
            f"Kprobes error: new displacement does not fit into s32 ({new & (2**64 - 1):x})", EINVAL
        )
    return raw[:off] + struct.pack("<i", new) + raw[off + 4 :]
