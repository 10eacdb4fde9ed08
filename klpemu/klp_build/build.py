"""klp-build's steps in order, each reported: apply the patch, build both trees, compare every
object, refuse what a livepatch cannot do, generate and build the module."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import KlpemuError
from ..machine.machine import shipped_image
from . import inline, refuse
from .module import Plan, Positions, build_module, plan_module, target_object
from .objdiff import ObjectDiff, diff_objects
from .patch import FilePatch, apply_patch, parse_patch
from .trees import build_original, build_patched, copy_sources, find_firmware, tools


@dataclass
class Result:
    output: Path
    diffs: list[ObjectDiff]
    plan: Plan


def default_name(patch: Path) -> str:
    stem = patch.name.removesuffix(".patch").removesuffix(".diff")
    return "livepatch_" + "".join(c if c.isalnum() else "_" for c in stem)


def klp_build(
    patch: str | Path,
    *,
    name: str | None = None,
    output: str | Path | None = None,
    replace: bool = False,
    show_first_changed: bool = False,
    source: str | Path | None = None,
    out: TextIO = sys.stdout,
    keep: str | Path | None = None,
) -> Result:
    """Build the livepatch module for patch; keep: a new directory that keeps the patched tree, its
    objects and the module's generated sources (else a temporary one, removed)."""
    patch = Path(patch)
    try:
        text = patch.read_text()
    except OSError as e:
        raise KlpemuError(f"{patch}: {e.strerror}", e.errno or 2) from None
    files = parse_patch(text, str(patch))
    name = name or default_name(patch)
    if not name.replace("_", "").isalnum() or len(name) >= 56:
        raise KlpemuError(f"{name}: a module name is letters, digits and _ (under 56 characters)", 22)
    output = Path(output) if output is not None else Path(f"{name}.ko")
    fw = find_firmware(source)
    gcc, make = tools()
    for fp in files:
        if not fp.path.startswith("firmware/"):
            raise KlpemuError(f"{patch}: {fp.path}: not under firmware/, so not part of the kernel", 22)
    if keep is not None:
        work = Path(keep).resolve()  # make runs elsewhere
        try:
            work.mkdir(parents=True)
        except OSError as e:
            raise KlpemuError(f"{work}: {e.strerror} (--keep wants a new directory)", e.errno or 17) from None
    else:
        work = Path(tempfile.mkdtemp(prefix="klp-build-"))
    try:
        return _steps(
            patch, files, name, output, replace, show_first_changed, fw, gcc, make, work, out, keep is not None
        )
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _steps(
    patch, files: list[FilePatch], name, output, replace, show_first, fw, gcc, make, work, out, keep: bool
) -> Result:
    t0 = time.perf_counter()

    def step(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:5.2f}s] {msg}", file=out, flush=True)

    orig, cached = build_original(fw, gcc, make)
    step(
        f"original tree: {len(orig.objects)} objects ({'cached' if cached else 'built'})"
        " with -ffunction-sections -fdata-sections"
    )
    patched_root = work / "patched"
    copy_sources(fw, patched_root / "firmware")
    apply_patch(files, patched_root, str(patch))
    touched = [fp.path.removeprefix("firmware/") for fp in files]
    step(f"applied {patch.name}: {', '.join(fp.path for fp in files)}")
    tree = build_patched(orig, patched_root / "firmware", work, touched, gcc, make)
    by_source = {fp.path.removeprefix("firmware/"): fp for fp in files}
    diffs = []
    for rel in tree.objects:
        src = str(Path(rel).with_suffix(".c"))
        d = diff_objects(rel, orig.build / rel, tree.build / rel, by_source.get(src))
        if d is not None and (d.changed or d.added or d.changed_data or d.added_data):
            diffs.append(d)
    rebuilt = sum(1 for rel in tree.objects if (tree.build / rel).read_bytes() != (orig.build / rel).read_bytes())
    step(f"patched tree: {rebuilt} of {len(tree.objects)} objects differ")
    reasons = inline.explain(diffs, by_source, tree.build)
    refuse.check(diffs, orig.build, tree.build, set(touched), reasons)
    if not any(d.changed for d in diffs):
        raise KlpemuError(f"{patch}: no function changed, nothing to patch", 22)
    for d in diffs:
        target = target_object(d.obj)
        for c in d.changed:
            why = reasons.get((d.obj, c.name), "")
            print(f"  changed function: {target}: {c.name} ({refuse.source_of(d.obj)}){why}", file=out)
            if show_first:
                print(f"    first change at {c.name}+{c.first:#x}:", file=out)
                print(f"      - {c.old}", file=out)
                print(f"      + {c.new}", file=out)
        for n in d.added:
            print(f"  new function: {target}: {n} ({refuse.source_of(d.obj)})", file=out)
        for n in d.added_data:
            print(f"  new variable: {target}: {n} ({refuse.source_of(d.obj)}), the module's own", file=out)
    plan = plan_module(diffs, Positions(orig.build, orig.objects, shipped_image()))
    for f in plan.funcs:
        if f.sympos:
            print(f"  {f.name}: a static name defined more than once in {f.target}: old_sympos {f.sympos}", file=out)
    for k in plan.klp_relocs:
        print(f"  klp relocation: .klp.sym.{k.target}.{k.name},{k.sympos}", file=out)
    build_module(plan, name, replace, work / "module", output, gcc)
    step(
        f"built {output}: {len(plan.funcs)} klp_func{'s' if len(plan.funcs) != 1 else ''}"
        + (", replace" if replace else "")
    )
    if keep:
        sources = sorted(p.name for p in (work / "module").iterdir() if p.suffix in (".c", ".s"))
        print(f"  kept in {work}: patched/ (the tree and its objects), module/ ({', '.join(sources)})", file=out)
    return Result(output, diffs, plan)
