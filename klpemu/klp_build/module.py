"""Generating the livepatch module from the patched objects, as klp-build does: the changed
functions' code is taken from the patched build, not compiled again.

For each patched object an assembly file carries the bytes of the changed functions (renamed
livepatch_NAME), of the new functions and new variables they reach, and of the string literals
they use, with every relocation restated by `.reloc` against what it reaches: the module's own
copy for what is new or changed; for what stays in the kernel, the symbol itself when the module
may link against it (an export of vmlinux: the loader links modules against exports only),
otherwise a klp relocation (a static symbol or a global vmlinux does not export, with its position
when its name is not unique, or any symbol of a patched module). A generated C file
holds the klp_func/klp_object/klp_patch structures, KLP_MODULE_RELOC annotations for those klp
relocations, and an init that calls klp_enable_patch. gcc assembles and compiles them with the
modules' flags, `ld -r` links them, and klp-convert (klpconvert.py) makes the klp relocations.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..errors import KlpemuError
from ..kernel.module.ksymtab import ksymtab_kind, vmlinux_exports
from ..klpconvert import KlpConvertError, convert
from ..modbuild import module_command
from .objdiff import ObjectDiff, ObjectFile, Reloc, Symbol, reloc_target
from .refuse import source_of as refuse_source

R_NAMES = {1: "R_X86_64_64", 2: "R_X86_64_PC32", 4: "R_X86_64_PLT32", 10: "R_X86_64_32", 11: "R_X86_64_32S"}
R_NAMES[24] = "R_X86_64_PC64"
SHF_WRITE, SHF_MERGE, SHF_STRINGS = 0x1, 0x10, 0x20


def target_object(obj: str) -> str:
    """The livepatch object name of a built object: vmlinux, or the module's name."""
    if obj.startswith("modules/"):
        return Path(obj).stem.replace("-", "_")
    return "vmlinux"


@dataclass
class KlpFunc:
    target: str  # vmlinux or a module's name
    obj: str
    name: str
    sympos: int
    new_name: str


@dataclass
class KlpReloc:
    target: str
    name: str
    sympos: int


@dataclass
class Plan:
    funcs: list[KlpFunc] = field(default_factory=list)
    klp_relocs: list[KlpReloc] = field(default_factory=list)
    asm: list[str] = field(default_factory=list)  # one assembly file per patched object


class Positions:
    """sympos of local symbols: their order among vmlinux's objects in link order (kallsyms
    order), or within one module."""

    def __init__(self, build: Path, objects: list[str], image: Path | None = None):
        self.build = build
        self.vmlinux = [o for o in objects if not o.startswith("modules/")]
        self.image = image  # the kernel the module is for: its counts must agree
        self._locals: dict[str, dict[str, int]] = {}
        self._exports: set[str] | None = None
        self._kallsyms: dict[str, list[tuple[int, bool]]] | None = None

    def exported(self, name: str) -> bool:
        """Whether vmlinux exports name: the image's __ksymtab and __ksymtab_gpl, or without an
        image the export sections of the tree's objects."""
        if self._exports is None:
            if self.image is not None:
                with open(self.image, "rb") as f:
                    self._exports = set(vmlinux_exports(ELFFile(f)))
            else:
                self._exports = set()
                for obj in self.vmlinux:
                    with open(self.build / obj, "rb") as f:
                        for sec in ELFFile(f).iter_sections():
                            if ksymtab_kind(sec.name) is not None:
                                self._exports.add(sec.name.split("+", 1)[1])
        return name in self._exports

    def global_sympos(self, name: str) -> int:
        """sympos of a global of vmlinux: 0 when kallsyms has the name once, else its place
        among the functions and objects of that name in address order."""
        if self._kallsyms is None:
            self._kallsyms = {}
            if self.image is not None:
                with open(self.image, "rb") as f:
                    symtab = ELFFile(f).get_section_by_name(".symtab")
                    for s in symtab.iter_symbols() if isinstance(symtab, SymbolTableSection) else ():
                        if s["st_value"] >> 63 and s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT"):
                            entry = (s["st_value"], s["st_info"]["bind"] == "STB_LOCAL")
                            self._kallsyms.setdefault(s.name, []).append(entry)
        same = sorted(self._kallsyms.get(name, []))
        if len(same) <= 1:
            return 0
        return next((i + 1 for i, (_, local) in enumerate(same) if not local), 0)

    def _local_names(self, obj: str) -> dict[str, int]:
        if obj not in self._locals:
            names: dict[str, int] = {}
            with open(self.build / obj if obj != "vmlinux" else self.image or "", "rb") as f:
                symtab = ELFFile(f).get_section_by_name(".symtab")
                for s in symtab.iter_symbols() if isinstance(symtab, SymbolTableSection) else ():
                    kernel = obj != "vmlinux" or s["st_value"] >> 63  # the image's user space is not in kallsyms
                    if (
                        kernel
                        and s["st_info"]["bind"] == "STB_LOCAL"
                        and s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT")
                    ):
                        names[s.name] = names.get(s.name, 0) + 1
            self._locals[obj] = names
        return self._locals[obj]

    def sympos(self, obj: str, name: str) -> int:
        if obj.startswith("modules/"):
            return 0 if self._local_names(obj).get(name, 0) <= 1 else 1
        owners = [o for o in self.vmlinux if name in self._local_names(o)]
        if self.image is not None and self._local_names("vmlinux").get(name, 0) != len(owners):
            raise KlpemuError(
                f"{self.image}: has {self._local_names('vmlinux').get(name, 0)} local {name}, the sources"
                f" {len(owners)}: is the image built from these sources?",
                22,
            )
        return owners.index(obj) + 1 if len(owners) > 1 and obj in owners else 0


