"""The symbols of loaded modules, as kallsyms and klp_find_object_symbol see them (kernel/module/kallsyms.c)."""

from __future__ import annotations

import bisect
import errno
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ...machine.image import Symbol
from ...machine.kstr import kstr
from .internal import INIT_TYPES

if TYPE_CHECKING:
    from elftools.elf.sections import Symbol as Symbol_
    from elftools.elf.sections import SymbolTableSection

    from ...machine.machine import Machine
    from .internal import Module

KINDS = {"STT_FUNC": "func", "STT_OBJECT": "object", "STT_NOTYPE": "label"}
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4


class ModuleKallsyms:
    """A loaded module's symbols, in its symbol table's order, as kallsyms and
    klp_find_object_symbol see them: sympos counts same-named symbols in that order."""

    def __init__(self, module: str, symbols: list[tuple[str, int, int, str, bool]], text: list[tuple[int, int]]):
        self.module = module
        self.text = text  # [start, end) of each text allocation
        seen: dict[str, int] = {}
        self.symbols: list[Symbol] = []
        for name, addr, size, kind, local in symbols:
            seen[name] = seen.get(name, 0) + 1
            self.symbols.append(Symbol(name, addr, size, kind, local, seen[name], module))
        self.by_name: dict[str, list[Symbol]] = {}
        for sym in self.symbols:
            self.by_name.setdefault(sym.name, []).append(sym)
        # function_at's index: the functions by address, each with its symbol-table position
        funcs = sorted((sym.addr, order, sym) for order, sym in enumerate(self.symbols) if sym.kind == "func")
        self._func_addrs = [addr for addr, _, _ in funcs]
        self._funcs = [(order, sym) for _, order, sym in funcs]
        self._max_func_size = max((sym.size for _, sym in self._funcs), default=0)

    def contains(self, addr: int) -> bool:
        for start, end in self.text:  # a loop, not any(): asked for every frame of every task
            if start <= addr < end:
                return True
        return False

    def function_at(self, addr: int) -> Symbol | None:
        """The first function in symbol-table order that contains addr (a static function
        before the init_module alias gcc emits for it)."""
        best: tuple[int, Symbol] | None = None
        i = bisect.bisect_right(self._func_addrs, addr) - 1
        # only a function starting less than the largest size back can contain addr
        while i >= 0 and addr - self._func_addrs[i] < self._max_func_size:
            order, sym = self._funcs[i]
            if sym.contains(addr) and (best is None or order < best[0]):
                best = (order, sym)
            i -= 1
        return None if best is None else best[1]

    def lookup(self, name: str, sympos: int = 0) -> Symbol:
        syms = self.by_name.get(name)
        if not syms:
            raise KlpemuError(f"symbol '{name}' not found in module {self.module}", errno.EINVAL)
        if sympos < 0:
            raise KlpemuError(f"symbol '{name}': invalid position {sympos}", errno.EINVAL)
        if sympos == 0:
            if len(syms) > 1:
                raise KlpemuError(
                    f"unresolvable ambiguity for symbol '{name}' in module {self.module}: {len(syms)} matches",
                    errno.EINVAL,
                )
            return syms[0]
        if sympos > len(syms):
            raise KlpemuError(f"symbol '{name}' position {sympos} not found in module {self.module}", errno.EINVAL)
        return syms[sympos - 1]


def symbol_name(strtab: bytes, offset: int) -> str:
    """A symbol's name from the string table's bytes, through kstr: the same text the host makes
    of the name when it reads it from guest memory (pyelftools would make U+FFFD of a bad byte)."""
    end = strtab.find(b"\0", offset)
    return kstr(strtab[offset : end if end >= 0 else len(strtab)])


def elf_type(sym: Symbol_, sec: Mapping) -> str:
    """elf_type: a module symbol's type letter in /proc/kallsyms, from its binding and section."""
    if sym["st_info"]["bind"] == "STB_WEAK":
        return "v" if sym["st_info"]["type"] == "STT_OBJECT" else "w"
    flags = sec["sh_flags"]
    if flags & SHF_EXECINSTR:
        return "t"
    if flags & SHF_ALLOC and sec["sh_type"] != "SHT_NOBITS":
        return "d" if flags & SHF_WRITE else "r"
    if sec["sh_type"] == "SHT_NOBITS":
        return "b"
    return "?"


def add_kallsyms(
    m: Machine, mod: Module, symtab: SymbolTableSection, values: list[int], place: Mapping[int, tuple[str, int]]
) -> None:
    """add_kallsyms: every named symbol of a loaded section (place: section index -> mod_mem_type
    and offset), in symbol-table order; published with the init symbols, as init may run."""
    strtab = symtab.stringtable.data()
    for sym, value in zip(symtab.iter_symbols(), values, strict=True):
        shndx = sym["st_shndx"]
        kind = KINDS.get(sym["st_info"]["type"])
        if not sym.name or kind is None or not isinstance(shndx, int) or shndx not in place:
            continue
        mem_type = place[shndx][0]
        name = symbol_name(strtab, sym["st_name"])
        local = sym["st_info"]["bind"] == "STB_LOCAL"
        letter = elf_type(sym, symtab.elffile.get_section(shndx).header)
        mod.symtab.append((name, value, sym["st_size"], kind, local, mem_type, letter))
    publish_kallsyms(m, mod, init=True)


def publish_kallsyms(m: Machine, mod: Module, init: bool) -> None:
    """Publish mod's kallsyms: with its init symbols while init may run, without them after."""
    old = mod.kallsyms
    syms = [s[:5] for s in mod.symtab if init or s[5] not in INIT_TYPES]
    mod.kallsyms = ModuleKallsyms(mod.name, syms, mod.text_ranges())
    if old in m.image.module_kallsyms:
        m.image.module_kallsyms[m.image.module_kallsyms.index(old)] = mod.kallsyms
    else:
        m.image.module_kallsyms.append(mod.kallsyms)


def remove_kallsyms(m: Machine, mod: Module) -> None:
    """The module's symbols leave kallsyms (free_module, or a load that failed)."""
    if mod.kallsyms in m.image.module_kallsyms:
        m.image.module_kallsyms.remove(mod.kallsyms)
