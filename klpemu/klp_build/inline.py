"""Why a function changed when the patch did not touch its own lines: the inline helpers it
contains whose source the patch changed (from the patched object's DWARF)."""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile

from .dwarf_files import cu_file_names
from .objdiff import ObjectDiff
from .patch import FilePatch


def _functions(dwarf, cu) -> list[tuple[str, str, int]]:
    """Every function's (file, name, first line) in the CU."""
    names = cu_file_names(dwarf, cu)
    out = []
    for die in cu.iter_DIEs():
        a = die.attributes
        if die.tag == "DW_TAG_subprogram" and "DW_AT_name" in a and "DW_AT_decl_line" in a and "DW_AT_decl_file" in a:
            file = names[a["DW_AT_decl_file"].value] if a["DW_AT_decl_file"].value < len(names) else ""
            out.append((file, a["DW_AT_name"].value.decode(), a["DW_AT_decl_line"].value))
    return out


def explain(diffs: list[ObjectDiff], patches: dict[str, FilePatch], build: Path) -> dict[tuple[str, str], str]:
    """(object, function) -> ' (inlines NAME, changed)' for the functions changed through a helper."""
    out: dict[tuple[str, str], str] = {}
    for d in diffs:
        if not d.changed:
            continue
        with open(build / d.obj, "rb") as f:
            elf = ELFFile(f)
            if not elf.has_dwarf_info():
                continue
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                funcs = _functions(dwarf, cu)
                # A function's lines run from its declaration to the next function in its file.
                by_file: dict[str, list[tuple[int, str]]] = {}
                for file, name, line in funcs:
                    by_file.setdefault(file, []).append((line, name))
                touched: set[str] = set()
                for file, entries in by_file.items():
                    fp = next((p for rel, p in patches.items() if file.endswith(rel)), None)
                    if fp is None:
                        continue
                    entries.sort()
                    lines = fp.changed_new_lines()
                    for i, (line, name) in enumerate(entries):
                        end = entries[i + 1][0] if i + 1 < len(entries) else 1 << 30
                        if any(line <= x < end for x in lines):
                            touched.add(name)
                inlined: dict[str, set[str]] = {}
                for die in cu.iter_DIEs():
                    if die.tag != "DW_TAG_subprogram" or "DW_AT_name" not in die.attributes:
                        continue
                    owner = die.attributes["DW_AT_name"].value.decode()
                    for sub in die.iter_children():
                        _collect(sub, inlined.setdefault(owner, set()))
                for c in d.changed:
                    if c.name in touched:
                        continue
                    helpers = sorted(inlined.get(c.name, set()) & touched)
                    if helpers:
                        out[(d.obj, c.name)] = f", inlines changed {', '.join(helpers)}"
    return out


def _collect(die, names: set[str]) -> None:
    if die.tag == "DW_TAG_inlined_subroutine":
        origin = die.get_DIE_from_attribute("DW_AT_abstract_origin")
        if "DW_AT_name" in origin.attributes:
            names.add(origin.attributes["DW_AT_name"].value.decode())
    for child in die.iter_children():
        _collect(child, names)