def _new_name(name: str, sympos: int) -> str:
    return f"livepatch_{name}" + (f"_{sympos}" if sympos else "")


class _Emitter:
    """The assembly file of one patched object."""

    def __init__(self, d: ObjectDiff, plan: Plan, positions: Positions, index: int):
        self.d, self.plan, self.pos = d, plan, positions
        self.target = target_object(d.obj)
        self.index = index
        self.lines: list[str] = []
        self.labels: dict[str, str] = {}  # kept symbol -> its name in the module
        self.strings: dict[str, str] = {}  # string section -> its label

    def plan_symbols(self) -> list[Symbol]:
        new = self.d.new
        added = set(self.d.added) | set(self.d.added_data)
        for c in self.d.changed:
            sympos = self.pos.sympos(self.d.obj, c.name) if new.symbols[c.name].local else 0
            label = _new_name(c.name, sympos)
            self.labels[c.name] = label
            self.plan.funcs.append(KlpFunc(self.target, self.d.obj, c.name, sympos, label))
        todo = [new.symbols[c.name] for c in self.d.changed]
        kept: list[Symbol] = []
        while todo:
            sym = todo.pop(0)
            kept.append(sym)
            for r in sym.relocs:
                reached = self._reached(r)
                if reached is not None and reached.name in added and reached.name not in self.labels:
                    local = f".Lklp{self.index}_{reached.name}"
                    self.labels[reached.name] = local if reached.local else reached.name
                    todo.append(reached)
        return kept

    def _reached(self, r: Reloc) -> Symbol | None:
        if r.section_sym:
            return reloc_target(self.d.new, r)[0]
        return self.d.new.symbols.get(r.sym)

    def _string(self, section: str) -> str:
        if section not in self.strings:
            self.strings[section] = f".Lklp{self.index}_str{len(self.strings)}"
        return self.strings[section]

    def _where(self, sym: Symbol, r: Reloc) -> str:
        """The relocation's target expression in the module."""
        obj: ObjectFile = self.d.new
        flags, _ = obj.sections.get(r.sym, (0, b"")) if r.section_sym else (0, b"")
        if r.section_sym and flags & SHF_MERGE and flags & SHF_STRINGS:
            return f"{self._string(r.sym)}{r.addend:+d}"
        if r.section_sym:
            reached, _ = reloc_target(obj, r)
            if reached is None:
                raise KlpemuError(
                    f"{refuse_source(self.d.obj)}: {sym.name}: refers to data without a symbol in {r.sym}", 22
                )
            addend = r.addend - reached.value
        else:
            reached, addend = obj.symbols.get(r.sym), r.addend
            if reached is None and r.sym == "__this_module" and self.target != "vmlinux":
                # The loader binds it to the module being loaded: here, the livepatch.
                raise KlpemuError(
                    f"{refuse_source(self.d.obj)}: {sym.name}: uses THIS_MODULE, which in a livepatch module would be"
                    " the livepatch itself (KBUILD_MODNAME names the patched module)",
                    22,
                )
            if reached is None:  # defined elsewhere: a global of vmlinux, or an export a module uses
                if self.target != "vmlinux" or self.pos.exported(r.sym):
                    return f"{r.sym}{addend:+d}"
                self._klp_reloc(sym, KlpReloc("vmlinux", r.sym, self.pos.global_sympos(r.sym)))
                return f"{r.sym}{addend:+d}"
        if reached.name in self.labels:
            return f"{self.labels[reached.name]}{addend:+d}"
        if reached.local or self.target != "vmlinux" or not self.pos.exported(reached.name):
            if reached.local:
                sympos = self.pos.sympos(self.d.obj, reached.name)
            elif self.target == "vmlinux":
                sympos = self.pos.global_sympos(reached.name)
            else:
                sympos = 0
            self._klp_reloc(sym, KlpReloc(self.target, reached.name, sympos))
        return f"{reached.name}{addend:+d}"

    def _klp_reloc(self, sym: Symbol, klp: KlpReloc) -> None:
        clash = [k for k in self.plan.klp_relocs if k.name == klp.name and k != klp]
        if clash:
            raise KlpemuError(
                f"{refuse_source(self.d.obj)}: {sym.name}: {klp.name} names two different symbols"
                " the module refers to (two static variables of one name in different files)",
                22,
            )
        if klp not in self.plan.klp_relocs:
            self.plan.klp_relocs.append(klp)

    def emit(self) -> str:
        kept = self.plan_symbols()
        out = self.lines
        out.append(f"# {self.d.obj}: the changed functions and what they need")
        for sym in kept:
            label = self.labels[sym.name]
            if sym.kind == "func":
                out.append(f'\t.section .text.{label},"ax",@progbits')
                out.append("\t.p2align 4")
                kind = "@function"
            else:
                flags = "aw" if sym.writable else "a"
                nob = "@nobits" if sym.nobits else "@progbits"
                kind_sec = "bss" if sym.nobits else "data" if sym.writable else "rodata"
                out.append(f'\t.section .{kind_sec}.{label},"{flags}",{nob}')
                out.append("\t.p2align 3")
                kind = "@object"
            if not label.startswith(".L"):
                out.append(f"\t.globl {label}")
                out.append(f"\t.type {label}, {kind}")
            out.append(f"{label}:")
            if sym.nobits:
                out.append(f"\t.zero {sym.size}")
            else:
                for i in range(0, len(sym.data), 16):
                    out.append("\t.byte " + ",".join(str(b) for b in sym.data[i : i + 16]))
            for r in sym.relocs:
                if r.type not in R_NAMES:
                    raise KlpemuError(
                        f"{refuse_source(self.d.obj)}: {sym.name}: relocation type {r.type} is not supported", 22
                    )
                out.append(f"\t.reloc {label}+{r.offset}, {R_NAMES[r.type]}, {self._where(sym, r)}")
            if not label.startswith(".L"):
                out.append(f"\t.size {label}, {sym.size}")
        for section, label in self.strings.items():
            data = self.d.new.sections[section][1]
            out.append(f'\t.section .rodata{label[2:]},"a",@progbits')
            out.append(f"{label}:")
            for i in range(0, len(data), 16):
                out.append("\t.byte " + ",".join(str(b) for b in data[i : i + 16]))
        fentry = [
            (self.labels[s.name], r.offset - 1)
            for s in kept
            if s.kind == "func"
            for r in s.relocs
            if r.sym == "__fentry__" and r.offset <= 1
        ]
        if fentry:
            out.append('\t.section __mcount_loc,"a",@progbits')
            out += [f"\t.quad {label}+{off}" for label, off in fentry]
        out.append('\t.section .note.GNU-stack,"",@progbits')
        return "\n".join(out) + "\n"


