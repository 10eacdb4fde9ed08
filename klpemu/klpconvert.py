"""klp-convert: turn a module's annotated references into klp relocations (after the kernel's
proposed scripts/livepatch/klp-convert; Documentation/livepatch/module-elf-format.rst).

A livepatch module source declares extern what it cannot link against and annotates each such
symbol with the object that has it and its position there (KLP_MODULE_RELOC / KLP_SYMPOS in
include/linux/livepatch.h): struct klp_module_reloc arrays in `.klp.module_relocs.<object>`
sections, each entry's `sym` carrying an R_X86_64_64 relocation against the symbol. This step
rewrites the relocatable object gcc made:

- each annotated symbol becomes the livepatch symbol `.klp.sym.<object>.<symbol>,<pos>`, section
  index SHN_LIVEPATCH, which the module loader leaves alone;
- the relocations against it in loaded (SHF_ALLOC) sections move to `.klp.rela.<object>.<section>`
  sections, flagged SHF_RELA_LIVEPATCH, for the livepatch core to write when the object is there;
- the annotation sections, their relocations and their symbols go.

There is no symbols.klp (Linux's list of every kernel object's symbols), so only annotated
symbols are converted and their positions are checked by the kernel when it resolves them; any
other undefined symbol stays for the loader. An object without annotations is returned as it is.

Only the Python standard library is used: `make -C firmware` runs this file for the shipped
modules (`python3 -m klpemu.klpconvert IN OUT` with the source tree on PYTHONPATH, nothing
installed), and `klpemu build-module` imports it.
"""

from __future__ import annotations

import struct
import sys

from klpemu.abi import MODULE_NAME_LEN

SHT_SYMTAB, SHT_RELA, SHT_NOBITS, SHT_REL, SHT_GROUP, SHT_SYMTAB_SHNDX = 2, 4, 8, 9, 17, 18
SHF_ALLOC, SHF_INFO_LINK, SHF_LINK_ORDER = 0x2, 0x40, 0x80
SHF_RELA_LIVEPATCH = 0x00100000
SHN_UNDEF, SHN_LORESERVE, SHN_LIVEPATCH = 0, 0xFF00, 0xFF20
STB_LOCAL = 0
R_X86_64_64 = 1
# What arch/x86/kernel/module.c applies (R_X86_64_NONE aside).
R_X86_64_APPLIED = {
    1: "R_X86_64_64",
    2: "R_X86_64_PC32",
    4: "R_X86_64_PLT32",
    10: "R_X86_64_32",
    11: "R_X86_64_32S",
    24: "R_X86_64_PC64",
}
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
RELA = struct.Struct("<QQq")
RELOC_ENTRY = struct.Struct("<QI")  # struct klp_module_reloc, packed
ANNOTATION_PREFIX = ".klp.module_relocs."
# Sections whose relocations may be klp relocations: code and data that stay (klp-convert's list).
SUPPORTED_PREFIXES = (".text", ".data", ".rodata")


class KlpConvertError(Exception):
    """The object cannot be converted; messages says every reason found."""

    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


class _Section:
    def __init__(self, index: int, fields: tuple, data: bytes):
        (
            self.name_off,
            self.type,
            self.flags,
            self.addr,
            _offset,
            self.size,
            self.link,
            self.info,
            self.align,
            self.entsize,
        ) = fields
        self.index = index
        self.data = data
        self.name = ""


def _cstr(table: bytes, off: int) -> str:
    end = table.index(b"\0", off)
    return table[off:end].decode("utf-8", "replace")


class _Elf:
    """A relocatable ELF64 x86_64 object, section by section."""

    def __init__(self, data: bytes):
        if len(data) < EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise KlpConvertError(["not a little-endian ELF64 object"])
        fields = EHDR.unpack_from(data)
        e_type, e_machine = fields[1], fields[2]
        self.header = fields
        if e_type != 1 or e_machine != 62:
            raise KlpConvertError(["not an x86_64 relocatable object (gcc -c output)"])
        shoff, shentsize, shnum, shstrndx = fields[6], fields[11], fields[12], fields[13]
        if shentsize != SHDR.size or shnum == 0 or shoff + shnum * SHDR.size > len(data):
            raise KlpConvertError(["bad section header table"])
        self.sections = []
        for i in range(shnum):
            f = SHDR.unpack_from(data, shoff + i * SHDR.size)
            body = b"" if f[1] == SHT_NOBITS else data[f[4] : f[4] + f[5]]
            self.sections.append(_Section(i, f, body))
        self.shstrndx = shstrndx
        for sec in self.sections:
            sec.name = _cstr(self.sections[shstrndx].data, sec.name_off)
        symtabs = [s for s in self.sections if s.type == SHT_SYMTAB]
        if len(symtabs) != 1:
            raise KlpConvertError(["no symbol table (stripped?)"])
        if any(s.type == SHT_SYMTAB_SHNDX for s in self.sections):
            raise KlpConvertError(["extended section indices (SHT_SYMTAB_SHNDX) are not supported"])
        self.symtab = symtabs[0]
        self.strtab = self.sections[self.symtab.link]
        self.symbols = [
            list(SYM.unpack_from(self.symtab.data, off)) for off in range(0, len(self.symtab.data), SYM.size)
        ]

    def sym_name(self, index: int) -> str:
        name_off, info, _, shndx = self.symbols[index][:4]
        if (info & 0xF) == 3 and not name_off and shndx < len(self.sections):  # STT_SECTION
            return self.sections[shndx].name
        return _cstr(self.strtab.data, name_off)

    def relas(self, sec: _Section) -> list[list[int]]:
        """(r_offset, symbol index, type, r_addend) of each entry."""
        out = []
        for off in range(0, len(sec.data), RELA.size):
            r_offset, r_info, r_addend = RELA.unpack_from(sec.data, off)
            out.append([r_offset, r_info >> 32, r_info & 0xFFFFFFFF, r_addend])
        return out


