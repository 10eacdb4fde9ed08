"""Comparing two builds of one object function by function and variable by variable (klp-build's
`objtool klp diff`, kpatch's create-diff-object).

A symbol's bytes are compared with the bytes its relocations fill zeroed, and each relocation by
what it reaches: a symbol by name, a string literal by its text, an anonymous piece of a section
by the symbol that contains it. So code that moved, or strings laid out elsewhere, do not count.
An instruction whose only difference is a line number the patch moved (__LINE__ in BUG_ON or
WARN_ON) does not count either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from .patch import FilePatch

SHF_WRITE, SHF_MERGE, SHF_STRINGS = 0x1, 0x10, 0x20
R_SIZE = {1: 8, 2: 4, 4: 4, 9: 4, 10: 4, 11: 4, 24: 8, 41: 4, 42: 4}
PC_RELATIVE = {2, 4, 9, 41, 42, 24}
NUMBER = re.compile(r"0x[0-9a-f]+|\b\d+\b")


@dataclass
class Reloc:
    offset: int  # in the symbol
    type: int
    sym: str  # the symbol's name as in the object (for a section symbol: the section's name)
    addend: int
    key: str  # what it reaches, comparable across builds
    section_sym: bool = False


@dataclass
class Symbol:
    name: str
    kind: str  # "func" or "object"
    local: bool
    section: str
    value: int
    size: int
    data: bytes  # with relocated bytes zeroed; empty for NOBITS
    relocs: list[Reloc] = field(default_factory=list)
    writable: bool = False
    nobits: bool = False

    @property
    def has_fentry(self) -> bool:
        return any(r.offset <= 1 and r.sym == "__fentry__" for r in self.relocs)


@dataclass
class ObjectFile:
    path: Path
    symbols: dict[str, Symbol]  # functions and variables by name
    sections: dict[str, tuple[int, bytes]]  # name -> (flags, data)
    undefined: set[str]

    def symbol_at(self, section: str, offset: int) -> Symbol | None:
        for s in self.symbols.values():
            if s.section == section and s.value <= offset < s.value + max(s.size, 1):
                return s
        return None


def _cstring(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off : end if end >= 0 else len(data)].decode("latin-1")


def read_object(path: Path) -> ObjectFile:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        secs = list(elf.iter_sections())
        sections = {s.name: (s["sh_flags"], s.data() if s["sh_type"] != "SHT_NOBITS" else b"") for s in secs}
        symtab = elf.get_section_by_name(".symtab")
        syms = list(symtab.iter_symbols()) if isinstance(symtab, SymbolTableSection) else []
        obj = ObjectFile(Path(path), {}, sections, set())
        for s in syms:
            typ, shndx = s["st_info"]["type"], s["st_shndx"]
            if shndx == "SHN_UNDEF":
                if s.name:
                    obj.undefined.add(s.name)
                continue
            if typ not in ("STT_FUNC", "STT_OBJECT") or not isinstance(shndx, int):
                continue
            sec = secs[shndx]
            nobits = sec["sh_type"] == "SHT_NOBITS"
            raw = b"" if nobits else sec.data()[s["st_value"] : s["st_value"] + s["st_size"]]
            obj.symbols[s.name] = Symbol(
                s.name,
                "func" if typ == "STT_FUNC" else "object",
                s["st_info"]["bind"] == "STB_LOCAL",
                sec.name,
                s["st_value"],
                s["st_size"],
                raw,
                writable=bool(sec["sh_flags"] & SHF_WRITE),
                nobits=nobits,
            )
        by_section: dict[str, list[Symbol]] = {}
        for sym in obj.symbols.values():
            by_section.setdefault(sym.section, []).append(sym)
        for rs in secs:
            if not isinstance(rs, RelocationSection) or rs["sh_type"] != "SHT_RELA":
                continue
            target = secs[rs["sh_info"]]
            for r in rs.iter_relocations():
                rsym = syms[r["r_info_sym"]]
                for sym in by_section.get(target.name, ()):
                    off = r["r_offset"] - sym.value
                    if 0 <= off < sym.size:
                        break
                else:
                    continue
                typ, addend = r["r_info_type"], r["r_addend"]
                is_sec = rsym["st_info"]["type"] == "STT_SECTION"
                name = secs[rsym["st_shndx"]].name if is_sec else rsym.name
                sym.relocs.append(Reloc(off, typ, name, addend, "", is_sec))
                width = R_SIZE.get(typ, 4)
                sym.data = sym.data[:off] + bytes(width) + sym.data[off + width :]
    for sym in obj.symbols.values():
        for rel in sym.relocs:
            rel.key = reloc_key(obj, rel)
    return obj


def reloc_target(obj: ObjectFile, r: Reloc) -> tuple[Symbol | None, int]:
    """For a relocation against a section: the symbol it reaches and the offset into it."""
    where = r.addend + (4 if r.type in PC_RELATIVE else 0)
    sym = obj.symbol_at(r.sym, where)
    if sym is None:
        # An immediate after the displacement (cmpl $1, x(%rip)) moves the addend further; with
        # -fdata-sections the section's one symbol is the one meant.
        only = [s for s in obj.symbols.values() if s.section == r.sym]
        sym = only[0] if len(only) == 1 else None
    return sym, (where - sym.value if sym is not None else where)


def reloc_key(obj: ObjectFile, r: Reloc) -> str:
    if not r.section_sym:
        return f"{r.type}:{r.sym}{r.addend:+d}"
    flags, data = obj.sections.get(r.sym, (0, b""))
    if flags & SHF_MERGE and flags & SHF_STRINGS:
        where = r.addend + (4 if r.type in PC_RELATIVE else 0)
        return f"{r.type}:string {_cstring(data, where)!r}"
    sym, off = reloc_target(obj, r)
    if sym is not None:
        return f"{r.type}:{sym.name}+{off}"
    return f"{r.type}:{r.sym}{r.addend:+d}"


@dataclass
class Change:
    obj: str  # the object, relative to the build directory
    name: str
    first: int  # offset of the first differing instruction (or byte, for data)
    old: str = ""  # the first differing instruction in each build
    new: str = ""


@dataclass
class ObjectDiff:
    obj: str
    old: ObjectFile
    new: ObjectFile
    changed: list[Change] = field(default_factory=list)  # functions
    added: list[str] = field(default_factory=list)  # functions
    changed_data: list[Change] = field(default_factory=list)
    added_data: list[str] = field(default_factory=list)


_cs = Cs(CS_ARCH_X86, CS_MODE_64)


def _insns(sym: Symbol) -> list[tuple[int, int, str, str]]:
    return [(i.address, i.size, i.mnemonic, i.op_str) for i in _cs.disasm(sym.data, 0)]


def _first_difference(old: Symbol, new: Symbol, fp: FilePatch | None) -> tuple[int, str, str] | None:
    """Where the function's code first differs for real, or None if it does not."""
    a, b = _insns(old), _insns(new)
    rel_a = {r.offset: r.key for r in old.relocs}
    rel_b = {r.offset: r.key for r in new.relocs}
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b):
            at = a[i] if i < len(a) else b[i]
            return at[0], _fmt(a, i, rel_a), _fmt(b, i, rel_b)
        (oa, sa, ma, pa), (ob, sb, mb, pb) = a[i], b[i]
        keys_a = [rel_a[o] for o in range(oa, oa + sa) if o in rel_a]
        keys_b = [rel_b[o] for o in range(ob, ob + sb) if o in rel_b]
        if (sa, ma, pa) == (sb, mb, pb) and keys_a == keys_b:
            continue
        if sa == sb and ma == mb and keys_a == keys_b and _only_line_numbers(pa, pb, fp):
            continue
        return oa, _fmt(a, i, rel_a), _fmt(b, i, rel_b)
    return None