def plan_module(diffs: list[ObjectDiff], positions: Positions) -> Plan:
    plan = Plan()
    for i, d in enumerate(x for x in diffs if x.changed):
        plan.asm.append(_Emitter(d, plan, positions, i).emit())
    return plan


def _c_ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def stub_source(plan: Plan, name: str, replace: bool) -> str:
    """The C part: the klp structures, the KLP_MODULE_RELOC annotations, init and exit."""
    out = [
        f"// A livepatch module generated by klp-build: {name}",
        "#include <linux/module.h>",
        "#include <linux/kernel.h>",
        "#include <linux/livepatch.h>",
        "",
    ]
    for i, f in enumerate(plan.funcs):
        out.append(f'extern char klp_build_new{i}[] __asm__("{f.new_name}");')
    targets = list(dict.fromkeys(f.target for f in plan.funcs))
    if "vmlinux" in targets:
        targets.remove("vmlinux")
        targets.insert(0, "vmlinux")
    for t in dict.fromkeys(k.target for k in plan.klp_relocs):
        relocs = [k for k in plan.klp_relocs if k.target == t]
        for j, k in enumerate(relocs):
            out.append(f'extern char klp_build_ref_{_c_ident(t)}_{j}[] __asm__("{k.name}");')
        out.append(f"KLP_MODULE_RELOC({t}) klp_build_relocs_{_c_ident(t)}[] = {{")
        out += [f"\tKLP_SYMPOS(klp_build_ref_{_c_ident(t)}_{j}, {k.sympos})," for j, k in enumerate(relocs)]
        out.append("};")
    out.append("")
    for t in targets:
        out.append(f"static struct klp_func klp_build_funcs_{_c_ident(t)}[] = {{")
        for i, f in enumerate(plan.funcs):
            if f.target == t:
                out.append(f'\t{{ .old_name = "{f.name}", .new_func = klp_build_new{i}, .old_sympos = {f.sympos} }},')
        out.append("\t{ }")
        out.append("};")
    out.append("static struct klp_object klp_build_objs[] = {")
    for t in targets:
        obj_name = "NULL" if t == "vmlinux" else f'"{t}"'
        out.append(f"\t{{ .name = {obj_name}, .funcs = klp_build_funcs_{_c_ident(t)} }},")
    out += [
        "\t{ }",
        "};",
        "",
        "static struct klp_patch klp_build_patch = {",
        "\t.mod = THIS_MODULE,",
        "\t.objs = klp_build_objs,",
        f"\t.replace = {'true' if replace else 'false'},",
        "};",
        "",
        "static int klp_build_init(void)",
        "{",
        "\treturn klp_enable_patch(&klp_build_patch);",
        "}",
        "",
        "static void klp_build_exit(void)",
        "{",
        "}",
        "",
        "module_init(klp_build_init);",
        "module_exit(klp_build_exit);",
        'MODULE_LICENSE("GPL");',
        'MODULE_INFO(livepatch, "Y");',
        f'MODULE_DESCRIPTION("{name}, made by klp-build");',
    ]
    return "\n".join(out) + "\n"


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise KlpemuError(f"{what}: {Path(cmd[0]).name} failed:\n{res.stderr.strip()}", 8)


def build_module(plan: Plan, name: str, replace: bool, work: Path, output: Path, gcc: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    stub = work / f"{name}.mod.c"
    stub.write_text(stub_source(plan, name, replace))
    objs = [work / f"{name}.mod.o"]
    _run(module_command(stub, objs[0], gcc), str(stub))
    for i, text in enumerate(plan.asm):
        s = work / f"{name}.part{i}.s"
        s.write_text(text)
        objs.append(s.with_suffix(".o"))
        _run([gcc, "-c", "-o", str(objs[-1]), str(s)], str(s))
    linked = work / f"{name}.linked.o"
    _run(["ld", "-r", "-o", str(linked), *map(str, objs)], str(linked))
    try:
        data = convert(linked.read_bytes())
    except KlpConvertError as e:
        raise KlpemuError(f"{linked}: klp-convert failed:\n" + "\n".join(e.messages), 8) from None
    output.write_bytes(data)
    return output
