"""Livepatch relocations (kernel/livepatch/core.c: klp_resolve_symbols, klp_write_section_relocs,
klp_apply_object_relocs, klp_clear_object_relocs; Documentation/livepatch/module-elf-format.rst).

A livepatch module reaches what it cannot link against (a static function or variable of
vmlinux, anything of a module that may not be loaded yet) through SHN_LIVEPATCH symbols named
`.klp.sym.<objname>.<symname>,<sympos>`, used by SHF_RELA_LIVEPATCH sections named
`.klp.rela.<objname>.<section>`. The loader has the `.klp.rela.vmlinux.*` sections written while
it loads the module (klp_apply_section_relocs, objname None); those of a module object are
written when that module is there (klp_init_object_loaded, at enable or in klp_module_coming) and
zeroed when it goes (klp_module_going), so that they can be written again when it comes back.

Writing one object's relocations is all or nothing: every symbol is resolved and every target
checked before the first byte changes (Linux may leave an earlier section written when a later
one fails; a target module refused that way could never load again).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from errno import EINVAL
from typing import TYPE_CHECKING, NoReturn

from ...errors import KlpemuError
from ...machine.types import Pointer
from ..module import ModuleError, apply_relocate_add, clear_relocate_add
from ..printk import LogLevel, log_store

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..module import KlpInfo, Module, Relocs
    from .core import Livepatch

SHN_LIVEPATCH = 0xFF20
# The widths of the kernel's sscanf formats: MODULE_NAME_LEN - 1 and KSYM_NAME_LEN - 1.
_SEC_NAME = re.compile(r"\.klp\.rela\.([^.]{1,55})")
_SYM_NAME = re.compile(r"\.klp\.sym\.([^.]{1,55})\.([^,]{1,511}),\s*([+-]?)(\d+)")

Read = Callable[[int, int], bytes]
Write = Callable[[int, bytes], None]


def parse_klp_sym(name: str) -> tuple[str, str, int] | None:
    """sscanf(name, ".klp.sym.%55[^.].%511[^,],%lu"): (objname, symname, sympos), or None
    unless all three convert. Like %lu, a sign is taken and a negative number wraps."""
    match = _SYM_NAME.match(name)
    if match is None:
        return None
    objname, symname, sign, digits = match.groups()
    pos = min(int(digits), (1 << 64) - 1)  # strtoul saturates
    return objname, symname, (-pos) % (1 << 64) if sign == "-" else pos


def section_objname(name: str) -> str | None:
    """sscanf(name, ".klp.rela.%55[^.]"): the object a klp relocation section is for."""
    match = _SEC_NAME.match(name)
    return match.group(1) if match else None


class _KlpElf:
    """What the klp relocations need of the module's ELF (Linux keeps it as mod->klp_info):
    each section's name, target and relocations, and each symbol's name and section index."""

    def __init__(self, data: bytes):
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        elf = ELFFile(io.BytesIO(data))
        self.sections = list(elf.iter_sections())
        symtab = next(s for s in self.sections if isinstance(s, SymbolTableSection) and s.name == ".symtab")
        self.symbols = [(sym.name, sym["st_shndx"]) for sym in symtab.iter_symbols()]

    def relocs(self, secndx: int) -> Relocs:
        return [
            (r["r_offset"], r["r_info_type"], r["r_info_sym"], r["r_addend"])
            for r in self.sections[secndx].iter_relocations()  # type: ignore[attr-defined]  # a RelocationSection
        ]


def _klp_elf(klp: KlpInfo) -> _KlpElf:
    """The module's ELF, parsed the first time the core needs it and kept with its klp_info."""
    if klp.parsed is None:
        klp.parsed = _KlpElf(klp.elf)
    return klp.parsed


