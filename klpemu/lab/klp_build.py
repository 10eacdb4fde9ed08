"""Lab 9: from a source patch to a livepatch module with `klpemu klp-build`: the student fixes one
function of a /proc file in the firmware's C sources, writes the fix as a patch, builds it, loads
it and leaves it enabled.

The checker reads what they produced: the .ko (loaded into a fresh machine: the function it
replaces, what the file then shows, the old text back once disabled) and their session's log.
"""

from __future__ import annotations

import difflib
import io
import shutil
import tempfile
from pathlib import Path

from ..errors import KlpemuError
from ..klp_build import klp_build
from ..klp_build.refuse import Refusal
from ..klp_build.trees import NO_GCC, find_firmware
from ..system import System
from .base import Lab, rng
from .inspect import log, read_file
from .result import CheckResult
from .scenario import Scenario
from .workspace import LabError, Workspace, run_commands

PATCH = "fix.patch"
KO = "fix.ko"
# klp-build names the module after the patch file: livepatch_ and its stem.
MODULE = "livepatch_fix"
LP = f"/sys/kernel/livepatch/{MODULE}"
# Each candidate: its /proc file, its source under firmware/, and the one line a fix replaces.
TARGETS = {
    "version_proc_show": ("/proc/version", "fs/proc/version.c", "\tseq_puts(m, linux_banner);\n"),
    "cmdline_proc_show": ("/proc/cmdline", "fs/proc/cmdline.c", "\tseq_puts(m, boot_command_line);\n"),
}
WORDS = ("alder", "birch", "comet", "dune", "egret", "flint", "grove", "heron", "iris", "jasper")
# How the sheet finds the packaged sources without naming a path of this machine.
SOURCES_CMD = "python -c 'from klpemu.klp_build.trees import find_firmware; print(find_firmware(None))'"


def expected_line(sc: Scenario) -> str:
    return f"fixed: {sc.variant['word']} {sc.seed}"


def reference_patch(sc: Scenario) -> str:
    """The variant's fix in git diff form: the one line replaced by a print of the seeded line."""
    t = sc.variant["target"]
    _, rel, old_line = TARGETS[t]
    old = (find_firmware(None) / rel).read_text().splitlines(keepends=True)
    # cmdline_proc_show prints its newline with seq_putc; version's banner carries its own.
    text = expected_line(sc) + ("\\n" if t == "version_proc_show" else "")
    new = [f'\tseq_puts(m, "{text}");\n' if line == old_line else line for line in old]
    if new == old:
        raise LabError(f"firmware/{rel} no longer has the line lab 9 replaces")
    name = f"firmware/{rel}"
    body = difflib.unified_diff(old, new, fromfile=f"a/{name}", tofile=f"b/{name}")
    return f"diff --git a/{name} b/{name}\n" + "".join(body)


