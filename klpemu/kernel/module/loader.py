"""The load sequence of a module, each step undone in reverse on failure (load_module, kernel/module/main.c).

load_module()'s work runs on the host, in Linux's order: ELF checks, .modinfo (taints, name, a
second load refused), layout into a text allocation (executable sections, in the module text
area) and data/rodata allocations (the module data area, reachable by -mcmodel=kernel code),
symbol resolution (against exports only: vmlinux's, then loaded modules', GPL-only ones hidden from
a module that is not GPL-compatible, with a reference on each module used; `__this_module` is the
struct module the loader makes), x86_64 relocations, the module's own exports,
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

import errno
import functools
import io
import os
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...abi import MODULE_REF_BASE
from ...errors import KlpemuError
from ...machine.kstr import kbytes, kstr
from ...machine.memory import PAGE_SIZE
from ..panic import TAINT_PROPRIETARY_MODULE
from ..printk import LogLevel, log_store
from .checks import check_modinfo, elf_validity_check, modinfo_name, parse_modinfo
from .internal import (
    INIT_TYPES,
    MEM_TYPES,
    TEXT_TYPES,
    KlpInfo,
    Module,
    ModuleError,
)
from .kallsyms import add_kallsyms, publish_kallsyms, remove_kallsyms
from .ksymtab import find_symbol, ksymtab_kind, read_entries
from .params import PARAM_TYPES, Param, destroy_params, parse_args
from .relocations import apply_relocate_add

if TYPE_CHECKING:
    from elftools.elf.sections import Section, SymbolTableSection

    from .main import Modules

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHF_RELA_LIVEPATCH = 0x00100000
THIS_MODULE_SECTION = ".gnu.linkonce.this_module"


class _Layout:
    """Where each SHF_ALLOC section goes: (mod_mem_type, offset) and the size of each type."""

    def __init__(self) -> None:
        self.place: dict[int, tuple[str, int]] = {}
        self.size = {t: 0 for t in MEM_TYPES}
        self.base = {t: 0 for t in MEM_TYPES}

    def add(self, index: int, mem_type: str, size: int, align: int) -> None:
        align = max(align, 1)
        off = (self.size[mem_type] + align - 1) // align * align
        self.place[index] = (mem_type, off)
        self.size[mem_type] = off + size

    def addr(self, index: int) -> int:
        mem_type, off = self.place[index]
        return self.base[mem_type] + off


class Loader:
    """One load_module() call: each step records what to undo; a failure undoes it in reverse."""

    def __init__(self, modules: Modules, data: bytes, filename: str, argv: list[str]):
        self.mods = modules
        self.m = modules.m
        self.data = data
        self.filename = filename
        self.argv = argv
        self.undo: list[Callable[[], object]] = []
        self.sections: list[Section] = []
        self.using_gplonly_symbols = False

    def log(self, text: str, level: int = LogLevel.WARNING) -> None:
        log_store(self.m, text, level)

    def fail(self, err: int, message: str, log: str | None = None, level: int = LogLevel.ERR) -> ModuleError:
        if log is not None:
            self.log(log, level)
        return ModuleError(message, err)

    def run(self) -> Module:
        from elftools.common.exceptions import ELFError
        from elftools.construct.core import ConstructError

        try:
            try:
                return self._load()
            # pyelftools on a damaged file (zlib: it inflates a section flagged SHF_COMPRESSED)
            except (ELFError, ConstructError, UnicodeDecodeError, zlib.error) as e:
                raise self.fail(
                    errno.ENOEXEC,
                    f"{self.filename}: not a valid module ELF ({e})",
                    f"{self.filename}: not a valid module ELF",
                ) from None
        except BaseException:
            # Every step is undone, even after one fails: a damaged module may have written over
            # what a step reads (its own struct module), and the rest must not stay behind.
            for undo in reversed(self.undo):
                try:
                    undo()
                except KlpemuError as e:
                    self.log(f"{self.filename}: undoing a failed load: {e}", LogLevel.WARNING)
            raise

    def _load(self) -> Module:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        m, mods = self.m, self.mods
        why = elf_validity_check(self.data)
        if why is not None:
            raise self.fail(errno.ENOEXEC, why, why)
        sections = self.sections = list(ELFFile(io.BytesIO(self.data)).iter_sections())
        modinfo = next((s for s in sections if s.name == ".modinfo"), None)
        raw_info = modinfo.data() if modinfo is not None else b""
        info = parse_modinfo(raw_info)
        # The name is bytes, as the kernel keeps it; the host shows it through kstr.
        stem = self.filename.rsplit("/", 1)[-1].removesuffix(".ko")
        raw_name = modinfo_name(raw_info)
        if raw_name is None:
            raw_name = kbytes(stem.replace("-", "_"))
        name = kstr(raw_name)
        name_max = m.types.struct("module").member("name")[1].size
        if len(raw_name) >= name_max:
            raise self.fail(errno.ENAMETOOLONG, f"module name '{name}' is longer than {name_max - 1} bytes")
        if raw_name in (b"", b".", b"..") or b"/" in raw_name:
            # Its /sys/module and /sys/kernel/livepatch directories could not be named, nor
            # could rmmod name it (kmod takes the basename): refused before anything is set up.
            why = f"module name '{name}' is not a valid name for a module"
            raise self.fail(errno.EINVAL, why, why)
        symtab = next((s for s in sections if isinstance(s, SymbolTableSection) and s.name == ".symtab"), None)
        if symtab is None:
            raise self.fail(
                errno.ENOEXEC,
                f"{name}: module has no symbols (stripped?)",
                f"{name}: module has no symbols (stripped?)",
                LogLevel.WARNING,
            )
        taints = check_modinfo(m, mods.taint, name, info)
        if mods.find(name) is not None:  # module_patient_check_exists
            raise self.fail(errno.EEXIST, f"module {name} is already loaded")
        layout = self._layout()
        mod = Module(name, 0, {}, {}, info, taints, name_bytes=raw_name)
        self._allocate(mod, layout)
        mods.mod_tree_insert(mod)
        self.undo.append(lambda: mods.mod_tree_remove(mod))
        self.undo.append(lambda: mods.module_unload_free(mod))
        values = self._simplify_symbols(mod, symtab, layout)
        if "livepatch" in info:
            mod.klp_info = self._klp_info(layout, values)
        images = self._images(layout)
        self._apply_relocations(mod, values, layout, images)
        self._exports(mod, layout, images)
        self._write(mod, images)
        self._make_struct_module(mod, symtab, values, layout)
        mods.list_add_rcu(mod)
        self.undo.append(lambda: mods.list_del_rcu(mod))
        add_kallsyms(m, mod, symtab, values, layout.place)
        self.undo.append(lambda: remove_kallsyms(m, mod))
        self._ftrace_init(mod)
        self._coming(mod)
        self.undo.append(lambda: destroy_params(m, mod))
        parse_args(m, mod, self.argv)
        return self._init(mod)

    # --- layout and memory ---------------------------------------------------------------------

    def _layout(self) -> _Layout:
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
                raise ModuleError(f"{mod.name}: {e}", errno.ENOMEM) from None
            layout.base[mem_type] = base
            mod.mem[mem_type] = (base, size)
            self.undo.append(functools.partial(self.mods.module_memory_free, mod, mem_type))
        mod.addr = self.m.ptr("module", layout.addr(-1))
        for i in layout.place:  # what /sys/module/<mod>/sections lists: non-empty sections
            if i >= 0 and self.sections[i]["sh_size"]:
                mod.sections[self.sections[i].name] = layout.addr(i)
        mod.sections[THIS_MODULE_SECTION] = mod.addr

    # --- symbols -------------------------------------------------------------------------------

    def _resolve(self, mod: Module, name: str) -> tuple[int, Module | None]:
        """resolve_symbol: the exports of vmlinux, then of the formed modules (find_symbol), and
        the rules after a hit (inherit_taint, ref_module). Returns (address, owner or None), or
        raises ModuleError with the errno simplify_symbols reports."""
        if name == "__this_module":  # modpost's: the struct module the loader makes
            return mod.addr, None
        mods = self.mods
        formed = [o for o in mods.list() if o is not mod and mods.state(o) != "MODULE_STATE_UNFORMED"]
        gplok = not mod.taints & (1 << TAINT_PROPRIETARY_MODULE)
        found = find_symbol(name, gplok, self.m.image.exports, formed)
        if found is None:
            raise ModuleError(f"{mod.name}: Unknown symbol {name}", errno.ENOENT)
        if found.sym.gpl_only:
            self.using_gplonly_symbols = True
        owner = found.owner
        if owner is not None and owner.taints & (1 << TAINT_PROPRIETARY_MODULE):  # inherit_taint
            if self.using_gplonly_symbols:
                self.log(
                    f"{mod.name}: module using GPL-only symbols uses symbols {name} from proprietary module"
                    f" {owner.name}.",
                    LogLevel.ERR,
                )
                raise ModuleError(f"{mod.name}: uses symbols from proprietary module {owner.name}", errno.EINVAL)
            if not mod.taints & (1 << TAINT_PROPRIETARY_MODULE):
                self.log(
                    f"{mod.name}: module uses symbols {name} from proprietary module {owner.name}, inheriting taint."
                )
                mod.taints |= 1 << TAINT_PROPRIETARY_MODULE
        if owner is not None and owner not in mod.uses:
            mods.ref_module(mod, owner)
        return found.sym.value, owner

    def _simplify_symbols(self, mod: Module, symtab: SymbolTableSection, layout: _Layout) -> list[int]:
        """Each symbol's final value; every unknown symbol is reported, then the load fails with
        the last error, as simplify_symbols does."""
        values, err = [], 0
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            value = sym["st_value"]
            if shndx == "SHN_UNDEF" and sym.name:
                try:
                    value, _ = self._resolve(mod, sym.name)
                except ModuleError as e:
                    if e.errno == errno.ENOENT and sym["st_info"]["bind"] == "STB_WEAK":
                        value = 0
                    else:
                        self.log(f"{mod.name}: Unknown symbol {sym.name} (err -{e.errno})")
                        err = e.errno or errno.ENOENT
            elif shndx == "SHN_COMMON":
                self.log(f"{mod.name}: please compile with -fno-common")
                err = errno.ENOEXEC
            elif isinstance(shndx, int) and shndx in layout.place:
                value = layout.addr(shndx) + sym["st_value"]
            values.append(value & (2**64 - 1))
        if err == errno.ENOEXEC:
            raise ModuleError(f"{mod.name}: common symbols (compile with -fno-common)", err)
        if err:
            raise ModuleError(f"{mod.name}: Unknown symbol in module", err)
        return values

    def _exports(self, mod: Module, layout: _Layout, images: dict[str, bytearray]) -> None:
        """find_module_sections' syms and gpl_syms, read once relocated, then
        verify_exported_symbols: no name another module or vmlinux exports already."""

        def read_name(addr: int) -> str:
            for mem_type, (base, size) in mod.mem.items():
                if size and base <= addr < base + size:
                    image, off = images[mem_type], addr - base
                    end = image.find(b"\0", off)
                    return kstr(bytes(image[off : end if end >= 0 else len(image)]))
            return ""

        for i, sec in enumerate(self.sections):
            gpl_only = ksymtab_kind(sec.name)
            if gpl_only is None or i not in layout.place:
                continue
            mem_type, off = layout.place[i]
            data = bytes(images[mem_type][off : off + sec["sh_size"]])
            for sym in read_entries(data, layout.addr(i), gpl_only, read_name):
                mod.syms[sym.name] = sym
        formed = [o for o in self.mods.list() if o is not mod and self.mods.state(o) != "MODULE_STATE_UNFORMED"]
        for name in sorted(mod.syms):
            found = find_symbol(name, True, self.m.image.exports, formed)
            if found is not None:
                owner = found.owner.name if found.owner is not None else "kernel"
                why = f"{mod.name}: exports duplicate symbol {name} (owned by {owner})"
                raise self.fail(errno.ENOEXEC, why, why)

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

    def _apply_relocations(self, mod: Module, values: list[int], layout: _Layout, images: dict[str, bytearray]) -> None:
        """apply_relocate_add on every relocation section of a loaded (SHF_ALLOC) section."""
        from elftools.elf.relocation import RelocationSection

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
                    errno.ENOEXEC,
                    f"{mod.name}: REL relocation unsupported",
                    f"module {mod.name}: REL relocation unsupported",
                )
            mem_type, base_off = layout.place[target]
            image, sec_addr = images[mem_type], layout.addr(target)

            def read(addr: int, size: int, image=image, delta=base_off - sec_addr) -> bytes:
                return bytes(image[addr + delta : addr + delta + size])

            def write(addr: int, data: bytes, image=image, delta=base_off - sec_addr) -> None:
                image[addr + delta : addr + delta + len(data)] = data

            assert isinstance(sec, RelocationSection)  # what pyelftools makes of SHT_RELA
            relocs = [(r["r_offset"], r["r_info_type"], r["r_info_sym"], r["r_addend"]) for r in sec.iter_relocations()]
            apply_relocate_add(
                mod.name, relocs, values, sec_addr, self.sections[target]["sh_size"], read, write, self.log
            )

    def _klp_relocations(
        self, mod: Module, index: int, values: list[int], layout: _Layout, images: dict[str, bytearray]
    ) -> None:
        """klp_apply_section_relocs(objname NULL): a .klp.rela.vmlinux.* section is written now,
        into the unwritten copy; those of module objects wait for the livepatch core."""
        apply = self.mods.klp_apply_section_relocs
        if apply is None:
            return
        klp = mod.klp_info or self._klp_info(layout, values)

        def locate(addr: int) -> tuple[bytearray, int]:
            for mem_type, (base, size) in mod.mem.items():
                if size and base <= addr < base + size:
                    return images[mem_type], addr - base
            raise ModuleError(f"{mod.name}: klp relocation at 0x{addr:x} outside the module", errno.ENOEXEC)

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
            raise ModuleError(str(e), e.errno or errno.EINVAL) from None

    def _klp_info(self, layout: _Layout, values: list[int]) -> KlpInfo:
        return KlpInfo(
            self.data,
            {i: layout.addr(i) for i in layout.place if i >= 0},
            values,
            [
                i
                for i, sec in enumerate(self.sections)
                if sec["sh_type"] == "SHT_RELA" and sec["sh_flags"] & SHF_RELA_LIVEPATCH
            ],
        )

    def _write(self, mod: Module, images: dict[str, bytearray]) -> None:
        m = self.m
        for mem_type, image in images.items():
            base, size = mod.mem[mem_type]
            if not size:
                continue
            m.mem.write(base, bytes(image))
            if mem_type in TEXT_TYPES:
                m.uc.ctl_remove_cache(base, base + size)  # flush_module_icache

    # --- struct module -----------------------------------------------------------------------------

    def _section_of(self, name: str, layout: _Layout) -> tuple[int, int] | None:
        for i, sec in enumerate(self.sections):
            if sec.name == name and i in layout.place:
                return layout.addr(i), sec["sh_size"]
        return None

    def _make_struct_module(self, mod: Module, symtab: SymbolTableSection, values: list[int], layout: _Layout) -> None:
        m = self.m
        t = m.types
        view = mod.struct
        view.state = t.enum("MODULE_STATE_UNFORMED")
        m.mem.write(view.addr_of("name"), mod.name_bytes + b"\0")
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
            bad = [p for p in mod.params if p.type not in PARAM_TYPES]
            if bad:
                raise self.fail(
                    errno.EINVAL,
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

    # --- ftrace, coming, init ------------------------------------------------------------------

    def _ftrace_init(self, mod: Module) -> None:
        m = self.m
        view = mod.struct
        n = view.num_ftrace_callsites
        sites = [m.mem.read_u64(view.ftrace_callsites + 8 * k) for k in range(n)]
        stray = [ip for ip in sites if ip and not any(lo <= ip < hi for lo, hi in mod.text_ranges())]
        if stray:  # Linux trusts the section; a record for someone else's code would be a second one
            raise self.fail(
                errno.ENOEXEC,
                f"{mod.name}: __mcount_loc names 0x{stray[0]:x}, outside the module's text",
                f"{mod.name}: __mcount_loc entry 0x{stray[0]:x} is outside the module's text",
            )
        try:
            mod.records = self.mods.ft.module_init(sites)
        except KlpemuError as e:
            raise ModuleError(f"{mod.name}: {e}", e.errno or errno.ENOMEM) from None
        self.undo.append(lambda: self.mods.ftrace_release_mod(mod))

    def _coming(self, mod: Module) -> None:
        """complete_formation and prepare_coming_module."""
        m = self.m
        view = mod.struct
        view.state = m.types.enum("MODULE_STATE_COMING")
        self.undo.append(lambda: setattr(view, "state", m.types.enum("MODULE_STATE_GOING")))
        self.mods.ft.module_enable()
        for coming, going in self.mods.notifiers:
            try:
                coming(mod)
            except KlpemuError as e:  # the hooks that succeeded are undone by the unwinding
                raise ModuleError(str(e), e.errno or errno.EINVAL) from None
            self.undo.append(functools.partial(going, mod))

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
            raise ModuleError(f"{mod.name}: init failed: {os.strerror(-status)}", -status)
        self.undo.clear()  # LIVE: from now on the module goes only through rmmod
        for live in mods.live_notifiers:
            live(mod)
        # Init memory goes away: its ftrace records (ftrace_free_mem), symbols, allocations.
        base, size = mod.mem["MOD_INIT_TEXT"]
        if size:
            mods.ftrace_free_mem(mod, base, base + size)
        view = mod.struct
        for mem_type in INIT_TYPES:
            if mod.mem[mem_type][1]:
                mods.module_memory_free(mod, mem_type)
            mod.mem[mem_type] = (0, 0)
            mv = view.mem[m.types.enum(mem_type)]
            mv.base = 0
            mv.size = 0
        publish_kallsyms(m, mod, init=False)
        return mod