class KlpRelocs:
    def __init__(self, machine: Machine, lp: Livepatch):
        self.m = machine
        self.lp = lp

    def _log(self, text: str, level: int) -> None:
        """apply_relocate_add's own lines (x86/modules:, <module>:) carry no livepatch prefix."""
        log_store(self.m, text, level)

    # --- one section ---------------------------------------------------------------------------

    def _resolve_symbols(self, elf: _KlpElf, klp: KlpInfo, relocs: Relocs, sec_objname: str) -> None:
        """klp_resolve_symbols: each relocation's symbol gets the address its name asks for."""
        sec_vmlinux = sec_objname == "vmlinux"
        for _, _, index, _ in relocs:
            if index >= len(elf.symbols):
                continue  # apply_relocate_add refuses it
            name, shndx = elf.symbols[index]
            if shndx != SHN_LIVEPATCH:
                self._fail(f"symbol {name} is not marked as a livepatch symbol")
            parsed = parse_klp_sym(name)
            if parsed is None:
                self._fail(f"symbol {name} has an incorrectly formatted name")
            sym_objname, sym_name, sympos = parsed
            # Module sections may not reach into vmlinux: those are written before the module
            # object exists, so nothing of vmlinux needs to wait for it.
            if not sec_vmlinux and sym_objname == "vmlinux":
                self._fail(
                    f"invalid access to vmlinux symbol '{sym_name}' from module-specific livepatch relocation section"
                )
            klp.symbol_values[index] = self.lp.find_object_symbol(sym_objname, sym_name, sympos).addr

    def _fail(self, message: str) -> NoReturn:
        self.lp.log(message, LogLevel.ERR)
        raise KlpemuError(message, EINVAL)

    def _write_section_relocs(
        self,
        pmod: Module,
        klp: KlpInfo,
        elf: _KlpElf,
        secndx: int,
        objname: str | None,
        apply: bool,
        read: Read,
        write: Write,
    ) -> None:
        """klp_write_section_relocs: the section is written (or cleared) if it is for objname."""
        sec = elf.sections[secndx]
        sec_objname = section_objname(sec.name)
        if sec_objname is None:
            self._fail(f"section {sec.name} has an incorrectly formatted name")
        if (objname or "vmlinux") != sec_objname:
            return
        target = sec["sh_info"]
        sec_addr = klp.section_addrs.get(target)
        size = elf.sections[target]["sh_size"]
        # A section the loader did not load, or init memory freed since: no code there to run.
        if sec_addr is None or not any(
            base <= sec_addr and sec_addr + size <= base + mem_size for base, mem_size in pmod.mem.values() if mem_size
        ):
            return
        relocs = elf.relocs(secndx)
        if apply:
            self._resolve_symbols(elf, klp, relocs, sec_objname)
            apply_relocate_add(pmod.name, relocs, klp.symbol_values, sec_addr, size, read, write, self._log)
        else:
            clear_relocate_add(pmod.name, relocs, klp.symbol_values, sec_addr, size, read, write, self._log)

    def apply_section_relocs(
        self, pmod: Module, klp: KlpInfo, secndx: int, objname: str | None, read: Read, write: Write
    ) -> None:
        """klp_apply_section_relocs, for the loader: read and write reach its unwritten copy."""
        self._write_section_relocs(pmod, klp, _klp_elf(klp), secndx, objname, True, read, write)

    # --- one object ----------------------------------------------------------------------------

    def _patch_module(self, patch: Pointer) -> tuple[Module, KlpInfo] | None:
        """The livepatch module of patch and its klp_info (none for a patch built from Python)."""
        addr = patch.mod
        mod = next((mod for mod in self.lp.modules.loaded.values() if mod.addr == addr), None) if addr else None
        if mod is None or mod.klp_info is None or not mod.klp_info.relocs:
            return None
        return mod, mod.klp_info

    def apply_object_relocs(self, patch: Pointer, obj: Pointer) -> None:
        """klp_apply_object_relocs: every .klp.rela.<obj>.* section, or none of them."""
        found = self._patch_module(patch)
        if found is None:
            return
        pmod, klp = found
        objname = self.lp.object_name(obj)
        elf = _klp_elf(klp)
        staged: dict[int, int] = {}  # address -> byte, written only once every section is ready

        def read(addr: int, size: int) -> bytes:
            current = self.m.mem.read(addr, size)
            return bytes(staged.get(addr + i, b) for i, b in enumerate(current))

        def write(addr: int, data: bytes) -> None:
            staged.update((addr + i, b) for i, b in enumerate(data))

        for secndx in klp.relocs:
            self._write_section_relocs(pmod, klp, elf, secndx, objname, True, read, write)
        run: list[int] = []  # consecutive staged bytes go out as one write
        for addr in sorted(staged):
            if run and addr != run[-1] + 1:
                self._poke(pmod, run[0], bytes(staged[a] for a in run))
                run = []
            run.append(addr)
        if run:
            self._poke(pmod, run[0], bytes(staged[a] for a in run))
        klp.written.add(objname)

    def clear_object_relocs(self, patch: Pointer, obj: Pointer) -> None:
        """klp_clear_object_relocs: zeros back where apply wrote, if it did. A section whose
        targets no longer hold what was written is left as it is, with x86's warning."""
        found = self._patch_module(patch)
        objname = self.lp.object_name(obj)
        if found is None or objname not in found[1].written:
            return
        pmod, klp = found
        elf = _klp_elf(klp)

        def write(addr: int, data: bytes) -> None:
            self._poke(pmod, addr, data)

        for secndx in klp.relocs:
            try:
                self._write_section_relocs(pmod, klp, elf, secndx, objname, False, self.m.mem.read, write)
            except ModuleError:
                continue  # clear_relocate_add has said why; the other sections still get cleared
        klp.written.discard(objname)

    def _poke(self, pmod: Module, addr: int, data: bytes) -> None:
        """The host writes the module's memory; code it changes is retranslated (sync_core)."""
        self.m.mem.write(addr, data)
        if any(lo <= addr < hi for lo, hi in pmod.text_ranges()):
            self.m.uc.ctl_remove_cache(addr, addr + len(data))
