"""`modinfo`: the tags of a module's .modinfo section, read from its .ko file and printed the way
kmod's modinfo prints them. Also where a module named on the command line is found: a file on
the host, or one of the modules shipped with klpemu (by file name or module name)."""

from __future__ import annotations

from dataclasses import dataclass
from errno import ENOENT, ENOEXEC
from pathlib import Path

from .errors import KlpemuError
from .kernel.module import is_host_file, shipped_modules_dir
from .machine.kstr import kstr

TAG_WIDTH = 16  # "license:" and its padding, as kmod lays the columns out


def module_name(filename: str) -> str:
    """The module name a file name gives: no directory, no .ko, dashes as underscores."""
    return Path(filename).name.removesuffix(".ko").replace("-", "_")


@dataclass(frozen=True)
class ModuleFile:
    """A .ko on the host. `shown` is how tools name it: the path as given, or for a shipped
    module its file name (the shipped directory plays the part of the install directory)."""

    path: Path
    shown: str
    shipped: bool

    def modinfo(self) -> list[tuple[str, str]]:
        return read_modinfo(self.path)

    @property
    def name(self) -> str:
        """The name the kernel will give it: .modinfo's `name`, else the file's name."""
        tags = dict(self.modinfo())
        return tags.get("name") or module_name(self.path.name)

    @property
    def is_livepatch(self) -> bool:
        return dict(self.modinfo()).get("livepatch") == "Y"


def shipped_module_files() -> list[ModuleFile]:
    """Every shipped .ko, in file-name order (as a shell glob lists them)."""
    return [ModuleFile(p, p.name, True) for p in sorted(shipped_modules_dir().glob("*.ko"))]


def find_module_file(arg: str) -> ModuleFile | None:
    """A host file if arg names one; else the shipped module whose file name (`livepatch-sample`,
    `livepatch-sample.ko`) or module name (`livepatch_sample`) it is."""
    path = Path(arg)
    if is_host_file(path):
        return ModuleFile(path, arg, False)
    if "/" in arg:
        return None
    wanted = module_name(arg)
    return next((f for f in shipped_module_files() if module_name(f.path.name) == wanted), None)


def read_modinfo(path: Path) -> list[tuple[str, str]]:
    """The (tag, value) pairs of the file's .modinfo section, in the section's order."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            section = elf.get_section_by_name(".modinfo")
            raw = section.data() if section is not None else b""
    except OSError as e:
        raise KlpemuError(f"{path}: {e.strerror}", e.errno or ENOENT) from None
    except (ELFError, ValueError) as e:
        raise KlpemuError(f"{path}: not an ELF module: {e}", ENOEXEC) from None
    pairs = []
    for entry in raw.split(b"\0"):
        if b"=" in entry:
            tag, value = kstr(entry).split("=", 1)
            pairs.append((tag, value))
    return pairs


def format_modinfo(filename: str, pairs: list[tuple[str, str]]) -> str:
    """`filename:` first, then each tag in order; parameters last, one `parm:` line each with
    its description and type, newest first as kmod collects them."""
    lines = [f"{'filename:':<{TAG_WIDTH}}{filename}"]
    params: dict[str, dict[str, str]] = {}
    for tag, value in pairs:
        if tag in ("parm", "parmtype"):
            name, _, rest = value.partition(":")
            params.setdefault(name, {})[tag] = rest
            continue
        lines.append(f"{tag + ':':<{TAG_WIDTH}}{value}")
    for name in reversed(list(params)):
        p = params[name]
        desc = p.get("parm")
        if desc is None:
            text = f"{name}:{p.get('parmtype', '')}"
        elif "parmtype" in p:
            text = f"{name}:{desc} ({p['parmtype']})"
        else:
            text = f"{name}:{desc}"
        lines.append(f"{'parm:':<{TAG_WIDTH}}{text}")
    return "\n".join(lines) + "\n"
