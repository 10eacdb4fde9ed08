"""Building the original and the patched tree, as klp-build does: the kernel's own flags plus
-ffunction-sections -fdata-sections, so that every function and every variable has a section of
its own and two objects can be compared symbol by symbol.

The original tree's objects are kept in the user's cache directory, keyed by a hash of every
source file, the flags and gcc's version; the patched tree starts as a copy of them, so make
rebuilds only what the patch touches (every object, if it touches a header).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import KlpemuError
from ..machine.type_cache import cache_dir

KLP_CFLAGS = ["-ffunction-sections", "-fdata-sections"]
# The dependency files gcc writes beside each object: which headers a patched header rebuilds.
DEP_FLAGS = ["-MD"]
NO_GCC = "klpemu klp-build needs gcc and make (not found on PATH)"
# Kernel objects and modules; user/ is user space, which a livepatch does not patch.
KERNEL_DIRS = ("arch", "kernel", "init", "fs", "lib", "mm", "drivers")
SOURCE_SUFFIXES = (".c", ".S", ".h", ".lds")
CACHE_FORMAT = 2


def shipped_source() -> Path:
    """The checkout the firmware sources come from: the package's copy of firmware/."""
    return Path(str(resources.files("klpemu") / "klp_build")).resolve()


def find_firmware(source: str | Path | None) -> Path:
    """firmware/ of the checkout `source` (or `source` itself if it is a firmware directory)."""
    root = shipped_source() if source is None else Path(source)
    for cand in (root / "firmware", root):
        if (cand / "Makefile").is_file() and (cand / "include" / "linux" / "livepatch.h").is_file():
            return cand.resolve()
    raise KlpemuError(f"{root}: no firmware/ sources here (firmware/Makefile not found)", 2)


def source_files(fw: Path) -> list[str]:
    """The tree's build inputs, relative to firmware/, sorted: what both builds copy and hash."""
    out = ["Makefile"]
    for top in (*KERNEL_DIRS, "include", "modules", "user"):
        for p in sorted((fw / top).rglob("*")):
            if p.is_file() and p.suffix in SOURCE_SUFFIXES:
                out.append(str(p.relative_to(fw)))
    return sorted(out)


@dataclass
class Tree:
    """A built tree: its firmware/ sources and its build directory."""

    firmware: Path
    build: Path
    objects: list[str]  # relative to the build directory, in link order; modules as modules/X.ko


def _targets(fw: Path) -> list[str]:
    """vmlinux's objects in the link order of firmware/Makefile, then the modules a patch may fix
    (not the livepatch modules themselves, which are not patched by livepatches)."""
    asm = sorted(str(p.relative_to(fw).with_suffix(".o")) for p in (fw / "arch").rglob("*.S"))
    c = sorted(
        str(p.relative_to(fw).with_suffix(".o"))
        for top in KERNEL_DIRS
        for p in (fw / top).rglob("*.c")
        if p.name != "asm-offsets.c"
    )
    mods = [
        f"modules/{p.stem}.ko"
        for p in sorted((fw / "modules").glob("*.c"))
        if "KLP_MODULE_RELOC" not in (text := p.read_text()) and 'MODULE_INFO(livepatch, "Y")' not in text
    ]
    return [*asm, *c, *mods]


def gcc_version(gcc: str) -> str:
    return subprocess.run([gcc, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def _make(fw: Path, build: Path, targets: list[str], gcc: str, make: str) -> None:
    cmd = [
        make,
        "-s",
        "-C",
        str(fw),
        f"-j{os.cpu_count() or 1}",
        f"O={build}",
        f"CC={gcc} {' '.join(KLP_CFLAGS + DEP_FLAGS)}",
        *(str(build / t) for t in targets),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise KlpemuError(f"{fw}: the build failed:\n{res.stderr.strip()}", 8)


def tools() -> tuple[str, str]:
    gcc, make = shutil.which("gcc"), shutil.which("make")
    if gcc is None or make is None:
        raise KlpemuError(NO_GCC, 2)
    return gcc, make


def copy_sources(fw: Path, dest: Path) -> None:
    """The tree's build inputs into dest (a new firmware/)."""
    for rel in source_files(fw):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fw / rel, dest / rel)


def build_original(fw: Path, gcc: str, make: str) -> tuple[Tree, bool]:
    """The original tree, its objects in the cache (read, never written, once made); returns it and
    whether the cache had it."""
    files = source_files(fw)
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0" + (fw / rel).read_bytes() + b"\0")
    h.update(" ".join(KLP_CFLAGS).encode() + gcc_version(gcc).encode() + str(CACHE_FORMAT).encode())
    cached = cache_dir() / f"klp-build-{h.hexdigest()[:32]}"
    tree = Tree(fw, cached, _targets(fw))
    hit = (cached / "done").is_file()
    if not hit:
        tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        _make(fw, tmp, tree.objects, gcc, make)
        (tmp / "done").write_text("")
        try:
            tmp.rename(cached)
        except OSError:  # another build finished first: its objects are the same
            shutil.rmtree(tmp, ignore_errors=True)
    return tree, hit


def build_patched(orig: Tree, patched_fw: Path, work: Path, touched: list[str], gcc: str, make: str) -> Tree:
    """The patched tree under work/patched: orig's objects, then make for what `touched` (paths
    relative to firmware/) changed. The Makefile makes every object depend on every header; the
    dependency files say which sources really include a touched header, and only those are
    made newer than their objects."""
    tree = Tree(patched_fw, work / "patched" / "build", _targets(patched_fw))
    shutil.copytree(orig.build, tree.build)
    # Objects older than the patched sources, so make rebuilds exactly those.
    now = time.time()
    for p in tree.build.rglob("*"):
        if p.is_file():
            os.utime(p, (now - 10, now - 10))
    headers = {t for t in touched if t.endswith(".h")}
    stale = (set(touched) - headers) | _includers(tree, headers)
    for rel in source_files(patched_fw):
        t = now if rel in stale else now - 20
        os.utime(patched_fw / rel, (t, t))
    _make(patched_fw, tree.build, tree.objects, gcc, make)
    return tree


def dependencies(build: Path, obj: str) -> list[str]:
    """What gcc read to make obj, relative to firmware/ (its source first); [] if unknown."""
    try:
        deps = (build / obj).with_suffix(".d").read_text().replace("\\\n", " ").split()[1:]
    except OSError:
        return []
    return [d.split("/firmware/")[-1] for d in deps]


def _includers(tree: Tree, touched: set[str]) -> set[str]:
    """The sources whose objects read a touched header (kernel/asm-offsets.c too: its output,
    asm-offsets.h, is read by every object)."""
    out = set()
    for obj in [*tree.objects, "asm-offsets.s"]:
        deps = dependencies(tree.build, obj)
        if touched & set(deps[1:]):
            out.add("kernel/asm-offsets.c" if obj == "asm-offsets.s" else deps[0])
    return out
