"""Loadable modules (kernel/module/main.c): the ELF loader, the module list, kallsyms of module
symbols, reference counts and parameters.

load_module()'s work runs on the host, in Linux's order: ELF checks, .modinfo (taints, name, a
second load refused), layout into a text allocation (executable sections, in the module text
area) and data/rodata allocations (the module data area, reachable by -mcmodel=kernel code),
symbol resolution (vmlinux first, global symbols before local ones, then the global symbols of
loaded modules; `__this_module` is the struct module the loader makes), x86_64 relocations,
ftrace_module_init (the module's __mcount_loc sites become NOP5s and records), MODULE_STATE_COMING,
ftrace_module_enable and the coming hooks (klp_module_coming's place), parameters. Then the
module's own code runs in the guest: the shell process calls init_module(2), and rmmod's
delete_module(2) runs exit (firmware/kernel/module.c). Every failure unwinds in reverse and leaves
nothing behind: no memory, no ftrace records, no list entry, no symbols, no sysfs directory.

Records of a module: ftrace records are created at load for each fentry site, in ip order among
the kernel's, and removed (not marked) when the module goes or fails to load, and for .init.*
code once init has succeeded (ftrace_free_mem); an ops filter that named a removed function keeps
ip 0 in its place, as clear_mod_from_hashes leaves it. ftrace therefore never writes freed code.
"""

from __future__ import annotations

import io
import shlex
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..errors import KlpemuError
from ..machine.image import Symbol
from .kstrtox import kstrtobool
from .printk import log_store

if TYPE_CHECKING:
    from ..machine.machine import Machine
    from .ftrace.core import Ftrace

ENOENT, ENOEXEC, ENOMEM, EBUSY, EEXIST, EINVAL, ENOSPC, ERANGE, ENAMETOOLONG = 2, 8, 12, 16, 17, 22, 28, 34, 36
LOGLEVEL_ERR, LOGLEVEL_WARNING, LOGLEVEL_NOTICE = 3, 4, 5
PAGE_SIZE = 4096
ET_REL, EM_X86_64 = 1, 62
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHF_RELA_LIVEPATCH = 0x00100000
SHT_NOBITS = 8
ELF64_EHDR_SIZE, ELF64_SHDR_SIZE = 64, 64
R_X86_64 = {0: "NONE", 1: "64", 2: "PC32", 4: "PLT32", 10: "32", 11: "32S", 24: "PC64"}
CHARP_MAX = 1024
MODULE_REF_BASE = 1  # include/linux/module.h
# Taint bits a module can set, in Linux's order (kernel/panic.c taint_flags): letter per bit.
TAINT_PROPRIETARY_MODULE, TAINT_OOT_MODULE, TAINT_LIVEPATCH = 0, 12, 15
TAINT_LETTERS = {TAINT_PROPRIETARY_MODULE: "P", TAINT_OOT_MODULE: "O", TAINT_LIVEPATCH: "K"}
GPL_COMPATIBLE = ("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL")
# Which allocation a section goes to (enum mod_mem_type); which are text, which go after init.
MEM_TYPES = ("MOD_TEXT", "MOD_DATA", "MOD_RODATA", "MOD_INIT_TEXT", "MOD_INIT_DATA")
TEXT_TYPES = ("MOD_TEXT", "MOD_INIT_TEXT")
INIT_TYPES = ("MOD_INIT_TEXT", "MOD_INIT_DATA")
THIS_MODULE_SECTION = ".gnu.linkonce.this_module"


def shipped_modules_dir() -> Path:
    return Path(str(resources.files("klpemu") / "images" / "modules"))


def shipped_module(name: str) -> Path | None:
    """The .ko of a module shipped with klpemu (`hello`, `hello.ko`), or None."""
    stem = name.removesuffix(".ko")
    if not stem or "/" in stem:
        return None
    path = shipped_modules_dir() / f"{stem}.ko"
    return path if path.is_file() else None


def mod_strerror(errno: int) -> str:
    """What kmod's insmod says for an init_module error."""
    import os

    return {
        ENOEXEC: "Invalid module format",
        ENOENT: "Unknown symbol in module",
        3: "Module has wrong symbol version",
        EINVAL: "Invalid parameters",
    }.get(errno, os.strerror(errno))


class ModuleError(KlpemuError):
    """A refused load or unload; errno is what init_module(2) or delete_module(2) would return."""


# --- kallsyms --------------------------------------------------------------------------------


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

    def contains(self, addr: int) -> bool:
        return any(start <= addr < end for start, end in self.text)

    def function_at(self, addr: int) -> Symbol | None:
        """The first function in symbol-table order that contains addr (a static function
        before the init_module alias gcc emits for it)."""
        for sym in self.symbols:
            if sym.kind == "func" and sym.contains(addr):
                return sym
        return None

    def lookup(self, name: str, sympos: int = 0) -> Symbol:
        syms = self.by_name.get(name)
        if not syms:
            raise KlpemuError(f"symbol '{name}' not found in module {self.module}", EINVAL)
        if sympos == 0:
            if len(syms) > 1:
                raise KlpemuError(
                    f"unresolvable ambiguity for symbol '{name}' in module {self.module}: {len(syms)} matches", EINVAL
                )
            return syms[0]
        if sympos > len(syms):
            raise KlpemuError(f"symbol '{name}' position {sympos} not found in module {self.module}", EINVAL)
        return syms[sympos - 1]


# --- the module --------------------------------------------------------------------------------


@dataclass(eq=False)
class Param:
    name: str
    type: str  # int, uint, long, ulong, short, ushort, bool, invbool, charp
    perm: int
    arg: int  # the guest variable


