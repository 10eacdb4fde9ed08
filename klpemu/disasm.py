"""Disassembly for people: capstone in AT&T syntax (objdump's), with symbolized targets."""

from __future__ import annotations

import re
from errno import EINVAL
from functools import cache
from typing import TYPE_CHECKING

from .errors import KlpemuError

if TYPE_CHECKING:
    from capstone import Cs

    from .machine.machine import Machine

_HEX = re.compile(r"0x(ffffffff[0-9a-f]{8})")
_BIG_DECIMAL = re.compile(r"\$(\d{7,})")


@cache
def _cs() -> Cs:
    from capstone import CS_ARCH_X86, CS_MODE_64, CS_OPT_SYNTAX_ATT, Cs

    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.syntax = CS_OPT_SYNTAX_ATT
    return cs


def _hex_immediates(op_str: str) -> str:
    return _BIG_DECIMAL.sub(lambda m: f"$0x{int(m.group(1)):x}", op_str)


def where(machine: Machine, addr: int) -> str:
    """An address as a person reads it: `func+0xoff/0xsize`, or an ftrace trampoline made at
    run time (no symbol names it) as `ftrace_trampoline+0xoff [ops]`, else the bare address."""
    if machine.image.function_at(addr) is None and machine._kernel is not None:
        tramp = machine.kernel.ftrace.trampoline_at(addr)
        if tramp is not None:
            ops, off = tramp
            return f"ftrace_trampoline+{off:#x} [{ops.name}]"
    return machine.image.symbolize(addr)


def _annotate(machine: Machine, mnemonic: str, op_str: str) -> str:
    op_str = _hex_immediates(op_str)
    text = f"{mnemonic:<7} {op_str}".rstrip()
    m = _HEX.search(op_str)
    if m and mnemonic.startswith(("call", "j")):
        addr = int(m.group(1), 16)
        sym = machine.image.function_at(addr)
        if sym is not None:
            off = addr - sym.addr
            text += f" <{sym.name}{f'+{off:#x}' if off else ''}>"
        elif (tramp := machine.kernel.ftrace.trampoline_at(addr)) is not None:
            ops, off = tramp
            text += f" <ftrace_trampoline{f'+{off:#x}' if off else ''} [{ops.name}]>"
    return text


def insn_at(machine: Machine, addr: int) -> tuple[int, bytes, str]:
    """(size, bytes, text) of the instruction at addr, as it is in guest memory now."""
    code = machine.mem.read(addr, 16)
    insn = next(_cs().disasm(code, addr), None)
    if insn is None:
        return 1, code[:1], "(bad)"
    return insn.size, bytes(insn.bytes), _annotate(machine, insn.mnemonic, insn.op_str)


def disassemble_function(machine: Machine, name: str) -> str:
    """The live bytes of a function, one instruction per line: address, offset, bytes, text."""
    func, _, pos = name.partition(",")
    try:
        sym = machine.image.lookup(func, int(pos) if pos else 0)
    except ValueError:
        raise KlpemuError(f"{name}: bad symbol position", EINVAL) from None
    if sym.size == 0:
        raise KlpemuError(f"{func}: no size recorded, cannot disassemble", EINVAL)
    code = machine.mem.read(sym.addr, sym.size)
    dups = sym.sympos > 1 or len(machine.image.by_name.get(sym.name, ())) > 1
    where = f" [{sym.module}]" if sym.module else ""
    lines = [f"Dump of {sym.name}{where} ({'sympos ' + str(sym.sympos) + ', ' if dups else ''}0x{sym.size:x} bytes):"]
    end = 0
    for insn in _cs().disasm(code, sym.addr):
        raw = " ".join(f"{b:02x}" for b in insn.bytes)
        lines.append(
            f"  {insn.address:016x} <+{insn.address - sym.addr}>:\t{raw:<24}\t"
            f"{_annotate(machine, insn.mnemonic, insn.op_str)}"
        )
        end = insn.address + insn.size
    if end < sym.addr + sym.size:
        lines.append(f"  ... {sym.addr + sym.size - end} bytes that do not decode")
    return "\n".join(lines) + "\n"
