"""The kernel image: loadable segments, kallsyms-style symbols and the fentry site list."""

from __future__ import annotations

import bisect
import copy
import struct
from dataclasses import dataclass
from errno import EFAULT, EINVAL, ENOEXEC
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import KlpemuError

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

ELF64_SYM = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 1, 2, 3, 4
STB_LOCAL = 0
SHN_UNDEF = 0

PF_X, PF_W = 1, 2

ELF64_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
ELF64_PHDR = struct.Struct("<IIQQQQQQ")  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
ELF64_SHDR = struct.Struct("<IIQQQQIIQQ")  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ...
EM_X86_64 = 62
PT_LOAD = 1
SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 2, 3, 8
SHF_COMPRESSED = 0x800


class RawElf:
    """The load segments and sections of a plain little-endian x86_64 ELF64 file, read with
    struct: what a boot needs of the image, without pyelftools (slow to import and to parse).
    The constructor raises ValueError for any other file, which pyelftools then reads."""

    def __init__(self, raw: bytes):
        if len(raw) < ELF64_EHDR.size:
            raise ValueError("short")
        (
            ident,
            _type,
            machine,
            _version,
            _entry,
            phoff,
            shoff,
            _flags,
            _ehsize,
            phentsize,
            phnum,
            shentsize,
            shnum,
            shstrndx,
        ) = ELF64_EHDR.unpack_from(raw)
        if ident[:6] != b"\x7fELF\x02\x01" or machine != EM_X86_64:
            raise ValueError("not a little-endian x86_64 ELF64 file")
        if phentsize != ELF64_PHDR.size or shentsize != ELF64_SHDR.size or not shoff or not 0 < shnum < 0xFF00:
            raise ValueError("unusual headers")
        if (
            phnum >= 0xFFFF
            or not shstrndx < shnum
            or max(phoff + phnum * phentsize, shoff + shnum * shentsize) > len(raw)
        ):
            raise ValueError("headers out of the file")
        self.segments = [
            Segment(vaddr, memsz, raw[off : off + filesz], bool(flags & PF_W), bool(flags & PF_X))
            for p_type, flags, off, vaddr, _paddr, filesz, memsz, _align in (
                ELF64_PHDR.unpack_from(raw, phoff + i * phentsize) for i in range(phnum)
            )
            if p_type == PT_LOAD
        ]
        self._raw = raw
        self.headers = [ELF64_SHDR.unpack_from(raw, shoff + i * shentsize) for i in range(shnum)]
        names = self._data(self.headers[shstrndx])
        self.by_name: dict[str, int] = {}  # the last section of a name, as pyelftools has it
        for i, h in enumerate(self.headers):
            self.by_name[names[h[0] : names.index(b"\0", h[0])].decode("utf-8")] = i

    def _data(self, header: tuple) -> bytes:
        _name, sh_type, sh_flags, _addr, off, size = header[:6]
        if sh_type == SHT_NOBITS:
            return bytes(size)
        if sh_flags & SHF_COMPRESSED:
            raise ValueError("a compressed section")
        return self._raw[off : off + size]

    def section(self, name: str) -> tuple[int, bytes] | None:
        """The address and bytes of the section of that name, or None. ValueError: compressed."""
        i = self.by_name.get(name)
        return None if i is None else (self.headers[i][3], self._data(self.headers[i]))

    def symtab(self) -> tuple[bytes, bytes]:
        """The bytes of .symtab and of its string table."""
        i = self.by_name.get(".symtab")
        sec = None if i is None else self.headers[i]
        if sec is None or sec[1] != SHT_SYMTAB or not 0 < sec[6] < len(self.headers):
            raise ValueError("no plain .symtab")
        strtab = self.headers[sec[6]]
        if strtab[1] != SHT_STRTAB:
            raise ValueError("the .symtab's string table is not one")
        return self._data(sec), self._data(strtab)


@dataclass(frozen=True)
class Segment:
    vaddr: int
    memsz: int
    data: bytes
    writable: bool
    executable: bool

    @property
    def user(self) -> bool:
        return self.vaddr < (1 << 47)


@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int
    size: int
    kind: str  # "func", "object" or "label"
    local: bool
    sympos: int  # 1-based position among symbols of the same name, in address order
    module: str = ""  # the loaded module it belongs to; "" for vmlinux

    def contains(self, addr: int) -> bool:
        return self.addr <= addr < self.addr + self.size


def _in_module(sym: Symbol) -> str:
    """What %pS adds after a module's symbol: ` [hello]`."""
    return f" [{sym.module}]" if sym.module else ""


