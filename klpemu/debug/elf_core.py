"""An ELF core of the stopped machine, which `gdb IMAGE CORE` opens post mortem: one NT_PRSTATUS
note per CPU (gdb's threads; the thread of CPU N is LWP N+1, pid 0 being no thread to gdb) and
one PT_LOAD segment per run of mapped virtual pages, at the virtual addresses the kernel uses.

The layouts are the x86-64 ABI's: struct elf_prstatus of include/uapi/linux/elfcore.h with
pr_reg in the order of struct user_regs_struct (arch/x86/include/asm/user_64.h).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

from unicorn import x86_const as x

from ..machine.memory import PAGE_SIZE, PTE_RW

if TYPE_CHECKING:
    from ..machine.machine import Machine

ET_CORE = 4
EM_X86_64 = 62
PT_LOAD = 1
PT_NOTE = 4
PF_X, PF_W, PF_R = 1, 2, 4
NT_PRSTATUS = 1
ELF_HEADER_SIZE = 64
PROGRAM_HEADER_SIZE = 56

# struct user_regs_struct, in order; orig_rax has no register here and reads as -1 (no syscall)
USER_REGS = [
    x.UC_X86_REG_R15,
    x.UC_X86_REG_R14,
    x.UC_X86_REG_R13,
    x.UC_X86_REG_R12,
    x.UC_X86_REG_RBP,
    x.UC_X86_REG_RBX,
    x.UC_X86_REG_R11,
    x.UC_X86_REG_R10,
    x.UC_X86_REG_R9,
    x.UC_X86_REG_R8,
    x.UC_X86_REG_RAX,
    x.UC_X86_REG_RCX,
    x.UC_X86_REG_RDX,
    x.UC_X86_REG_RSI,
    x.UC_X86_REG_RDI,
    None,
    x.UC_X86_REG_RIP,
    x.UC_X86_REG_CS,
    x.UC_X86_REG_EFLAGS,
    x.UC_X86_REG_RSP,
    x.UC_X86_REG_SS,
    x.UC_X86_REG_FS_BASE,
    x.UC_X86_REG_GS_BASE,
    x.UC_X86_REG_DS,
    x.UC_X86_REG_ES,
    x.UC_X86_REG_FS,
    x.UC_X86_REG_GS,
]


def _note(name: bytes, note_type: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(name) + 1, len(desc), note_type) + pad(name + b"\0") + pad(desc)


def _prstatus(pid: int, regs: list[int]) -> bytes:
    """struct elf_prstatus: signal info, pids and times (zero but the pid), then pr_reg."""
    head = struct.pack("<3ih2xQQ4i", 0, 0, 0, 0, 0, 0, pid, 0, pid, pid)
    times = bytes(4 * 16)
    body = head + times + struct.pack("<27Q", *regs) + struct.pack("<i4x", 1)
    assert len(body) == 336
    return body


def _runs(machine: Machine) -> list[tuple[int, int, int]]:
    """Runs of consecutive mapped virtual pages with the same rights: (start, size, p_flags)."""
    runs: list[tuple[int, int, int]] = []
    for va, _pa, pte in machine.mem.mapped_pages():
        flags = PF_R | PF_X | (PF_W if pte & PTE_RW else 0)
        if runs and runs[-1][0] + runs[-1][1] == va and runs[-1][2] == flags:
            start, size, _ = runs[-1]
            runs[-1] = (start, size + PAGE_SIZE, flags)
        else:
            runs.append((va, PAGE_SIZE, flags))
    return runs


def cpu_registers(machine: Machine, cpu: int) -> list[int]:
    ctx = machine.cpus[cpu].ctx
    return [(1 << 64) - 1 if rid is None else ctx.reg_read(rid) & ((1 << 64) - 1) for rid in USER_REGS]


def write_core(machine: Machine, path: str | Path) -> int:
    """Write the core; returns its size in bytes. The machine must be stopped between runs, so
    that every CPU's registers are in its saved context."""
    notes = b"".join(
        _note(b"CORE", NT_PRSTATUS, _prstatus(cpu.index + 1, cpu_registers(machine, cpu.index)))
        for cpu in machine.cpus
        if cpu.online
    )
    runs = _runs(machine)
    phnum = 1 + len(runs)
    offset = ELF_HEADER_SIZE + PROGRAM_HEADER_SIZE * phnum
    headers = [struct.pack("<IIQQQQQQ", PT_NOTE, 0, offset, 0, 0, len(notes), 0, 4)]
    offset += len(notes)
    data_start = offset + (-offset % PAGE_SIZE)
    offset = data_start
    for start, size, flags in runs:
        headers.append(struct.pack("<IIQQQQQQ", PT_LOAD, flags, offset, start, 0, size, size, PAGE_SIZE))
        offset += size
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    elf_header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        ET_CORE,
        EM_X86_64,
        1,
        0,
        ELF_HEADER_SIZE,
        0,
        0,
        ELF_HEADER_SIZE,
        PROGRAM_HEADER_SIZE,
        phnum,
        0,
        0,
        0,
    )
    with open(path, "wb") as f:
        f.write(elf_header + b"".join(headers) + notes)
        f.write(bytes(data_start - f.tell()))
        for start, size, _ in runs:
            f.write(machine.mem.read(start, size))
        return f.tell()