def _annotations(elf: _Elf, errors: list[str]) -> dict[int, tuple[str, int]]:
    """symbol index -> (object, sympos) from every .klp.module_relocs.<object> section."""
    found: dict[int, tuple[str, int]] = {}
    for sec in elf.sections:
        if not sec.name.startswith(ANNOTATION_PREFIX):
            continue
        objname = sec.name[len(ANNOTATION_PREFIX) :]
        if not objname or len(objname) >= MODULE_NAME_LEN or "." in objname:
            errors.append(f"invalid object name in section {sec.name}")
            continue
        nr_entries = sec.size // RELOC_ENTRY.size
        relasec = next((r for r in elf.sections if r.type == SHT_RELA and r.info == sec.index), None)
        relas = elf.relas(relasec) if relasec is not None else []
        if sec.size % RELOC_ENTRY.size or len(relas) != nr_entries:
            errors.append(
                f"nr_entries mismatch ({len(relas)} != {nr_entries}) for "
                f"{relasec.name if relasec is not None else sec.name}"
            )
            continue
        for r_offset, sym, r_type, addend in relas:
            if r_offset % RELOC_ENTRY.size or r_offset >= sec.size or r_type != R_X86_64_64 or addend:
                errors.append(f"section {sec.name}: entry at offset {r_offset} is not a KLP_SYMPOS")
                continue
            name = elf.sym_name(sym)
            if elf.symbols[sym][3] != SHN_UNDEF:
                errors.append(f"KLP_SYMPOS({name}) names a symbol this object defines")
                continue
            _, sympos = RELOC_ENTRY.unpack_from(sec.data, r_offset)
            if sym in found and found[sym] != (objname, sympos):
                old_obj, old_pos = found[sym]
                if old_obj == objname:  # in order, whichever gcc laid out first
                    low, high = sorted((old_pos, sympos))
                    errors.append(f"Conflicting KLP_SYMPOS definition: {objname}.{name} {low} vs. {high}.")
                else:
                    low_obj, high_obj = sorted((old_obj, objname))
                    errors.append(f"Conflicting KLP_MODULE_RELOC objects for {name}: {low_obj} vs. {high_obj}.")
                continue
            found[sym] = (objname, sympos)
    return found


def convert(data: bytes) -> bytes:
    """The object with its annotated symbols converted; raises KlpConvertError."""
    elf = _Elf(data)
    errors: list[str] = []
    if not any(s.name.startswith(ANNOTATION_PREFIX) for s in elf.sections):
        return data
    annotated = _annotations(elf, errors)
    if errors:
        raise KlpConvertError(errors)

    # What goes: the annotation sections, their relocations, the symbols defined in them.
    gone = {s.index for s in elf.sections if s.name.startswith(ANNOTATION_PREFIX)}
    gone |= {s.index for s in elf.sections if s.type in (SHT_RELA, SHT_REL) and s.info in gone}
    gone_syms = {i for i, sym in enumerate(elf.symbols) if sym[3] in gone}

    # Relocations against annotated symbols move to .klp.rela.<object>.<section>, in order.
    klp_relas: dict[tuple[str, int], list[list[int]]] = {}
    kept: dict[int, list[list[int]]] = {}
    used: set[int] = set()
    for sec in elf.sections:
        if sec.type != SHT_RELA or sec.index in gone or sec.flags & SHF_RELA_LIVEPATCH:
            continue
        target = elf.sections[sec.info]
        loaded = bool(target.flags & SHF_ALLOC)
        keep = []
        for rela in elf.relas(sec):
            sym = rela[1]
            name = elf.sym_name(sym)
            if sym in gone_syms:
                if loaded:
                    errors.append(f"{target.name} uses {name}, which is part of a KLP_MODULE_RELOC annotation")
                continue  # debug info describing the annotation: it goes with it
            if sym not in annotated or not loaded:
                keep.append(rela)
                continue
            objname = annotated[sym][0]
            if not target.name.startswith(SUPPORTED_PREFIXES):
                errors.append(f"Conversion not supported for symbol: {name} section: {sec.name} object: {objname}")
            elif rela[2] not in R_X86_64_APPLIED:
                errors.append(f"unsupported relocation type {rela[2]} for symbol: {name} section: {sec.name}")
            used.add(sym)
            klp_relas.setdefault((objname, target.index), []).append(rela)
        kept[sec.index] = keep
    for sym in annotated:
        if sym not in used:
            errors.append(f"Couldn't find rela for annotated symbol: {elf.sym_name(sym)}")
    if errors:
        raise KlpConvertError(errors)
    return _write(elf, annotated, gone, gone_syms, kept, klp_relas)


