"""gdb's symbols for the loaded modules, as lx-symbols gives them: one `add-symbol-file` line per
module, its .text address first and every other loaded section's address after `-s`, since a
.ko is relocatable and each of its sections lands somewhere of its own."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..kernel.module import shipped_modules_dir

if TYPE_CHECKING:
    from ..kernel.core import Kernel


def find_ko(name: str, dirs: Iterable[Path]) -> Path | None:
    """The .ko of a module under dirs (searched recursively), '-' and '_' being the same."""
    want = name.replace("-", "_")
    for d in dirs:
        for path in sorted(Path(d).rglob("*.ko")):
            if path.stem.replace("-", "_") == want:
                return path
    return None


def add_symbol_file_lines(kernel: Kernel, dirs: Iterable[Path] | None = None) -> list[str]:
    """A gdb command per loaded module whose .ko is found (the shipped modules by default);
    a comment line for a module whose file is not."""
    search = [shipped_modules_dir()] if dirs is None else [Path(d) for d in dirs]
    lines = []
    for mod in kernel.modules.list():
        path = find_ko(mod.name, search)
        if path is None or ".text" not in mod.sections:
            lines.append(f"# {mod.name}: no .ko with its .text found")
            continue
        parts = [f"add-symbol-file {path} 0x{mod.sections['.text']:x}"]
        parts += [f"-s {name} 0x{addr:x}" for name, addr in sorted(mod.sections.items()) if name != ".text"]
        lines.append(" ".join(parts))
    return lines
