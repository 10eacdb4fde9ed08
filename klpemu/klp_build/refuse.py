"""What a livepatch cannot do, found in the two builds, each with its reason.

A livepatch replaces whole functions through their fentry sites and nothing else: it cannot
change a structure's layout (every existing instance keeps the old one), initialised data (its
value was used at boot and lives on), an __init function (already run and freed), a function
without an fentry site (notrace: nothing to redirect), or the code the patching itself runs
(ftrace, livepatch, kprobes, the entry code), which would be redirected while in use.
"""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile

from ..errors import KlpemuError
from .dwarf_files import cu_file_names
from .objdiff import ObjectDiff
from .trees import dependencies

# Source files of the patch mechanism, relative to firmware/.
MECHANISM = (
    ("kernel/trace/", "ftrace"),
    ("kernel/livepatch/", "livepatch"),
    ("kernel/kprobes.c", "kprobes"),
    ("arch/x86/kernel/kprobes/", "kprobes"),
    ("arch/x86/kernel/ftrace_64.S", "ftrace"),
    ("kernel/entry/", "the entry code"),
    ("arch/x86/entry/", "the entry code"),
)
INIT_SECTIONS = (".init.text", ".exit.text")


class Refusal(KlpemuError):
    def __init__(self, reasons: list[str]):
        super().__init__("cannot build a livepatch:\n" + "\n".join(f"  {r}" for r in reasons), 22)
        self.reasons = reasons


def source_of(obj: str) -> str:
    """firmware/fs/proc/version.c for fs/proc/version.o (modules/hello.ko: modules/hello.c)."""
    return "firmware/" + str(Path(obj).with_suffix(".c"))


def refusals(diffs: list[ObjectDiff], why: dict[tuple[str, str], str]) -> list[str]:
    """why: (object, function) -> how it changed without its own lines changing (inline.py)."""
    out: list[str] = []
    for d in diffs:
        src = source_of(d.obj)
        for c in d.changed:
            old = d.old.symbols[c.name]
            where = f"{src}: {c.name}{why.get((d.obj, c.name), '')}"
            mechanism = next((what for prefix, what in MECHANISM if d.obj.startswith(prefix)), None)
            if mechanism is not None:
                out.append(f"{where}: changes {mechanism}, which the patch mechanism itself runs")
            elif old.section in INIT_SECTIONS:
                out.append(f"{where}: changes an __init function, which has already run")
            elif not old.has_fentry:
                out.append(f"{where}: has no fentry site (notrace or not traceable), so cannot be redirected")
            elif "." in c.name:
                out.append(f"{where}: changes a compiler-made clone, whose callers are not known here")
        for c in d.changed_data:
            old, new = d.old.symbols[c.name], d.new.symbols[c.name]
            if old.size != new.size:
                out.append(f"{src}: {c.name}: changes the size of data ({old.size} -> {new.size} bytes)")
            else:
                out.append(f"{src}: {c.name}: changes initialised data, whose old value is in use")
    return out


def struct_layouts(path: Path) -> dict[str, tuple[str, int, tuple]]:
    """Each named structure or union of an object's DWARF: (declaring file, size, members)."""
    out: dict[str, tuple[str, int, tuple]] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            return out
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            names = cu_file_names(dwarf, cu)
            for die in cu.iter_DIEs():
                if die.tag not in ("DW_TAG_structure_type", "DW_TAG_union_type"):
                    continue
                name = die.attributes.get("DW_AT_name")
                size = die.attributes.get("DW_AT_byte_size")
                if name is None or size is None:
                    continue
                members = tuple(
                    (
                        (m.attributes["DW_AT_name"].value.decode() if "DW_AT_name" in m.attributes else ""),
                        m.attributes["DW_AT_data_member_location"].value
                        if "DW_AT_data_member_location" in m.attributes
                        else 0,
                    )
                    for m in die.iter_children()
                    if m.tag == "DW_TAG_member"
                )
                fno = die.attributes.get("DW_AT_decl_file")
                decl = names[fno.value] if fno is not None and 0 <= fno.value < len(names) else ""
                tag = "struct" if die.tag == "DW_TAG_structure_type" else "union"
                out[f"{tag} {name.value.decode()}"] = (decl, size.value, members)
    return out


def layout_changes(old_build: Path, new_build: Path, objects: list[str], touched: set[str]) -> list[str]:
    """Structures whose size or members' offsets differ between the builds of these objects.
    A structure is declared in a file the patch touched, so one object that reads each touched
    file is enough (its types are the same in every object that reads it)."""
    seen: dict[str, str] = {}
    covered: set[str] = set()
    for rel in objects:
        old_path = old_build / rel
        reads = touched & set(dependencies(new_build, rel)) or touched
        if not old_path.exists() or reads <= covered:
            continue
        covered |= reads
        old, new = struct_layouts(old_path), struct_layouts(new_build / rel)
        for name, (decl, size, members) in new.items():
            if name in seen or name not in old or old[name][1:] == (size, members):
                continue
            where = decl if decl.startswith("firmware/") else source_of(rel)
            if old[name][1] != size:
                why = f"changes its size ({old[name][1]} -> {size} bytes)"
            else:
                why = "changes its layout (member offsets)"
            seen[name] = f"{where}: {name}: {why}; a livepatch cannot change data structures in use"
    return list(seen.values())


def check(
    diffs: list[ObjectDiff], old_build: Path, new_build: Path, touched: set[str], why: dict[tuple[str, str], str]
) -> None:
    """Raise Refusal with every reason found. touched: the patched files, relative to firmware/."""
    # A changed structure also changes every variable of its type; the structure is the reason.
    reasons = layout_changes(old_build, new_build, [d.obj for d in diffs], touched) or refusals(diffs, why)
    if reasons:
        raise Refusal(reasons)
