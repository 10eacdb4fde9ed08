"""No guest constant or struct layout is copied by hand into the host: klpemu/abi.py is rendered
from the shipped image's DWARF, and no other module defines a name the firmware defines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import klpemu
from klpemu.machine import abi_gen

PACKAGE = Path(klpemu.__file__).resolve().parent
FIRMWARE_INCLUDE = PACKAGE.parent / "firmware" / "include"


def test_abi_module_is_what_the_image_dwarf_says(types):
    assert (PACKAGE / "abi.py").read_text() == abi_gen.render(types), (
        "klpemu/abi.py is stale: run `python -m klpemu.machine.abi_gen`"
    )


def _module_level_constants(path: Path) -> dict[str, ast.expr]:
    """NAME = value at the top of a module, and NAME, NAME2 = v1, v2."""
    out: dict[str, ast.expr] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                out[target.id] = node.value
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for t, v in zip(target.elts, node.value.elts, strict=False):
                    if isinstance(t, ast.Name):
                        out[t.id] = v
    return out


def _literal(node: ast.expr) -> object:
    """The value of a constant expression (`1 << 3`, a dict of them), or None if it names anything."""
    if any(isinstance(n, (ast.Name, ast.Call, ast.Attribute)) for n in ast.walk(node)):
        return None
    try:
        return eval(compile(ast.Expression(node), "<constant>", "eval"), {"__builtins__": {}})
    except Exception:
        return None


def _firmware_defines() -> set[str]:
    """Names the firmware's headers #define to a number."""
    names = set()
    for header in FIRMWARE_INCLUDE.rglob("*.h"):
        names |= set(re.findall(r"^#define\s+([A-Z][A-Z0-9_]*)\s+\(?-?(?:0x)?[0-9]", header.read_text(), re.M))
    return names


# Facts of the x86-64 architecture that the host implements as hardware, not the firmware's.
ARCHITECTURAL = {"PAGE_SIZE"}  # the MMU's page size (machine/memory.py builds the page tables)


def test_no_module_copies_a_guest_constant(types):
    families = [prefix for _, prefix, _ in abi_gen.FAMILIES]
    defines = _firmware_defines() - ARCHITECTURAL
    copied = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "abi.py":
            continue
        for name, value in _module_level_constants(path).items():
            literal = _literal(value)
            rel = path.relative_to(PACKAGE.parent)
            if isinstance(literal, int) and (name in types.enums or name in defines):
                copied.append(f"{rel}: {name} (in the firmware; take it from klpemu.abi)")
            if isinstance(literal, dict) and literal and all(isinstance(k, str) for k in literal):
                for prefix in families:
                    if all(prefix + key.upper() in types.enums for key in literal):
                        copied.append(f"{rel}: {name} (the {prefix}* enumerators; take them from klpemu.abi)")
    assert copied == []


def test_the_scan_would_see_a_copy(tmp_path, types):
    """The scan above is not vacuous: a copied flag table and a copied enumerator are found."""
    path = tmp_path / "copy.py"
    path.write_text('FL = {"SAVE_REGS": 1 << 2, "IPMODIFY": 1 << 12}\nTIF_PATCH_PENDING = 13\n')
    found = _module_level_constants(path)
    assert _literal(found["FL"]) == {"SAVE_REGS": 4, "IPMODIFY": 4096}
    assert all("FTRACE_OPS_FL_" + k in types.enums for k in _literal(found["FL"]))  # type: ignore[union-attr]
    assert "TIF_PATCH_PENDING" in types.enums
