"""The export tables modules link against: __ksymtab and __ksymtab_gpl of vmlinux and of each
loaded module, and find_symbol over them (kernel/module/main.c, include/linux/export.h).

An entry is Linux's struct kernel_symbol with PREL32 relocations: three 32-bit offsets, each
from its own field, to the symbol, to its name in __ksymtab_strings and to its namespace.
vmlinux's are read from the image file once; a module's from its sections once its relocations
are applied. A module object built without kbuild's final link has one section per export,
___ksymtab+NAME or ___ksymtab_gpl+NAME, which that link would have merged.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

    from .internal import Module

KERNEL_SYMBOL_SIZE = 12


@dataclass(frozen=True)
class KernelSymbol:
    """One export: the symbol's address and whether EXPORT_SYMBOL_GPL made it."""

    name: str
    value: int
    gpl_only: bool


def ksymtab_kind(section: str) -> bool | None:
    """Whether a section holds GPL-only exports (True), plain ones (False), or none (None)."""
    if section == "__ksymtab_gpl" or section.startswith("___ksymtab_gpl+"):
        return True
    if section == "__ksymtab" or section.startswith("___ksymtab+"):
        return False
    return None


def read_entries(data: bytes, addr: int, gpl_only: bool, read_name: Callable[[int], str]) -> list[KernelSymbol]:
    """The entries of one table whose bytes (relocated) are data, loaded at addr."""
    out = []
    for off in range(0, len(data) - KERNEL_SYMBOL_SIZE + 1, KERNEL_SYMBOL_SIZE):
        value_off, name_off, _ = struct.unpack_from("<iii", data, off)
        entry = addr + off
        value = (entry + value_off) & (2**64 - 1)
        name = read_name((entry + 4 + name_off) & (2**64 - 1))
        out.append(KernelSymbol(name, value, gpl_only))
    return out


def vmlinux_exports(elf: ELFFile) -> dict[str, KernelSymbol]:
    """The image's __ksymtab and __ksymtab_gpl, by name."""

    def section(name: str) -> tuple[int, bytes] | None:
        sec = elf.get_section_by_name(name)
        return None if sec is None else (sec["sh_addr"], sec.data())

    return exports_of(section)


def exports_of(section: Callable[[str], tuple[int, bytes] | None]) -> dict[str, KernelSymbol]:
    """vmlinux_exports of an image whose sections section(name) gives as (address, bytes)."""
    strings = section("__ksymtab_strings")
    if strings is None:
        return {}
    base, blob = strings

    def read_name(addr: int) -> str:
        off = addr - base
        if not 0 <= off < len(blob):
            return ""
        end = blob.find(b"\0", off)
        return blob[off : end if end >= 0 else len(blob)].decode("utf-8", "surrogateescape")

    exports: dict[str, KernelSymbol] = {}
    for name in ("__ksymtab", "__ksymtab_gpl"):
        sec = section(name)
        if sec is not None:
            for sym in read_entries(sec[1], sec[0], name == "__ksymtab_gpl", read_name):
                exports[sym.name] = sym
    return exports


@dataclass(frozen=True)
class Found:
    """find_symbol's answer: the export and the module that owns it (None: vmlinux)."""

    sym: KernelSymbol
    owner: Module | None


def find_symbol(name: str, gplok: bool, vmlinux: dict[str, KernelSymbol], modules: list[Module]) -> Found | None:
    """find_symbol: vmlinux first, then each formed module in the modules list's order. A
    GPL-only export is invisible to a module that is not GPL-compatible."""
    sym = vmlinux.get(name)
    if sym is not None and (gplok or not sym.gpl_only):
        return Found(sym, None)
    for mod in modules:
        sym = mod.syms.get(name)
        if sym is not None and (gplok or not sym.gpl_only):
            return Found(sym, mod)
    return None