class KernelImage:
    """An ELF kernel image read with pyelftools. Holds no machine state."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._raw = self.path.read_bytes()
        except OSError as e:
            raise KlpemuError(f"cannot read kernel image {self.path}: {e.strerror}", e.errno or 0) from e
        # A plain image is read with struct; pyelftools parses it (self.elf) only when asked for
        # what a boot does not need: DWARF (a type cache miss), /proc/kallsyms.
        try:
            self._fast: RawElf | None = RawElf(self._raw)
            symtab, strtab = self._fast.symtab()
        except (ValueError, struct.error):  # anything but a plain image: pyelftools reads it, and says what is wrong
            self._fast = None
        if self._fast is not None:
            self.segments = self._fast.segments
            self._load_symbols(symtab, strtab)
        else:
            self._parse_elf()
            self.segments = [
                Segment(s["p_vaddr"], s["p_memsz"], s.data(), bool(s["p_flags"] & PF_W), bool(s["p_flags"] & PF_X))
                for s in self.elf.iter_segments()
                if s["p_type"] == "PT_LOAD"
            ]
            self._load_symbols(*self._elf_symtab())
        # kallsyms of the loaded modules, kept by the module loader (klpemu/kernel/module/kallsyms.py):
        # lookups that vmlinux cannot answer ask them, as kallsyms asks module_address_lookup.
        # Each has contains(addr), function_at(addr) and by_name (name -> [Symbol]).
        self.module_kallsyms: list = []

    def _parse_elf(self) -> ELFFile:
        import io

        from elftools.elf.elffile import ELFFile

        try:
            elf = ELFFile(io.BytesIO(self._raw))
        except Exception as e:  # pyelftools raises several types for a malformed file
            raise KlpemuError(f"{self.path}: not a valid ELF image ({e})", ENOEXEC) from e  # ENOEXEC
        if elf["e_machine"] != "EM_X86_64":
            raise KlpemuError(f"{self.path}: not an x86_64 image", ENOEXEC)
        self.__dict__["elf"] = elf
        return elf

    @cached_property
    def elf(self) -> ELFFile:
        """The image as pyelftools reads it, parsed on first use."""
        return self._parse_elf()

    def _elf_symtab(self) -> tuple[bytes, bytes]:
        from elftools.elf.sections import SymbolTableSection

        symtab = self.elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise KlpemuError(f"{self.path}: no symbol table", ENOEXEC)
        return symtab.data(), symtab.stringtable.data()

    def _section(self, name: str) -> tuple[int, bytes] | None:
        """The address and bytes of a section, or None."""
        if self._fast is not None:
            try:
                return self._fast.section(name)
            except ValueError:  # compressed: pyelftools inflates it
                pass
        sec = self.elf.get_section_by_name(name)
        return None if sec is None else (sec["sh_addr"], sec.data())

    @property
    def raw(self) -> bytes:
        """The file's bytes, as read."""
        return self._raw

    def __deepcopy__(self, memo: dict) -> KernelImage:
        """A copy of a machine (klpemu/snapshot.py) shares the parsed image, which nothing
        changes; only the kallsyms of its loaded modules are its own."""
        clone = copy.copy(self)
        memo[id(self)] = clone
        clone.module_kallsyms = copy.deepcopy(self.module_kallsyms, memo)
        return clone

    def _load_symbols(self, symtab: bytes, strtab: bytes) -> None:
        raw = []
        # Elf64_Sym unpacked here rather than through pyelftools' parser, symbol by symbol: it is
        # most of the time it takes to load the image.
        for name_off, info, _other, shndx, value, size in ELF64_SYM.iter_unpack(symtab):
            st_type = info & 0xF
            if not name_off or st_type in (STT_FILE, STT_SECTION) or shndx == SHN_UNDEF:
                continue
            name = strtab[name_off : strtab.index(b"\0", name_off)].decode("utf-8", "replace")
            if not name:
                continue
            kind = {STT_FUNC: "func", STT_OBJECT: "object"}.get(st_type, "label")
            raw.append((value, name, size, kind, info >> 4 == STB_LOCAL))
        raw.sort()
        seen: dict[str, int] = {}
        self.symbols: list[Symbol] = []
        for addr, name, size, kind, local in raw:
            seen[name] = seen.get(name, 0) + 1
            self.symbols.append(Symbol(name, addr, size, kind, local, seen[name]))
        self.by_name: dict[str, list[Symbol]] = {}
        for sym in self.symbols:
            self.by_name.setdefault(sym.name, []).append(sym)
        self.text_start = self.addr("_stext")
        self.text_end = self.addr("_etext")
        # Text symbols for symbolization: functions, plus asm labels sized up to the next symbol.
        text = [s for s in self.symbols if self.text_start <= s.addr < self.text_end and s.kind != "object"]
        self._text_syms = text
        self._text_addrs = [s.addr for s in text]

    # --- lookups -------------------------------------------------------------------------------

    def addr(self, name: str, sympos: int = 0) -> int:
        return self.lookup(name, sympos).addr

    def lookup(self, name: str, sympos: int = 0) -> Symbol:
        """Find a symbol as livepatch does: sympos 0 means the name must be unique."""
        syms = self.by_name.get(name)
        if not syms:  # not in vmlinux: a loaded module's symbol, if one has it
            syms = [s for k in self.module_kallsyms for s in k.by_name.get(name, ())]
        if not syms:
            raise KlpemuError(f"symbol '{name}' not found", EINVAL)
        if sympos < 0:  # klp's old_sympos is unsigned: a position counts from 1, 0 means unique
            raise KlpemuError(f"symbol '{name}': invalid position {sympos}", EINVAL)
        if sympos == 0:
            if len(syms) > 1:
                raise KlpemuError(f"unresolvable ambiguity for symbol '{name}': {len(syms)} matches", EINVAL)
            return syms[0]
        if sympos > len(syms):
            raise KlpemuError(f"symbol '{name}' position {sympos} not found ({len(syms)} matches)", EINVAL)
        return syms[sympos - 1]

    def has(self, name: str) -> bool:
        return name in self.by_name

    def functions(self) -> list[Symbol]:
        return [s for s in self.symbols if s.kind == "func"]

    def function_at(self, addr: int) -> Symbol | None:
        """The function containing addr, or the asm label before it (sized to the next symbol)."""
        for k in self.module_kallsyms:
            if k.contains(addr):
                return k.function_at(addr)
        i = bisect.bisect_right(self._text_addrs, addr) - 1
        best = None
        while i >= 0:
            s = self._text_syms[i]
            if s.kind == "func" and s.contains(addr):
                return s
            if best is None and s.kind == "label":
                best = s
            if addr - s.addr > 0x10000:
                break
            i -= 1
        if best is None:
            return None
        j = bisect.bisect_right(self._text_addrs, best.addr)
        nxt = self._text_addrs[j] if j < len(self._text_addrs) else self.text_end
        if addr >= nxt:
            return None
        return Symbol(best.name, best.addr, nxt - best.addr, "label", best.local, best.sympos)

    def symbolize(self, addr: int) -> str:
        """`func+0xoff/0xsize`, as %pS prints it; a bare hex address when nothing matches."""
        sym = self.function_at(addr)
        if sym is None:
            return f"0x{addr:x}"
        return f"{sym.name}+0x{addr - sym.addr:x}/0x{sym.size:x}{_in_module(sym)}"

    def symbolize_return(self, addr: int) -> str:
        """%pB: a return address is looked up one byte back, since a call to a noreturn
        function can be the last instruction of its caller."""
        sym = self.function_at(addr - 1)
        if sym is None:
            return f"0x{addr:x}"
        return f"{sym.name}+0x{addr - sym.addr:x}/0x{sym.size:x}{_in_module(sym)}"

    def is_kernel_text(self, addr: int) -> bool:
        return self.text_start <= addr < self.text_end

    @cached_property
    def kallsyms(self) -> list[tuple[int, str, str]]:
        """vmlinux's part of /proc/kallsyms: (address, nm's type letter, name) of each kernel
        symbol, sorted as scripts/kallsyms sorts them (address, then fewer leading underscores)."""
        from elftools.elf.sections import SymbolTableSection

        symtab = self.elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        headers = [sec.header for sec in self.elf.iter_sections()]
        out = []
        for i, s in enumerate(symtab.iter_symbols()):
            info, shndx = s["st_info"], s["st_shndx"]
            if not s.name or info["type"] in ("STT_FILE", "STT_SECTION") or shndx == "SHN_UNDEF":
                continue
            if not s["st_value"] >> 63:  # the user programs the image carries are not the kernel's
                continue
            if info["bind"] == "STB_WEAK":
                letter = "V" if info["type"] == "STT_OBJECT" else "W"
            elif shndx == "SHN_ABS":
                letter = "a"
            elif isinstance(shndx, int):
                sec = headers[shndx]
                flags = sec["sh_flags"]
                if not flags & 0x2:  # SHF_ALLOC: debugging sections are not in kallsyms
                    continue
                if flags & 0x4:
                    letter = "t"
                elif sec["sh_type"] == "SHT_NOBITS":
                    letter = "b"
                else:
                    letter = "d" if flags & 0x1 else "r"
            else:
                continue
            if info["bind"] == "STB_GLOBAL":
                letter = letter.upper()
            underscores = len(s.name) - len(s.name.lstrip("_"))
            out.append((s["st_value"], underscores, i, letter, s.name))
        out.sort()
        return [(addr, letter, name) for addr, _, _, letter, name in out]

    # --- sections ------------------------------------------------------------------------------

    @cached_property
    def exports(self) -> dict:
        """What modules may link against: __ksymtab and __ksymtab_gpl, name -> KernelSymbol."""
        from ..kernel.module.ksymtab import exports_of

        return exports_of(self._section)

    @cached_property
    def mcount_loc(self) -> list[int]:
        """Every fentry call site, from the __mcount_loc section, sorted as ftrace sorts them."""
        sec = self._section("__mcount_loc")
        if sec is None:
            return []
        data = sec[1]
        return sorted(struct.unpack_from(f"<{len(data) // 8}Q", data))

    def read_static(self, addr: int, size: int) -> bytes:
        """Bytes of the image as built (before boot changed anything)."""
        for seg in self.segments:
            if seg.vaddr <= addr and addr + size <= seg.vaddr + len(seg.data):
                off = addr - seg.vaddr
                return seg.data[off : off + size]
        raise KlpemuError(f"0x{addr:x} is not in a loaded segment of the image", EFAULT)

    @property
    def dwarf(self):
        return self.elf.get_dwarf_info()