@dataclass(eq=False)
class KlpInfo:
    """What a livepatch module keeps for its klp relocations (Linux's mod->klp_info): the
    SHF_RELA_LIVEPATCH sections, left unapplied at load, are applied later by the livepatch core
    with apply_relocate_add, once their .klp.sym symbols (SHN_LIVEPATCH) are resolved."""

    elf: bytes
    section_addrs: dict[int, int]  # section index -> address, for every loaded section
    symbol_values: list[int]  # per symbol-table index, as resolved at load; a .klp.sym one when klp resolves it
    relocs: list[int]  # indices of the SHF_RELA_LIVEPATCH sections
    written: set[str] = field(default_factory=set)  # module objects whose klp relocations are applied now
    parsed: Any = field(default=None, repr=False)  # the ELF as the livepatch core reads it, parsed once


@dataclass(eq=False)
class Module:
    name: str
    addr: int  # the guest struct module
    mem: dict[str, tuple[int, int]]  # mod_mem_type -> (base, size); size 0 means none
    sections: dict[str, int]  # loaded section -> address (/sys/module/<mod>/sections)
    info: dict[str, list[str]]  # .modinfo: tag -> values
    taints: int = 0
    kallsyms: ModuleKallsyms | None = None
    params: list[Param] = field(default_factory=list)
    uses: list[Module] = field(default_factory=list)  # modules whose symbols it uses
    holders: list[Module] = field(default_factory=list)  # modules that use its symbols
    records: list[int] = field(default_factory=list)  # ips of its ftrace records
    klp_info: KlpInfo | None = None  # for MODULE_INFO(livepatch, "Y") modules
    _charp: dict[int, int] = field(default_factory=dict)  # variable -> kzalloc'd string the loader owns
    _symbols: list = field(default_factory=list)  # (name, addr, size, kind, local, mem type) of all

    def lookup(self, name: str, sympos: int = 0) -> Symbol:
        """A function or object of this module by name and position (klp_find_object_symbol)."""
        assert self.kallsyms is not None
        return self.kallsyms.lookup(name, sympos)

    @property
    def core_size(self) -> int:
        return sum(size for t, (_, size) in self.mem.items() if t not in INIT_TYPES)

    @property
    def init_size(self) -> int:
        return sum(size for t, (_, size) in self.mem.items() if t in INIT_TYPES)

    def text_ranges(self) -> list[tuple[int, int]]:
        return [(base, base + size) for t, (base, size) in self.mem.items() if t in TEXT_TYPES and size]

    @property
    def taint_letters(self) -> str:
        return "".join(letter for bit, letter in sorted(TAINT_LETTERS.items()) if self.taints & (1 << bit))

    def __repr__(self) -> str:
        return f"<module {self.name} at 0x{self.addr:x}>"


# --- ELF checks --------------------------------------------------------------------------------


def _check_elf(data: bytes) -> str | None:
    """elf_validity_check: Linux's message for a file it refuses (-ENOEXEC), or None."""
    if len(data) < ELF64_EHDR_SIZE:
        return f"Invalid ELF header len {len(data)}"
    if data[:4] != b"\x7fELF":
        return "Invalid ELF header magic: != \x7fELF"
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != ET_REL:
        return f"Invalid ELF header type: {e_type} != {ET_REL}"
    if e_machine != EM_X86_64 or data[4] != 2 or data[5] != 1:  # ELFCLASS64, little-endian
        return f"Invalid architecture in ELF header: {e_machine}"
    (e_shoff,) = struct.unpack_from("<Q", data, 40)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 58)
    if e_shentsize != ELF64_SHDR_SIZE:
        return "Invalid ELF section header size"
    if e_shoff >= len(data) or e_shnum * ELF64_SHDR_SIZE > len(data) - e_shoff:
        return "Invalid ELF section header overflow"
    if e_shnum == 0 or e_shstrndx >= e_shnum:
        return f"Invalid ELF section name index: {e_shstrndx} || e_shstrndx ({e_shstrndx}) >= e_shnum ({e_shnum})"
    for i in range(e_shnum):
        (sh_type,) = struct.unpack_from("<I", data, e_shoff + i * ELF64_SHDR_SIZE + 4)
        sh_offset, sh_size = struct.unpack_from("<QQ", data, e_shoff + i * ELF64_SHDR_SIZE + 24)
        if sh_type != SHT_NOBITS and sh_type != 0 and (sh_offset > len(data) or sh_size > len(data) - sh_offset):
            return f"Module len {len(data)} truncated"
    return None


def _parse_modinfo(raw: bytes) -> dict[str, list[str]]:
    info: dict[str, list[str]] = {}
    for entry in raw.split(b"\0"):
        if b"=" in entry:
            tag, value = entry.decode("utf-8", "replace").split("=", 1)
            info.setdefault(tag, []).append(value)
    return info


# --- parameters (kernel/params.c) --------------------------------------------------------------

INT_TYPES = {
    "int": (4, True),
    "uint": (4, False),
    "long": (8, True),
    "ulong": (8, False),
    "short": (2, True),
    "ushort": (2, False),
}


