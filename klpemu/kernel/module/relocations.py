"""x86_64 relocations of a module's sections, applied and cleared (arch/x86/kernel/module.c)."""

from __future__ import annotations

import errno
from collections.abc import Callable

from ..printk import LogLevel
from .internal import ModuleError

R_X86_64 = {0: "NONE", 1: "64", 2: "PC32", 4: "PLT32", 10: "32", 11: "32S", 24: "PC64"}


Relocs = list[tuple[int, int, int, int]]  # (r_offset, r_type, symbol index, r_addend) of one SHT_RELA section


def apply_relocate_add(
    name: str,
    relocs: Relocs,
    values: list[int],
    sec_addr: int,
    sec_size: int,
    read: Callable[[int, int], bytes],
    write: Callable[[int, bytes], None],
    log: Callable[[str, int], None],
) -> None:
    """Apply one SHT_RELA section: values are each symbol's final address, sec_addr the address
    of the section the relocations patch; read and write take guest addresses (the loader passes
    its unwritten copy, the livepatch core guest memory). Refuses as Linux does, with its log
    line and -ENOEXEC: an unknown type, a value that does not fit (Linux checks R_X86_64_32 and
    32S; we check the PC-relative ones too, which Linux would silently truncate), a target that
    is not zero."""
    _write_relocate_add(name, relocs, values, sec_addr, sec_size, read, write, log, apply=True)


def clear_relocate_add(
    name: str,
    relocs: Relocs,
    values: list[int],
    sec_addr: int,
    sec_size: int,
    read: Callable[[int, int], bytes],
    write: Callable[[int, bytes], None],
    log: Callable[[str, int], None],
) -> None:
    """Undo apply_relocate_add (x86's clear_relocate_add, for klp relocations whose target module
    goes): each target must hold the value apply wrote, and gets zeros back, so that the same
    relocations can be applied again when the module comes back. Stops at the first target that
    holds something else, with Linux's warning and -ENOEXEC."""
    _write_relocate_add(name, relocs, values, sec_addr, sec_size, read, write, log, apply=False)


def _write_relocate_add(
    name: str,
    relocs: Relocs,
    values: list[int],
    sec_addr: int,
    sec_size: int,
    read: Callable[[int, int], bytes],
    write: Callable[[int, bytes], None],
    log: Callable[[str, int], None],
    apply: bool,
) -> None:
    for offset, r_type, sym_index, addend in relocs:
        kind = R_X86_64.get(r_type)
        if kind is None:
            log(f"{name}: Unknown rela relocation: {r_type}", LogLevel.ERR)
            raise ModuleError(f"{name}: Unknown rela relocation: {r_type}", errno.ENOEXEC)
        if kind == "NONE":
            continue
        size = 8 if kind in ("64", "PC64") else 4
        if sym_index >= len(values) or offset + size > sec_size:
            log(f"{name}: Invalid relocation at offset 0x{offset:x} (symbol {sym_index})", LogLevel.ERR)
            raise ModuleError(f"{name}: relocation at offset 0x{offset:x} outside its section or table", errno.ENOEXEC)
        loc = sec_addr + offset
        val = (values[sym_index] + addend) & (2**64 - 1)
        if kind in ("PC32", "PLT32", "PC64"):
            val = (val - loc) & (2**64 - 1)
        sval = val - (1 << 64) if val >> 63 else val
        if (kind == "32" and val >> 32) or (kind in ("32S", "PC32", "PLT32") and not -(1 << 31) <= sval < (1 << 31)):
            log(f"overflow in relocation type {r_type} val {val:x}", LogLevel.ERR)
            log(f"`{name}' likely not compiled with -mcmodel=kernel", LogLevel.ERR)
            raise ModuleError(f"{name}: overflow in relocation type {r_type} val {val:x}", errno.ENOEXEC)
        value = (val & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        if apply:
            if any(read(loc, size)):
                log(
                    f"x86/modules: Invalid relocation target, existing value is nonzero for type {r_type}, "
                    f"loc {loc:016x}, val {val:x}",
                    LogLevel.ERR,
                )
                raise ModuleError(f"{name}: relocation target 0x{loc:x} is not zero", errno.ENOEXEC)
            write(loc, value)
        else:
            if read(loc, size) != value:
                log(
                    f"x86/modules: Invalid relocation target, existing value does not match expected value "
                    f"for type {r_type}, loc {loc:016x}, val {val:x}",
                    LogLevel.WARNING,
                )
                raise ModuleError(f"{name}: relocation target 0x{loc:x} does not hold its value", errno.ENOEXEC)
            write(loc, bytes(size))