def _write(
    elf: _Elf,
    annotated: dict[int, tuple[str, int]],
    gone: set[int],
    gone_syms: set[int],
    kept: dict[int, list[list[int]]],
    klp_relas: dict[tuple[str, int], list[list[int]]],
) -> bytes:
    sections = [s for s in elf.sections if s.index not in gone]
    sec_map = {s.index: new for new, s in enumerate(sections)}
    symbols = [list(sym) for i, sym in enumerate(elf.symbols) if i not in gone_syms]
    sym_map = {old: new for new, old in enumerate(i for i in range(len(elf.symbols)) if i not in gone_syms)}

    strtab = bytearray(elf.strtab.data)
    for old, (objname, sympos) in annotated.items():
        sym = symbols[sym_map[old]]
        sym[0] = len(strtab)
        strtab += f".klp.sym.{objname}.{elf.sym_name(old)},{sympos}".encode() + b"\0"
        sym[3] = SHN_LIVEPATCH
    for sym in symbols:
        if 0 < sym[3] < SHN_LORESERVE:
            sym[3] = sec_map[sym[3]]
    elf.strtab.data = bytes(strtab)
    elf.symtab.data = b"".join(SYM.pack(*sym) for sym in symbols)
    elf.symtab.info = sum(1 for sym in symbols if sym[1] >> 4 == STB_LOCAL)

    def pack_relas(relas: list[list[int]]) -> bytes:
        return b"".join(RELA.pack(off, (sym_map[sym] << 32) | r_type, addend) for off, sym, r_type, addend in relas)

    for sec in sections:
        if sec.type == SHT_RELA and sec.index in kept:
            sec.data = pack_relas(kept[sec.index])
        elif sec.type == SHT_RELA:
            sec.data = pack_relas(elf.relas(sec))
        elif sec.type == SHT_GROUP:
            words = struct.unpack(f"<{len(sec.data) // 4}I", sec.data)
            sec.data = struct.pack(f"<{len(words)}I", words[0], *(sec_map[w] for w in words[1:]))
            sec.info = sym_map[sec.info]
        if sec.type in (SHT_RELA, SHT_REL, SHT_SYMTAB, SHT_GROUP) or sec.flags & SHF_LINK_ORDER:
            sec.link = sec_map[sec.link]
        if sec.type in (SHT_RELA, SHT_REL) or sec.flags & SHF_INFO_LINK:
            sec.info = sec_map[sec.info]

    shstrtab = sections[sec_map[elf.shstrndx]]
    names = bytearray(shstrtab.data)
    symtab_index = sec_map[elf.symtab.index]
    for (objname, target), relas in klp_relas.items():
        sec = _Section(
            -1,
            (
                len(names),
                SHT_RELA,
                SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH,
                0,
                0,
                0,
                symtab_index,
                sec_map[target],
                8,
                RELA.size,
            ),
            pack_relas(relas),
        )
        names += f".klp.rela.{objname}.{elf.sections[target].name}".encode() + b"\0"
        sections.append(sec)
    shstrtab.data = bytes(names)

    out = bytearray(EHDR.size)
    headers = []
    for sec in sections:
        align = max(sec.align, 1)
        if sec.type != SHT_NOBITS:
            out += bytes(-len(out) % align)
        offset = len(out) if sec.index != 0 else 0
        size = sec.size if sec.type == SHT_NOBITS else len(sec.data)
        if sec.type != SHT_NOBITS:
            out += sec.data
        headers.append(
            SHDR.pack(
                sec.name_off, sec.type, sec.flags, sec.addr, offset, size, sec.link, sec.info, sec.align, sec.entsize
            )
        )
    out += bytes(-len(out) % 8)
    shoff = len(out)
    out += b"".join(headers)
    fields = list(elf.header)
    fields[6], fields[12], fields[13] = shoff, len(sections), sec_map[elf.shstrndx]
    out[: EHDR.size] = EHDR.pack(*fields)
    return bytes(out)


def convert_file(source: str, output: str) -> None:
    """Convert source into output; output is written only when the conversion succeeds."""
    with open(source, "rb") as f:
        data = convert(f.read())
    with open(output, "wb") as f:
        f.write(data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("Usage: klpconvert.py <input.o> <output.ko>", file=sys.stderr)
        return 2
    try:
        convert_file(args[0], args[1])
    except OSError as e:
        print(f"klp-convert: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    except KlpConvertError as e:
        for message in e.messages:
            print(f"klp-convert: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
