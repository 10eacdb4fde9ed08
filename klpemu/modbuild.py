"""`klpemu build-module`: compile a module's C file as the shipped modules are compiled.

The flags are the kernel's code-generation flags (-mcmodel=kernel -pg -mfentry -mrecord-mcount
and the rest), which `make -C firmware` installs as images/module.cflags; images/include is a
symlink to firmware/include, which the wheel build turns into real files, so an installed
klpemu builds modules without its sources. The result is a relocatable object (`gcc -c`), loaded by `insmod`.
A module that annotates symbols with KLP_MODULE_RELOC then goes through klp-convert (klpconvert.py),
as the shipped ones do in firmware/Makefile. Then modpost's check: each symbol the module leaves
undefined must be exported by vmlinux or a shipped module (GPL-only ones only to a GPL-compatible
module), else a warning says so, as modpost does with KBUILD_MODPOST_WARN=1; the module is kept, and
insmod refuses it with the kernel's message.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from errno import ENOENT, ENOEXEC
from importlib import resources
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from .errors import KlpemuError
from .kernel.module.checks import license_is_gpl_compatible, parse_modinfo
from .kernel.module.ksymtab import ksymtab_kind, vmlinux_exports
from .klpconvert import KlpConvertError, convert

NO_GCC = "klpemu build-module needs gcc (not found on PATH); the shipped modules need no compiler"


def images_dir() -> Path:
    return Path(str(resources.files("klpemu") / "images"))


def module_cflags() -> list[str]:
    path = images_dir() / "module.cflags"
    try:
        return path.read_text().split()
    except OSError as e:
        raise KlpemuError(f"{path}: {e.strerror} (run `make -C firmware`)", e.errno or 2) from None


def module_command(source: Path, output: Path, gcc: str = "gcc") -> list[str]:
    """The gcc command line: the kernel's flags, the shipped headers, -DMODULE, and KBUILD_MODNAME
    from the module's file name, as kbuild names a module (`my-mod.ko` is my_mod)."""
    name = output.name.removesuffix(".ko").split(".")[0].replace("-", "_")
    return [
        gcc,
        *module_cflags(),
        f"-I{images_dir() / 'include'}",
        "-DMODULE",
        f'-DKBUILD_MODNAME="{name}"',
        "-c",
        "-o",
        str(output),
        str(source),
    ]


def build_module(source: str | Path, output: str | Path | None = None) -> Path:
    """Compile source into a .ko (next to it unless output is given), then klp-convert it; gcc's and
    klp-convert's messages go to stderr, and a module that fails either is not left behind."""
    src = Path(source)
    if not src.is_file():
        raise KlpemuError(f"{src}: No such file or directory", ENOENT)
    gcc = shutil.which("gcc")
    if gcc is None:
        raise KlpemuError(NO_GCC, ENOENT)
    out = Path(output) if output is not None else src.with_suffix(".ko")
    res = subprocess.run(module_command(src, out, gcc), check=False)
    if res.returncode != 0:
        raise KlpemuError(f"{src}: gcc failed (exit status {res.returncode})", ENOEXEC)
    try:
        out.write_bytes(convert(out.read_bytes()))
    except KlpConvertError as e:
        out.unlink()
        for message in e.messages:
            print(f"klp-convert: {message}", file=sys.stderr)
        raise KlpemuError(f"{src}: klp-convert failed", ENOEXEC) from None
    for warning in modpost_warnings(out):
        print(f"WARNING: modpost: {warning}", file=sys.stderr)
    return out


def available_exports() -> dict[str, bool]:
    """What a module may link against, as Module.symvers lists it: vmlinux's exports and the
    shipped modules', each with whether it is GPL-only."""
    from .machine.machine import shipped_image

    with open(shipped_image(), "rb") as f:
        exports = {name: sym.gpl_only for name, sym in vmlinux_exports(ELFFile(f)).items()}
    for ko in sorted((images_dir() / "modules").glob("*.ko")):
        with open(ko, "rb") as f:
            for sec in ELFFile(f).iter_sections():
                gpl_only = ksymtab_kind(sec.name)
                if gpl_only is not None and "+" in sec.name:
                    exports[sec.name.split("+", 1)[1]] = gpl_only
    return exports


def modpost_warnings(ko: Path) -> list[str]:
    """modpost's complaints about a module's undefined symbols, in symbol-table order."""
    with open(ko, "rb") as f:
        elf = ELFFile(f)
        modinfo = elf.get_section_by_name(".modinfo")
        info = parse_modinfo(modinfo.data() if modinfo is not None else b"")
        symtab = elf.get_section_by_name(".symtab")
        undefined = [
            s.name
            for s in (symtab.iter_symbols() if isinstance(symtab, SymbolTableSection) else ())
            if s.name and s["st_shndx"] == "SHN_UNDEF" and s["st_info"]["bind"] != "STB_WEAK"
        ]
    exports = available_exports()
    gpl_ok = license_is_gpl_compatible((info.get("license") or ["unspecified"])[0])
    warnings = []
    for name in dict.fromkeys(undefined):
        if name == "__this_module":
            continue
        if name not in exports:
            warnings.append(f'"{name}" [{ko}] undefined!')
        elif exports[name] and not gpl_ok:
            warnings.append(f"GPL-incompatible module {ko.name} uses GPL-only symbol '{name}'")
    return warnings
