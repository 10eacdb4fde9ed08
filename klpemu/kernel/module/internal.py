"""struct module and what the loader's files share (include/linux/module.h, kernel/module/internal.h)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import KlpemuError
from ...machine.kstr import kbytes
from ...machine.types import Pointer
from ..panic import module_taint_letters

if TYPE_CHECKING:
    from ...machine.image import Symbol
    from .kallsyms import ModuleKallsyms
    from .ksymtab import KernelSymbol
    from .params import Param

# Which allocation a section goes to (enum mod_mem_type); which are text, which go after init.
MEM_TYPES = ("MOD_TEXT", "MOD_DATA", "MOD_RODATA", "MOD_INIT_TEXT", "MOD_INIT_DATA")
TEXT_TYPES = ("MOD_TEXT", "MOD_INIT_TEXT")
INIT_TYPES = ("MOD_INIT_TEXT", "MOD_INIT_DATA")
# One symbol of a module's symbol table as the loader keeps it: name, address, size, kind
# (func, object, label), local, the mod_mem_type it lives in (init symbols go after init), and
# its /proc/kallsyms type letter as elf_type gives it (lower case; upper when exported).
SymtabEntry = tuple[str, int, int, str, bool, str, str]


class ModuleError(KlpemuError):
    """A refused load or unload; errno is what init_module(2) or delete_module(2) would return."""


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
    addr: int  # the guest struct module: a typed Pointer once the loader has placed it
    # mod_mem_type -> (base, size), size 0 for none: a cache of struct module's mem[], which
    # the loader needs before that struct exists (it lives in MOD_DATA); see check_consistency.
    mem: dict[str, tuple[int, int]]
    sections: dict[str, int]  # loaded section -> address (/sys/module/<mod>/sections)
    info: dict[str, list[str]]  # .modinfo: tag -> values
    taints: int = 0
    kallsyms: ModuleKallsyms | None = None
    params: list[Param] = field(default_factory=list)
    syms: dict[str, KernelSymbol] = field(default_factory=dict)  # its exports, once relocated
    uses: list[Module] = field(default_factory=list)  # modules whose symbols it uses
    holders: list[Module] = field(default_factory=list)  # modules that use its symbols
    records: list[int] = field(default_factory=list)  # ips of its ftrace records
    klp_info: KlpInfo | None = None  # for MODULE_INFO(livepatch, "Y") modules
    charp_strings: dict[int, int] = field(default_factory=dict)  # variable -> kzalloc'd string the loader owns
    symtab: list[SymtabEntry] = field(default_factory=list)  # every named symbol of a loaded section
    elf: bytes = field(default=b"", repr=False)  # the file as loaded, for debuggers (its DWARF)
    name_bytes: bytes = b""  # the name as the kernel has it; `name` is its kstr

    def __post_init__(self) -> None:
        if not self.name_bytes:
            self.name_bytes = kbytes(self.name)

    @property
    def struct(self) -> Pointer:
        """The guest's struct module, typed (its address, once the loader has placed it)."""
        assert isinstance(self.addr, Pointer), "the loader has not placed this module's struct yet"
        return self.addr

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
        return module_taint_letters(self.taints)

    def __repr__(self) -> str:
        return f"<module {self.name} at 0x{self.addr:x}>"