def _fmt(insns: list, i: int, relocs: dict[int, str]) -> str:
    """The instruction, and what its relocation reaches (its operand reads 0 before linking)."""
    if i >= len(insns):
        return "(end of function)"
    at, size, mnemonic, ops = insns[i]
    text = f"{mnemonic} {ops}".strip()
    reached = [relocs[o].split(":", 1)[1] for o in range(at, at + size) if o in relocs]
    return f"{text}  <{', '.join(reached)}>" if reached else text


def _only_line_numbers(a: str, b: str, fp: FilePatch | None) -> bool:
    if fp is None or NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    for x, y in zip(NUMBER.findall(a), NUMBER.findall(b), strict=True):
        if x != y and fp.new_line(int(x, 0)) != int(y, 0):
            return False
    return True


def _data_difference(old: Symbol, new: Symbol) -> int | None:
    if old.size != new.size:
        return min(old.size, new.size)
    if old.data != new.data:
        return next(i for i, (x, y) in enumerate(zip(old.data, new.data, strict=True)) if x != y)
    ka = sorted((r.offset, r.key) for r in old.relocs)
    kb = sorted((r.offset, r.key) for r in new.relocs)
    if ka != kb:
        return next((x[0] for x, y in zip(ka, kb, strict=False) if x != y), 0)
    return None


def diff_objects(rel: str, old_path: Path, new_path: Path, fp: FilePatch | None) -> ObjectDiff | None:
    """The changes between two builds of the object rel; None if they are byte for byte equal."""
    if old_path.exists() and old_path.read_bytes() == new_path.read_bytes():
        return None
    new = read_object(new_path)
    old = read_object(old_path) if old_path.exists() else ObjectFile(old_path, {}, {}, set())
    d = ObjectDiff(rel, old, new)
    places: set[tuple[str, int]] = set()
    for name, sym in new.symbols.items():
        prev = old.symbols.get(name)
        if sym.kind == "func":
            # An alias (module_init's init_module for hello_init) is the same function: the local
            # symbol, first in the table, names it.
            if (sym.section, sym.value) in places:
                continue
            places.add((sym.section, sym.value))
            if prev is None or prev.kind != "func":
                d.added.append(name)
            elif (first := _first_difference(prev, sym, fp)) is not None:
                d.changed.append(Change(rel, name, *first))
        elif prev is None:
            d.added_data.append(name)
        elif (at := _data_difference(prev, sym)) is not None:
            d.changed_data.append(Change(rel, name, at))
    return d
