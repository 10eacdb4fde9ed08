"""drgn on the live machine with the loaded modules' types and symbols, kept in step with insmod
and rmmod: what the debugger's print and ptype, and the drgn console, read through."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..machine.drgn_program import drgn_program

if TYPE_CHECKING:
    import drgn

    from ..kernel.module.internal import Module
    from ..system import System


class KernelProgram:
    def __init__(self, system: System):
        self.system = system
        self._prog: drgn.Program | None = None
        self._modules: dict[str, int] = {}  # name -> struct module address, as the Program has them
        self._files: Path | None = None

    @property
    def prog(self) -> drgn.Program:
        """The Program, with every loaded module added. drgn cannot forget a module, so a module
        gone since the last call means a new Program (about 30 ms)."""
        loaded = {mod.name: int(mod.struct) for mod in self.system.kernel.modules.list() if mod.elf}
        if self._prog is None or any(loaded.get(name) != addr for name, addr in self._modules.items()):
            self._prog = drgn_program(self.system.machine)
            self._modules = {}
        for mod in self.system.kernel.modules.list():
            if mod.elf and mod.name not in self._modules:
                self._add(mod)
        return self._prog

    def _add(self, mod: Module) -> None:
        """A relocatable module placed where the loader put its sections, read from its file (drgn
        reads debug info from files only)."""
        assert self._prog is not None
        module = self._prog.relocatable_module(mod.name, int(mod.struct), create=True)
        for section, addr in mod.sections.items():
            module.section_addresses[section] = int(addr)
        module.address_ranges = [(base, base + size) for base, size in mod.mem.values() if size]
        module.try_file(str(self._file_of(mod)), force=True)
        self._modules[mod.name] = int(mod.struct)

    def _file_of(self, mod: Module) -> Path:
        if self._files is None:
            self._files = Path(tempfile.mkdtemp(prefix="klpemu-modules-"))
            atexit.register(shutil.rmtree, self._files, True)
        # numbered, not named: a module name is not always a file name
        path = self._files / f"{sum(1 for _ in self._files.iterdir())}.ko"
        path.write_bytes(mod.elf)
        return path