def _kstrto(value: str, size: int, signed: bool) -> int:
    """kstrto<type>(s, 0): one number, base from its prefix, a trailing newline allowed."""
    s = value.removesuffix("\n")
    neg = False
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("-") and signed:
        neg, s = True, s[1:]
    if s[:2].lower() == "0x" and len(s) > 2:
        base, digits = 16, s[2:]
    elif s.startswith("0") and len(s) > 1:
        base, digits = 8, s[1:]
    else:
        base, digits = 10, s
    if not digits or any(c not in "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)] for c in digits):
        raise KlpemuError("invalid", EINVAL)
    n = int(digits, base)
    n = -n if neg else n
    bits = size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= n <= hi:
        raise KlpemuError("out of range", ERANGE)
    return n


def _kstrtobool(value: str | None) -> bool:
    if value is None:  # a bool parameter named alone means true
        return True
    return kstrtobool(value)


# --- the loader --------------------------------------------------------------------------------


# --- relocations (arch/x86/kernel/module.c) -----------------------------------------------------


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
            log(f"{name}: Unknown rela relocation: {r_type}", LOGLEVEL_ERR)
            raise ModuleError(f"{name}: Unknown rela relocation: {r_type}", ENOEXEC)
        if kind == "NONE":
            continue
        size = 8 if kind in ("64", "PC64") else 4
        if sym_index >= len(values) or offset + size > sec_size:
            log(f"{name}: Invalid relocation at offset 0x{offset:x} (symbol {sym_index})", LOGLEVEL_ERR)
            raise ModuleError(f"{name}: relocation at offset 0x{offset:x} outside its section or table", ENOEXEC)
        loc = sec_addr + offset
        val = (values[sym_index] + addend) & (2**64 - 1)
        if kind in ("PC32", "PLT32", "PC64"):
            val = (val - loc) & (2**64 - 1)
        sval = val - (1 << 64) if val >> 63 else val
        if (kind == "32" and val >> 32) or (kind in ("32S", "PC32", "PLT32") and not -(1 << 31) <= sval < (1 << 31)):
            log(f"overflow in relocation type {r_type} val {val:x}", LOGLEVEL_ERR)
            log(f"`{name}' likely not compiled with -mcmodel=kernel", LOGLEVEL_ERR)
            raise ModuleError(f"{name}: overflow in relocation type {r_type} val {val:x}", ENOEXEC)
        value = (val & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        if apply:
            if any(read(loc, size)):
                log(
                    f"x86/modules: Invalid relocation target, existing value is nonzero for type {r_type}, "
                    f"loc {loc:016x}, val {val:x}",
                    LOGLEVEL_ERR,
                )
                raise ModuleError(f"{name}: relocation target 0x{loc:x} is not zero", ENOEXEC)
            write(loc, value)
        else:
            if read(loc, size) != value:
                log(
                    f"x86/modules: Invalid relocation target, existing value does not match expected value "
                    f"for type {r_type}, loc {loc:016x}, val {val:x}",
                    LOGLEVEL_WARNING,
                )
                raise ModuleError(f"{name}: relocation target 0x{loc:x} does not hold its value", ENOEXEC)
            write(loc, bytes(size))


class _Layout:
    """Where each SHF_ALLOC section goes: (mod_mem_type, offset) and the size of each type."""

    def __init__(self) -> None:
        self.place: dict[int, tuple[str, int]] = {}
        self.size = {t: 0 for t in MEM_TYPES}
        self.base = {t: 0 for t in MEM_TYPES}

    def add(self, index: int, mem_type: str, size: int, align: int) -> int:
        align = max(align, 1)
        off = (self.size[mem_type] + align - 1) // align * align
        self.place[index] = (mem_type, off)
        self.size[mem_type] = off + size
        return off

    def addr(self, index: int) -> int:
        mem_type, off = self.place[index]
        return self.base[mem_type] + off


class Modules:
    """The loaded modules, newest first (the guest's `modules` list is the same list)."""

    def __init__(self, machine: Machine, ftrace: Ftrace):
        self.m = machine
        self.ft = ftrace
        self.loaded: dict[str, Module] = {}
        self.tainted = 0  # the kernel's taint bits that modules set (the "once" messages)
        self.notifiers: list[tuple[Callable[[Module], None], Callable[[Module], None]]] = []
        self.live_notifiers: list[Callable[[Module], None]] = []
        # klp_apply_section_relocs, set by the livepatch core: the loader has it write the
        # .klp.rela.vmlinux.* sections of a module it loads (objname None).
        self.klp_apply_section_relocs: Callable[..., None] | None = None
        self._console = None

    def add_notifier(self, coming: Callable[[Module], None], going: Callable[[Module], None]) -> None:
        """Hooks at Linux's klp_module_coming / klp_module_going places. coming(mod) runs with the
        module in MODULE_STATE_COMING, after ftrace_module_enable and before its parameters and
        init; a KlpemuError from it refuses the module with its errno. going(mod) runs, in reverse
        registration order, for every module whose coming hook succeeded, when it is removed
        (after exit) or fails later (a bad parameter, init returning an error)."""
        self.notifiers.append((coming, going))

    def add_live_notifier(self, live: Callable[[Module], None]) -> None:
        """A hook at the MODULE_STATE_LIVE notification of do_init_module: init returned 0 and
        the module's init memory (text, data, its ftrace records) is about to be freed."""
        self.live_notifiers.append(live)

    # --- lookups -----------------------------------------------------------------------------

    def list(self) -> list[Module]:
        """Newest first, as /proc/modules and lsmod list them."""
        return list(reversed(self.loaded.values()))

    def find(self, name: str) -> Module | None:
        return self.loaded.get(name)

    def find_symbol(self, objname: str | None, name: str, sympos: int = 0) -> Symbol:
        """klp_find_object_symbol: a symbol of vmlinux (objname None or "vmlinux") or of a
        loaded module, by name and 1-based position (0: the name must be unique)."""
        if objname in (None, "vmlinux"):
            return self.m.image.lookup(name, sympos)
        mod = self.find(objname)
        if mod is None:
            raise KlpemuError(f"module {objname} is not loaded", ENOENT)
        return mod.lookup(name, sympos)

    def module_at(self, addr: int) -> Module | None:
        """__module_address: the module whose memory holds addr."""
        for mod in self.loaded.values():
            if any(base <= addr < base + size for base, size in mod.mem.values() if size):
                return mod
        return None

    def state(self, mod: Module) -> str:
        """MODULE_STATE_* of the guest struct, as its enumerator name."""
        value = self.m.struct("module", mod.addr).state
        return next(
            n
            for n in ("MODULE_STATE_LIVE", "MODULE_STATE_COMING", "MODULE_STATE_GOING", "MODULE_STATE_UNFORMED")
            if self.m.types.enum(n) == value
        )

    def refcount(self, mod: Module) -> int:
        """module_refcount: references held (try_module_get, modules using its symbols)."""
        return self.m.struct("module", mod.addr).refcnt.counter - MODULE_REF_BASE

    @property
    def console(self):
        if self._console is None:
            from ..machine.console import Console

            self._console = Console(self.m)
        return self._console

    def _log(self, text: str, level: int = LOGLEVEL_WARNING) -> None:
        log_store(self.m, text, level)

    # --- load ----------------------------------------------------------------------------------

    def load(self, source: bytes | str | Path, args: str | list[str] = "", *, filename: str | None = None) -> Module:
        """insmod: load a relocatable ELF module and run its init in the guest's shell process.

        source is the .ko's bytes or path; args are `name=value` parameters (a string is split
        as a shell would). Raises ModuleError with init_module(2)'s errno; nothing stays loaded.
        """
        if isinstance(source, (str, Path)):
            path = Path(source)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ModuleError(f"could not load module {path}: {e.strerror}", e.errno or ENOENT) from None
            filename = filename or path.name
        else:
            data = bytes(source)
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        self.m._check_running()
        loading = _Loading(self, data, filename or "module.ko", argv)
        return loading.run()

    # --- unload --------------------------------------------------------------------------------

    def unload(self, name: str) -> None:
        """rmmod: kmod's checks, then delete_module(2) in the shell process (exit runs there),
        then free_module on the host."""
        self.m._check_running()
        mod = self.loaded.get(name)
        if mod is None or self.state(mod) == "MODULE_STATE_UNFORMED":
            raise ModuleError(f"Module {name} is not currently loaded", ENOENT)
        if mod.holders:
            raise ModuleError(f"Module {name} is in use by: {' '.join(h.name for h in mod.holders)}", EBUSY)
        if self.refcount(mod) > 0:
            raise ModuleError(f"Module {name} is in use", EBUSY)
        status = self.console.delete_module(name)
        if status < 0:
            import os

            raise ModuleError(f"could not remove module {name}: {os.strerror(-status)}", -status)
        self._going(mod)
        self._free_module(mod)

    def _going(self, mod: Module) -> None:
        """After exit (or a failed init): the going hooks (klp_module_going), ftrace_release_mod."""
        for _, going in reversed(self.notifiers):
            going(mod)
        self._release_records(mod, 0, 1 << 64)

    def _release_records(self, mod: Module, start: int, end: int) -> None:
        for base, size in mod.text_ranges():
            lo, hi = max(base, start), min(base + size, end)
            if lo < hi:
                gone = set(self.ft.release(lo, hi))
                mod.records = [ip for ip in mod.records if ip not in gone]

    def _free_module(self, mod: Module) -> None:
        """free_module: sysfs, the list, the references it holds, parameters, kallsyms, memory."""
        m = self.m
        view = m.struct("module", mod.addr)
        view.state = m.types.enum("MODULE_STATE_UNFORMED")
        self.loaded.pop(mod.name, None)
        for used in mod.uses:  # module_unload_free
            if mod in used.holders:
                used.holders.remove(mod)
            uv = m.struct("module", used.addr)
            uv.refcnt.counter = uv.refcnt.counter - 1
        mod.uses.clear()
        for addr in mod._charp.values():  # destroy_params
            m.heap.free(addr)
        mod._charp.clear()
        self._unlink(mod)
        if mod.kallsyms in m.image.module_kallsyms:
            m.image.module_kallsyms.remove(mod.kallsyms)
        for mem_type in list(mod.mem):
            self._free_mem(mod, mem_type)

    def _free_mem(self, mod: Module, mem_type: str) -> None:
        base, size = mod.mem.pop(mem_type)
        if not size:
            return
        m = self.m
        if mem_type in TEXT_TYPES:  # freed text traps if anything still jumps there
            m.mem.write(base, b"\xcc" * size)
            m.uc.ctl_remove_cache(base, base + size)
        else:
            m.mem.write(base, bytes(size))
        m.heap.free(base)

    def _link(self, mod: Module) -> None:
        """list_add_rcu(&mod->list, &modules): at the head, newest first."""
        m = self.m
        head = m.var_addr("modules")
        node = m.struct("module", mod.addr).addr_of("list")
        first = m.mem.read_u64(head)
        m.mem.write_u64(node, first)
        m.mem.write_u64(node + 8, head)
        m.mem.write_u64(first + 8, node)
        m.mem.write_u64(head, node)  # the store that publishes it

    def _unlink(self, mod: Module) -> None:
        m = self.m
        node = m.struct("module", mod.addr).addr_of("list")
        nxt, prev = m.mem.read_u64(node), m.mem.read_u64(node + 8)
        if not nxt:
            return
        m.mem.write_u64(nxt + 8, prev)
        m.mem.write_u64(prev, nxt)
        m.mem.write_u64(node, 0)
        m.mem.write_u64(node + 8, 0)

    # --- parameters ----------------------------------------------------------------------------

    def param_get(self, mod: Module, p: Param) -> str:
        """param_get_<type>: the text of /sys/module/<mod>/parameters/<param>."""
        mem = self.m.mem
        if p.type in INT_TYPES:
            size, signed = INT_TYPES[p.type]
            return f"{int.from_bytes(mem.read(p.arg, size), 'little', signed=signed)}\n"
        if p.type in ("bool", "invbool"):
            value = mem.read(p.arg, 1)[0] != 0
            return ("Y" if value != (p.type == "invbool") else "N") + "\n"
        if p.type == "charp":
            ptr = mem.read_u64(p.arg)
            return (mem.read_cstr(ptr, CHARP_MAX + 1) if ptr else "(null)") + "\n"
        raise KlpemuError(f"{mod.name}: parameter {p.name} has unknown type {p.type}", EINVAL)

    def param_set(self, mod: Module, p: Param, value: str | None) -> None:
        """param_set_<type>: raises KlpemuError with the errno Linux's setter returns."""
        m = self.m
        if p.type in INT_TYPES:
            if value is None:
                raise KlpemuError("missing value", EINVAL)
            size, signed = INT_TYPES[p.type]
            n = _kstrto(value, size, signed)
            m.mem.write(p.arg, n.to_bytes(size, "little", signed=signed))
        elif p.type in ("bool", "invbool"):
            b = _kstrtobool(value)
            m.mem.write(p.arg, bytes([int(b != (p.type == "invbool"))]))
        elif p.type == "charp":
            if value is None:
                raise KlpemuError("missing value", EINVAL)
            raw = value.encode()
            if len(raw) > CHARP_MAX:
                raise KlpemuError("too large", ENOSPC)
            addr = m.heap.kzalloc(len(raw) + 1)
            m.mem.write(addr, raw + b"\0")
            m.mem.write_u64(p.arg, addr)
            old = mod._charp.pop(p.arg, None)
            if old is not None:
                m.heap.free(old)
            mod._charp[p.arg] = addr
        else:
            raise KlpemuError(f"{mod.name}: parameter {p.name} has unknown type {p.type}", EINVAL)

    def _parse_args(self, mod: Module, argv: list[str]) -> None:
        """parse_args for a module: unknown names are ignored with a warning, bad values refuse."""
        by_name = {p.name.replace("-", "_"): p for p in mod.params}
        for arg in argv:
            name, eq, value = arg.partition("=")
            p = by_name.get(name.replace("-", "_"))
            if p is None:
                self._log(f"{mod.name}: unknown parameter '{name}' ignored")
                continue
            try:
                self.param_set(mod, p, value if eq else None)
            except KlpemuError as e:
                if e.errno == ENOSPC:
                    self._log(f"{mod.name}: `{value}' too large for parameter `{name}'", LOGLEVEL_ERR)
                else:
                    self._log(f"{mod.name}: `{value}' invalid for parameter `{name}'", LOGLEVEL_ERR)
                raise ModuleError(f"{mod.name}: `{value}' invalid for parameter `{name}'", e.errno) from None


def _klp_info(data: bytes, sections: list, layout: _Layout, values: list[int]) -> KlpInfo:
    return KlpInfo(
        data,
        {i: layout.addr(i) for i in layout.place if i >= 0},
        values,
        [i for i, sec in enumerate(sections) if sec["sh_type"] == "SHT_RELA" and sec["sh_flags"] & SHF_RELA_LIVEPATCH],
    )


class _Loading:
    """One load_module() call: each step records what to undo; a failure undoes it in reverse."""

    def __init__(self, modules: Modules, data: bytes, filename: str, argv: list[str]):
        self.mods = modules
        self.m = modules.m
        self.data = data
        self.filename = filename
        self.argv = argv
        self.undo: list[Callable[[], None]] = []
        self.mod: Module | None = None

    def fail(self, errno: int, message: str, log: str | None = None, level: int = LOGLEVEL_ERR) -> ModuleError:
        if log is not None:
            self.mods._log(log, level)
        return ModuleError(message, errno)

    def run(self) -> Module:
        try:
            try:
                return self._load()
            except (ELFError, ConstructError, UnicodeDecodeError) as e:  # pyelftools on a damaged file
                raise self.fail(
                    ENOEXEC,
                    f"{self.filename}: not a valid module ELF ({e})",
                    f"{self.filename}: not a valid module ELF",
                ) from None
        except BaseException:
            for undo in reversed(self.undo):
                undo()
            raise

    def _load(self) -> Module:
        m, mods = self.m, self.mods
        why = _check_elf(self.data)
        if why is not None:
            raise self.fail(ENOEXEC, why, why)
        elf = ELFFile(io.BytesIO(self.data))
        sections = list(elf.iter_sections())
        self.elf, self.sections = elf, sections
        modinfo = next((s for s in sections if s.name == ".modinfo"), None)
        info = _parse_modinfo(modinfo.data()) if modinfo is not None else {}
        stem = self.filename.rsplit("/", 1)[-1].removesuffix(".ko")
        name = (info.get("name") or [stem.replace("-", "_")])[0]
        name_max = m.types.struct("module").member("name")[1].size
        if not name or len(name.encode()) >= name_max:
            raise self.fail(ENAMETOOLONG, f"module name '{name}' is longer than {name_max - 1} bytes")
        symtab = next((s for s in sections if isinstance(s, SymbolTableSection) and s.name == ".symtab"), None)
        if symtab is None:
            raise self.fail(
                ENOEXEC,
                f"{name}: module has no symbols (stripped?)",
                f"{name}: module has no symbols (stripped?)",
                LOGLEVEL_WARNING,
            )
        taints = self._check_modinfo(name, info)
        if name in mods.loaded:  # module_patient_check_exists
            raise self.fail(EEXIST, f"module {name} is already loaded")
        layout = self._layout(name)
        mod = self.mod = Module(name, 0, {}, {}, info, taints)
        self._allocate(mod, layout)
        mods.loaded[name] = mod  # add_unformed_module: a second load now gets -EEXIST
        self.undo.append(lambda: mods.loaded.pop(name, None))
        values = self._simplify_symbols(mod, symtab, layout)
        if "livepatch" in info:
            mod.klp_info = _klp_info(self.data, sections, layout, values)
        images = self._images(layout)
        self._apply_relocations(mod, symtab, values, layout, images)
        self._write(mod, layout, images)
        self._make_struct_module(mod, symtab, values, layout)
        self._link(mod)
        self._kallsyms(mod, symtab, values, layout)
        self._ftrace_init(mod)
        self._coming(mod)
        self.undo.append(lambda: self._free_params(mod))
        mods._parse_args(mod, self.argv)
        return self._init(mod)

    # --- modinfo, taints -----------------------------------------------------------------------

    def _check_modinfo(self, name: str, info: dict[str, list[str]]) -> int:
        mods = self.mods
        taints = 0
        if "intree" not in info:
            if not mods.tainted & (1 << TAINT_OOT_MODULE):
                mods._log(f"{name}: loading out-of-tree module taints kernel.")
            taints |= 1 << TAINT_OOT_MODULE
        if "livepatch" in info:
            if not mods.tainted & (1 << TAINT_LIVEPATCH):
                mods._log(f"{name}: tainting kernel with TAINT_LIVEPATCH", LOGLEVEL_NOTICE)
            taints |= 1 << TAINT_LIVEPATCH
        license = (info.get("license") or ["unspecified"])[0]
        if license not in GPL_COMPATIBLE:
            if not mods.tainted & (1 << TAINT_PROPRIETARY_MODULE):
                mods._log(f"{name}: module license '{license}' taints kernel.")
                mods._log("Disabling lock debugging due to kernel taint")
            taints |= 1 << TAINT_PROPRIETARY_MODULE
        mods.tainted |= taints  # add_taint_module: the kernel stays tainted
        return taints

    # --- layout and memory ---------------------------------------------------------------------

    def _layout(self, name: str) -> _Layout:
        layout = _Layout()
        for i, sec in enumerate(self.sections):
            flags = sec["sh_flags"]
            if not flags & SHF_ALLOC or sec.name in (".modinfo", "__versions"):
                continue
            init = sec.name.startswith(".init")
            if flags & SHF_EXECINSTR:
                mem_type = "MOD_INIT_TEXT" if init else "MOD_TEXT"
            elif flags & SHF_WRITE or sec.name.startswith(".data..ro_after_init"):
                mem_type = "MOD_INIT_DATA" if init else "MOD_DATA"
            else:
                mem_type = "MOD_INIT_DATA" if init else "MOD_RODATA"
            layout.add(i, mem_type, sec["sh_size"], sec["sh_addralign"])
        layout.add(-1, "MOD_DATA", self.m.types.sizeof("module"), 64)  # THIS_MODULE_SECTION
        return layout

    def _allocate(self, mod: Module, layout: _Layout) -> None:
        heap = self.m.heap
        for mem_type in MEM_TYPES:
            size = layout.size[mem_type]
            if not size:
                mod.mem[mem_type] = (0, 0)
                continue
            alloc = heap.alloc_text if mem_type in TEXT_TYPES else heap.alloc_module_data
            try:
                base = alloc(size, PAGE_SIZE)
            except KlpemuError as e:
                raise ModuleError(f"{mod.name}: {e}", ENOMEM) from None
            layout.base[mem_type] = base
            mod.mem[mem_type] = (base, size)
            self.undo.append(lambda t=mem_type: self.mods._free_mem(mod, t))
        mod.addr = layout.addr(-1)
        for i in layout.place:  # what /sys/module/<mod>/sections lists: non-empty sections
            if i >= 0 and self.sections[i]["sh_size"]:
                mod.sections[self.sections[i].name] = layout.addr(i)
        mod.sections[THIS_MODULE_SECTION] = mod.addr

    # --- symbols -------------------------------------------------------------------------------

    def _resolve(self, mod: Module, name: str) -> tuple[int, Module | None] | None:
        """resolve_symbol: vmlinux (global before local, never user space), then loaded modules'
        global symbols. Returns (address, owner module or None)."""
        if name == "__this_module":
            return mod.addr, None
        syms = [s for s in self.m.image.by_name.get(name, ()) if s.addr >= 1 << 63]
        glob = [s for s in syms if not s.local]
        if glob:
            return glob[0].addr, None
        if len(syms) == 1:
            return syms[0].addr, None
        for other in self.mods.loaded.values():
            if other is mod or other.kallsyms is None:
                continue
            hits = [s for s in other.kallsyms.by_name.get(name, ()) if not s.local]
            if hits:
                return hits[0].addr, other
        return None

    def _simplify_symbols(self, mod: Module, symtab: SymbolTableSection, layout: _Layout) -> list[int]:
        """Each symbol's final value; every unknown symbol is reported, then the load fails."""
        values, err = [], 0
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            value = sym["st_value"]
            if shndx == "SHN_UNDEF" and sym.name:
                hit = self._resolve(mod, sym.name)
                if hit is not None:
                    value, owner = hit
                    if owner is not None and owner not in mod.uses:
                        self._use(mod, owner)
                elif sym["st_info"]["bind"] == "STB_WEAK":
                    value = 0
                else:
                    self.mods._log(f"{mod.name}: Unknown symbol {sym.name} (err -{ENOENT})")
                    err = err or ENOENT
            elif shndx == "SHN_COMMON":
                self.mods._log(f"{mod.name}: please compile with -fno-common")
                err = ENOEXEC
            elif isinstance(shndx, int) and shndx in layout.place:
                value = layout.addr(shndx) + sym["st_value"]
            values.append(value & (2**64 - 1))
        if err == ENOENT:
            raise ModuleError(f"{mod.name}: Unknown symbol in module", ENOENT)
        if err:
            raise ModuleError(f"{mod.name}: common symbols (compile with -fno-common)", err)
        return values

    def _use(self, mod: Module, owner: Module) -> None:
        """ref_module: mod holds a reference on owner while it is loaded."""
        view = self.m.struct("module", owner.addr)
        view.refcnt.counter = view.refcnt.counter + 1
        mod.uses.append(owner)
        owner.holders.append(mod)

        def undo() -> None:
            view.refcnt.counter = view.refcnt.counter - 1
            if mod in owner.holders:
                owner.holders.remove(mod)
            if owner in mod.uses:
                mod.uses.remove(owner)

        self.undo.append(undo)

    # --- relocations ---------------------------------------------------------------------------

    def _images(self, layout: _Layout) -> dict[str, bytearray]:
        images = {t: bytearray(layout.size[t]) for t in MEM_TYPES}
        for i, (mem_type, off) in layout.place.items():
            if i < 0:
                continue
            sec = self.sections[i]
            if sec["sh_type"] != "SHT_NOBITS" and sec["sh_size"]:
                images[mem_type][off : off + sec["sh_size"]] = sec.data()
        return images

    def _apply_relocations(
        self, mod: Module, symtab: SymbolTableSection, values: list[int], layout: _Layout, images: dict[str, bytearray]
    ) -> None:
        """apply_relocate_add on every relocation section of a loaded (SHF_ALLOC) section."""
        for index, sec in enumerate(self.sections):
            if sec["sh_type"] not in ("SHT_RELA", "SHT_REL"):
                continue
            target = sec["sh_info"]
            if target not in layout.place:  # relocations of debug info and other unloaded sections
                continue
            if sec["sh_flags"] & SHF_RELA_LIVEPATCH:
                self._klp_relocations(mod, index, values, layout, images)
                continue
            if sec["sh_type"] == "SHT_REL":
                raise self.fail(
                    ENOEXEC, f"{mod.name}: REL relocation unsupported", f"module {mod.name}: REL relocation unsupported"
                )
            mem_type, base_off = layout.place[target]
            image, sec_addr = images[mem_type], layout.addr(target)

            def read(addr: int, size: int, image=image, delta=base_off - sec_addr) -> bytes:
                return bytes(image[addr + delta : addr + delta + size])

            def write(addr: int, data: bytes, image=image, delta=base_off - sec_addr) -> None:
                image[addr + delta : addr + delta + len(data)] = data

            relocs = [(r["r_offset"], r["r_info_type"], r["r_info_sym"], r["r_addend"]) for r in sec.iter_relocations()]
            apply_relocate_add(
                mod.name, relocs, values, sec_addr, self.sections[target]["sh_size"], read, write, self.mods._log
            )

    def _klp_relocations(
        self, mod: Module, index: int, values: list[int], layout: _Layout, images: dict[str, bytearray]
    ) -> None:
        """klp_apply_section_relocs(objname NULL): a .klp.rela.vmlinux.* section is written now,
        into the unwritten copy; those of module objects wait for the livepatch core."""
        apply = self.mods.klp_apply_section_relocs
        if apply is None:
            return
        klp = mod.klp_info or _klp_info(self.data, self.sections, layout, values)

        def locate(addr: int) -> tuple[bytearray, int]:
            for mem_type, (base, size) in mod.mem.items():
                if size and base <= addr < base + size:
                    return images[mem_type], addr - base
            raise ModuleError(f"{mod.name}: klp relocation at 0x{addr:x} outside the module", ENOEXEC)

        def read(addr: int, size: int) -> bytes:
            image, off = locate(addr)
            return bytes(image[off : off + size])

        def write(addr: int, data: bytes) -> None:
            image, off = locate(addr)
            image[off : off + len(data)] = data

        try:
            apply(mod, klp, index, None, read, write)
        except ModuleError:
            raise
        except KlpemuError as e:
            raise ModuleError(str(e), e.errno or EINVAL) from None

    def _write(self, mod: Module, layout: _Layout, images: dict[str, bytearray]) -> None:
        m = self.m
        for mem_type, image in images.items():
            base, size = mod.mem[mem_type]
            if not size:
                continue
            m.mem.write(base, bytes(image))
            if mem_type in TEXT_TYPES:
                m.uc.ctl_remove_cache(base, base + size)  # flush_module_icache

    # --- struct module, list, kallsyms ---------------------------------------------------------

    def _section_of(self, name: str, layout: _Layout) -> tuple[int, int] | None:
        for i, sec in enumerate(self.sections):
            if sec.name == name and i in layout.place:
                return layout.addr(i), sec["sh_size"]
        return None

    def _make_struct_module(self, mod: Module, symtab: SymbolTableSection, values: list[int], layout: _Layout) -> None:
        m = self.m
        t = m.types
        view = m.struct("module", mod.addr)
        view.state = t.enum("MODULE_STATE_UNFORMED")
        m.mem.write(view.addr_of("name"), mod.name.encode() + b"\0")
        for mem_type in MEM_TYPES:
            base, size = mod.mem[mem_type]
            mv = view.mem[t.enum(mem_type)]
            mv.base = base
            mv.size = size
        for sym, value in zip(symtab.iter_symbols(), values, strict=True):
            if sym["st_info"]["bind"] != "STB_GLOBAL" or sym["st_shndx"] == "SHN_UNDEF":
                continue
            if sym.name == "init_module":
                view.init = value
            elif sym.name == "cleanup_module":
                view.exit = value
        view.refcnt.counter = MODULE_REF_BASE
        view.taints = mod.taints
        view.klp = 1 if "livepatch" in mod.info else 0
        kp_size = t.sizeof("kernel_param")
        params = self._section_of("__param", layout)
        if params is not None:
            addr, size = params
            view.kp = addr
            view.num_kp = size // kp_size
            for k in range(size // kp_size):
                kp = m.struct("kernel_param", addr + k * kp_size)
                type_name = m.mem.read_u64(kp.addr_of("type"))  # View.type is the view's own type
                mod.params.append(Param(m.mem.read_cstr(kp.name, 256), m.mem.read_cstr(type_name, 32), kp.perm, kp.arg))
            bad = [p for p in mod.params if p.type not in (*INT_TYPES, "bool", "invbool", "charp")]
            if bad:
                raise self.fail(
                    EINVAL,
                    f"{mod.name}: parameter {bad[0].name} has unknown type {bad[0].type}",
                    f"{mod.name}: parameter {bad[0].name} has unknown type {bad[0].type}",
                )
        sites = self._section_of("__mcount_loc", layout)
        if sites is not None:
            addr, size = sites
            view.ftrace_callsites = addr
            view.num_ftrace_callsites = size // 8
        black = self._section_of("_kprobe_blacklist", layout)
        if black is not None:
            view.kprobe_blacklist, view.num_kprobe_blacklist = black[0], black[1] // 8
        kprobes_text = self._section_of(".kprobes.text", layout)
        if kprobes_text is not None:
            view.kprobes_text_start, view.kprobes_text_size = kprobes_text

    def _link(self, mod: Module) -> None:
        self.mods._link(mod)
        self.undo.append(lambda: self.mods._unlink(mod))

    def _kallsyms(self, mod: Module, symtab: SymbolTableSection, values: list[int], layout: _Layout) -> None:
        """add_kallsyms: every named symbol of a loaded section, in symbol-table order."""
        kinds = {"STT_FUNC": "func", "STT_OBJECT": "object", "STT_NOTYPE": "label"}
        for sym, value in zip(symtab.iter_symbols(), values, strict=True):
            shndx = sym["st_shndx"]
            kind = kinds.get(sym["st_info"]["type"])
            if not sym.name or kind is None or not isinstance(shndx, int) or shndx not in layout.place:
                continue
            mem_type = layout.place[shndx][0]
            mod._symbols.append(
                (sym.name, value, sym["st_size"], kind, sym["st_info"]["bind"] == "STB_LOCAL", mem_type)
            )
        _set_kallsyms(self.m, mod, init=True)

        def undo() -> None:
            if mod.kallsyms in self.m.image.module_kallsyms:
                self.m.image.module_kallsyms.remove(mod.kallsyms)

        self.undo.append(undo)

    # --- ftrace, coming, init ------------------------------------------------------------------

    def _ftrace_init(self, mod: Module) -> None:
        m = self.m
        view = m.struct("module", mod.addr)
        n = view.num_ftrace_callsites
        sites = [m.mem.read_u64(view.ftrace_callsites + 8 * k) for k in range(n)]
        stray = [ip for ip in sites if ip and not any(lo <= ip < hi for lo, hi in mod.text_ranges())]
        if stray:  # Linux trusts the section; a record for someone else's code would be a second one
            raise self.fail(
                ENOEXEC,
                f"{mod.name}: __mcount_loc names 0x{stray[0]:x}, outside the module's text",
                f"{mod.name}: __mcount_loc entry 0x{stray[0]:x} is outside the module's text",
            )
        try:
            mod.records = self.mods.ft.module_init(sites)
        except KlpemuError as e:
            raise ModuleError(f"{mod.name}: {e}", e.errno or ENOMEM) from None
        self.undo.append(lambda: self.mods._release_records(mod, 0, 1 << 64))

    def _coming(self, mod: Module) -> None:
        """complete_formation and prepare_coming_module."""
        m = self.m
        view = m.struct("module", mod.addr)
        view.state = m.types.enum("MODULE_STATE_COMING")
        self.undo.append(lambda: setattr(view, "state", m.types.enum("MODULE_STATE_GOING")))
        self.mods.ft.module_enable()
        for coming, going in self.mods.notifiers:
            try:
                coming(mod)
            except KlpemuError as e:  # the hooks that succeeded are undone by the unwinding
                raise ModuleError(str(e), e.errno or EINVAL) from None
            self.undo.append(lambda going=going: going(mod))

    def _free_params(self, mod: Module) -> None:
        for addr in mod._charp.values():
            self.m.heap.free(addr)
        mod._charp.clear()

    def _init(self, mod: Module) -> Module:
        """do_init_module: init in the shell process, then free init memory; or unwind."""
        m, mods = self.m, self.mods
        try:
            status = mods.console.init_module(mod.addr, mod.name)
        except KlpemuError:
            # No answer (init still running, or the machine stopped): the module stays as it
            # is, in MODULE_STATE_COMING, and its memory is not freed under a running init.
            self.undo.clear()
            raise
        if status < 0:
            import os

            raise ModuleError(f"{mod.name}: init failed: {os.strerror(-status)}", -status)
        self.undo.clear()  # LIVE: from now on the module goes only through rmmod
        for live in mods.live_notifiers:
            live(mod)
        # Init memory goes away: its ftrace records (ftrace_free_mem), symbols, allocations.
        base, size = mod.mem["MOD_INIT_TEXT"]
        if size:
            mods._release_records(mod, base, base + size)
        view = m.struct("module", mod.addr)
        for mem_type in INIT_TYPES:
            if mod.mem[mem_type][1]:
                mods._free_mem(mod, mem_type)
            mod.mem[mem_type] = (0, 0)
            mv = view.mem[m.types.enum(mem_type)]
            mv.base = 0
            mv.size = 0
        _set_kallsyms(m, mod, init=False)
        return mod


def _set_kallsyms(m: Machine, mod: Module, init: bool) -> None:
    """Publish mod's kallsyms: with its init symbols while init may run, without them after."""
    old = mod.kallsyms
    syms = [s[:5] for s in mod._symbols if init or s[5] not in INIT_TYPES]
    mod.kallsyms = ModuleKallsyms(mod.name, syms, mod.text_ranges())
    if old in m.image.module_kallsyms:
        m.image.module_kallsyms[m.image.module_kallsyms.index(old)] = mod.kallsyms
    else:
        m.image.module_kallsyms.append(mod.kallsyms)