class KlpBuildLab(Lab):
    id = "klp-build"
    number = 9
    title = "klp-build: from a source .patch to a livepatch module"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        variant = {"target": r.choice(sorted(TARGETS)), "word": r.choice(WORDS)}
        return Scenario(lab=self.id, seed=seed, machine_seed=r.randrange(1000), variant=variant)

    def sheet(self, sc: Scenario) -> str:
        t = sc.variant["target"]
        f, rel, _ = TARGETS[t]
        gcc = "" if shutil.which("gcc") else f"\n**{NO_GCC}: install gcc and make first.**\n"
        return f"""\
# Lab 9: from a source patch to a livepatch module

Your function: **{t}** in `firmware/{rel}` (it shows `{f}`).
Your line: **{expected_line(sc)}**

In lab 4 you wrote the livepatch module by hand. Distributions do not: they write the fix as an
ordinary source patch and let `klp-build` make the module. `klpemu klp-build FIX.patch` builds
the firmware twice (the original tree, cached, and the tree with your patch applied), compares
every function of every object that changed, and turns the changed functions' machine code into
a module: one `klp_func` each, its init calling `klp_enable_patch`. It reports each step:

    [ 0.80s] original tree: ... objects (cached) with -ffunction-sections -fdata-sections
    [ 1.10s] applied fix.patch: firmware/{rel}
    [ 1.90s] patched tree: 1 of ... objects differ
      changed function: vmlinux: {t} (firmware/{rel})
    [ 2.50s] built fix.ko: 1 klp_func

It refuses, naming the file and the symbol, what a livepatch cannot do: a structure whose size or
layout changes (every existing instance keeps the old one), a change to initialised data (its
value was used at boot), an `__init` function (already run and freed), a `notrace` function (no
fentry site to redirect), and the code of ftrace, livepatch, kprobes or the entry path (the
patching itself runs it). Then it writes no module.

Building needs gcc and make (the first build also builds the original tree; later builds reuse
it from your cache directory).
{gcc}
## The patch

A patch in git diff form names its files `a/firmware/...` (before) and `b/firmware/...` (after),
relative to a klpemu checkout. The sources are in a checkout (`--source CHECKOUT` builds
against it) or, packaged with klpemu, in the directory `{SOURCES_CMD}` prints. Without a checkout:

    src=$({SOURCES_CMD})
    mkdir -p a/firmware/{Path(rel).parent} b/firmware/{Path(rel).parent}
    cp "$src/{rel}" a/firmware/{rel}
    cp "$src/{rel}" b/firmware/{rel}
    # edit b/firmware/{rel}
    diff -u a/firmware/{rel} b/firmware/{rel} > {PATCH}

In a checkout: edit the file, `git diff > {PATCH}`, then `git checkout firmware/` (klp-build
applies the patch to unpatched sources).

## The steps

1. Change one line of `{t}` so that `{f}` shows exactly one line: `{expected_line(sc)}`.
   Write the change as `{PATCH}`.
2. Build it: `klpemu klp-build {PATCH} -o {KO}` (the module is `{MODULE}`, after the patch's name).
3. In `klpemu lab shell`: `cat {f}`, `insmod ./{KO}`, `wait {LP}/transition 0`, `cat {f}` again.
   Leave the patch enabled.

`klpemu lab check` loads your `{KO}` into a fresh machine (the function it replaces, what `{f}`
shows, and the old text back once it is disabled), and reads your machine: the patch enabled, its
transition complete.

Think about: klp-build compiled the whole file again; why does the module hold only one function?
"""

    def hints(self, sc: Scenario) -> list[str]:
        t = sc.variant["target"]
        f, rel, old_line = TARGETS[t]
        return [
            f"The line that prints {f} is `{old_line.strip()}` in firmware/{rel}: replace that line only.",
            f'seq_puts(m, "...") prints a string; {f} must end up showing `{expected_line(sc)}` and its newline.',
            f"Both names in the patch start with a/firmware/ and b/firmware/; `klpemu klp-build {PATCH} -o {KO}` "
            "says which hunk does not apply.",
            f"insmod starts the transition; `wait {LP}/transition 0` runs the machine until it completes.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        sc = ws.scenario
        ko = ws.path / KO
        name = MODULE
        if not ko.is_file():
            self._no_module(res, ws)
        else:
            name = self._check_module(res, sc, ko) or MODULE
        self._check_session(res, sc, system, name)
        return res

    def _no_module(self, res: CheckResult, ws: Workspace) -> None:
        """No .ko: say whether the patch is missing, refused, or only not built."""
        build = f"klpemu klp-build {PATCH} -o {KO}" + ("" if shutil.which("gcc") else f" ({NO_GCC})")
        if not (ws.path / PATCH).is_file():
            res.fail(f"there is no {PATCH} and no {KO}: write your fix as a patch and build it", build)
            return
        if shutil.which("gcc") is None or shutil.which("make") is None:
            res.fail(f"there is no {KO}, and this machine cannot build it: {NO_GCC}", "install gcc and make")
            return
        try:
            with tempfile.TemporaryDirectory() as tmp:
                klp_build(ws.path / PATCH, name=MODULE, output=Path(tmp) / KO, out=io.StringIO())
        except Refusal as e:
            res.fail(
                f"klp-build refuses your {PATCH}: {e}",
                "a livepatch replaces whole functions: change one line of the function, nothing else",
            )
            return
        except KlpemuError as e:
            res.fail(f"klp-build cannot use your {PATCH}: {e}", self.hints(ws.scenario)[2])
            return
        res.fail(f"your {PATCH} builds, but there is no {KO}", build)

    def _check_module(self, res: CheckResult, sc: Scenario, ko: Path) -> str | None:
        """Load the .ko into a fresh machine: its klp_funcs, the new text, the old one once
        disabled. The patch's name, when it registers one."""
        t = sc.variant["target"]
        f = TARGETS[t][0]
        fresh = sc.boot()
        original = read_file(fresh, f)
        status, _, err = run_commands(fresh, f"insmod {ko}")
        if status != 0:
            res.fail(f"your {KO} does not load in a fresh machine: {err.strip()}", self.hints(sc)[2])
            return None
        lp = fresh.kernel.livepatch
        if not lp.patches:
            res.fail(f"{KO} loads but registers no livepatch", f"build it with klpemu klp-build {PATCH} -o {KO}")
            return None
        p = lp.patches[-1]
        name = lp.name(p)
        names = [(lp.object_name(o), lp.func_name(fn)) for o in lp.objects(p) for fn in lp.funcs(o)]
        if names != [("vmlinux", t)]:
            listed = ", ".join(f"{o}:{n}" for o, n in names)
            res.fail(f"your patch replaces {listed}, the lab asks for vmlinux:{t} alone", self.hints(sc)[0])
            return name
        res.ok(f"{KO} replaces {t}")
        d = f"/sys/kernel/livepatch/{name}"
        run_commands(fresh, f"wait {d}/transition 0")
        shown = read_file(fresh, f) or ""
        if shown != expected_line(sc) + "\n":
            res.fail(f"with your patch, {f} shows {shown.strip()!r}, not {expected_line(sc)!r}", self.hints(sc)[1])
            return name
        res.ok(f"{f} shows the new line")
        run_commands(fresh, f"echo 0 > {d}/enabled; wait --gone {d}")
        if read_file(fresh, f) != original:
            res.fail(f"once your patch is disabled, {f} does not show its old text", self.hints(sc)[0])
        else:
            res.ok("disabled, the old text is back")
        return name

    def _check_session(self, res: CheckResult, sc: Scenario, system: System, name: str) -> None:
        """The student's machine: the patch loaded, its transition complete, still enabled."""
        lines = log(system)
        if not any(f"enabling patch '{name}'" in line for line in lines):
            res.fail(f"your shell sessions never loaded {KO}", f"insmod ./{KO} in klpemu lab shell")
            return
        if not any(f"'{name}': patching complete" in line for line in lines):
            res.fail("the patching transition never completed in your machine", self.hints(sc)[3])
            return
        d = f"/sys/kernel/livepatch/{name}"
        if read_file(system, f"{d}/enabled") != "1\n":
            res.fail("your patch is no longer enabled in your machine", f"leave it enabled: insmod ./{KO} again")
            return
        res.ok("loaded, patched, left enabled")

    def prepare(self, ws: Workspace) -> None:
        (ws.path / PATCH).write_text(reference_patch(ws.scenario))
        try:
            klp_build(ws.path / PATCH, output=ws.path / KO, out=io.StringIO())
        except KlpemuError as e:
            raise LabError(str(e)) from e

    def solution_commands(self, sc: Scenario) -> list[str]:
        f = TARGETS[sc.variant["target"]][0]
        return [f"cat {f}", f"insmod ./{KO}", f"wait {LP}/transition 0", f"cat {f}"]

    def solution(self, sc: Scenario) -> str:
        return (
            f"# {self.id} (seed {sc.seed}): reference solution\n\n{PATCH}:\n"
            + "".join(f"  {line}\n" for line in reference_patch(sc).splitlines())
            + f"\nklpemu klp-build {PATCH} -o {KO}\n\nShell commands (klpemu lab shell):\n"
            + "".join(f"  {c}\n" for c in self.solution_commands(sc))
        )
