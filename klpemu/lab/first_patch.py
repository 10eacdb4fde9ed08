"""Lab 4: a first livepatch, written in C, built with `klpemu build-module`, loaded, seen to
complete its transition, disabled and unloaded."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import KlpemuError
from ..modbuild import NO_GCC, build_module
from ..system import System
from .base import Lab, rng
from .inspect import log, patch, read_file
from .result import CheckResult
from .scenario import Scenario
from .workspace import LabError, Workspace, run_commands

SOURCE = "livepatch-lab.c"
KO = "livepatch-lab.ko"
MODULE = "livepatch_lab"
LP = f"/sys/kernel/livepatch/{MODULE}"
# The /proc file each function shows.
TARGETS = {
    "cmdline_proc_show": "/proc/cmdline",
    "version_proc_show": "/proc/version",
    "uptime_proc_show": "/proc/uptime",
    "meminfo_proc_show": "/proc/meminfo",
}
WORDS = ("amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper")

SKELETON = """\
// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 4: a livepatch that replaces {target}.
 * Fill in the TODOs, then: klpemu build-module {source}
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

/* The new function: same prototype as the one it replaces. */
static int lab_{target}(struct seq_file *m, void *v)
{{
	/* TODO: print the line the sheet asks for, with seq_printf or seq_puts */
	return 0;
}}

static struct klp_func funcs[] = {{
	{{
		.old_name = "TODO",	/* TODO: the function to replace */
		.new_func = lab_{target},
	}},
	{{ }}
}};

static struct klp_object objs[] = {{
	{{
		/* no .name: the function is in vmlinux */
		.funcs = funcs,
	}},
	{{ }}
}};

static struct klp_patch patch = {{
	.mod = THIS_MODULE,
	.objs = objs,
}};

static int lab_init(void)
{{
	return klp_enable_patch(&patch);
}}

static void lab_exit(void)
{{
}}

module_init(lab_init);
module_exit(lab_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
"""


def expected_line(sc: Scenario) -> str:
    return f"patched: {sc.variant['word']} {sc.seed}"


class FirstPatchLab(Lab):
    id = "first-patch"
    number = 4
    title = "A first livepatch: write, build, load, transition, disable, unload"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        variant = {"target": r.choice(sorted(TARGETS)), "word": r.choice(WORDS)}
        return Scenario(lab=self.id, seed=seed, machine_seed=r.randrange(1000), variant=variant)

    def sheet(self, sc: Scenario) -> str:
        t, f = sc.variant["target"], TARGETS[sc.variant["target"]]
        gcc = "" if shutil.which("gcc") else "\n**gcc is not installed on this machine: install it first.**\n"
        return f"""\
# Lab 4: a first livepatch

Your function: **{t}** (it shows `{f}`). Your line: **{expected_line(sc)}**

A livepatch module names the functions it replaces (`struct klp_func`: `old_name`, `new_func`),
grouped by the object that holds them (`struct klp_object`: no name for vmlinux), in one
`struct klp_patch`; its init calls `klp_enable_patch`. Loading it starts a transition; when
every task has switched, calls of the old function go to the new one.

Building needs gcc: `klpemu build-module` compiles a module with the kernel's own flags and
headers (the shipped modules need no compiler, yours does).
{gcc}
1. Complete `{SOURCE}` so that `{f}` shows exactly one line: `{expected_line(sc)}`.
2. Build it: `klpemu build-module {SOURCE}` (it writes `{KO}`).
3. In `klpemu lab shell`: `insmod ./{KO}`, then watch `{LP}/transition` go back to 0
   (`wait {LP}/transition 0`), and `cat {f}`.
4. Disable the patch (`echo 0 > {LP}/enabled`), wait for its directory to go
   (`wait --gone {LP}`), see the old text again, and `rmmod {MODULE}`.

`klpemu lab check` loads your `{KO}` into a fresh machine to see what it does, and reads the
kernel log of your shell sessions: the patch enabled, its transition complete, the unpatching
complete, and the module removed.

Think about: why must the patch be disabled before its module can be removed?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {SOURCE: SKELETON.format(target=sc.variant["target"], source=SOURCE)}

    def hints(self, sc: Scenario) -> list[str]:
        return [
            f'.old_name is the name of the function you replace: "{sc.variant["target"]}".',
            f'seq_printf(m, "%s\\n", "{expected_line(sc)}"); prints the line (with its newline).',
            f"`klpemu build-module {SOURCE}` must print `CC [M]`; gcc's errors say which line is wrong.",
            f"insmod starts the transition; `sleep 2s` or `wait {LP}/transition 0` lets it finish.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        sc = ws.scenario
        t, f = sc.variant["target"], TARGETS[sc.variant["target"]]
        ko = ws.path / KO
        if not ko.is_file():
            what = f"there is no {KO}: build your module"
            hint = f"klpemu build-module {SOURCE}" + ("" if shutil.which("gcc") else f" ({NO_GCC})")
            res.fail(what, hint)
        else:
            self._check_module(res, sc, ko, t, f)
        self._check_session(res, system)
        return res

    def _check_module(self, res: CheckResult, sc: Scenario, ko: Path, t: str, f: str) -> None:
        """Load the student's .ko into a fresh machine: its klp_funcs, and what f shows."""
        fresh = sc.boot()
        status, _, err = run_commands(fresh, f"insmod {ko}")
        if status != 0:
            res.fail(f"your {KO} does not load in a fresh machine: {err.strip()}", self.hints(sc)[0])
            return
        p = patch(fresh, MODULE)
        if p is None:
            res.fail(f"{KO} loads but registers no livepatch", "its init must return klp_enable_patch(&patch)")
            return
        lp = fresh.kernel.livepatch
        names = [(lp.object_name(o), lp.func_name(fn)) for o in lp.objects(p) for fn in lp.funcs(o)]
        if names != [("vmlinux", t)]:
            listed = ", ".join(f"{o}:{n}" for o, n in names)
            res.fail(f"your patch replaces {listed}, the lab asks for vmlinux:{t} alone", self.hints(sc)[0])
            return
        res.ok(f"{KO} replaces {t}")
        run_commands(fresh, f"wait {LP}/transition 0")
        shown = read_file(fresh, f) or ""
        if shown != expected_line(sc) + "\n":
            res.fail(
                f"with your patch, {f} shows {shown.strip()!r}, not {expected_line(sc)!r}",
                self.hints(sc)[1],
            )
        else:
            res.ok(f"{f} shows the new line")

    def _check_session(self, res: CheckResult, system: System) -> None:
        """The student's own machine: its log from insmod to the unpatching, and no module left."""
        lines = log(system)
        steps = [
            (
                f"enabling patch '{MODULE}'",
                f"your shell sessions never loaded {KO}",
                f"insmod ./{KO} in klpemu lab shell",
            ),
            (
                f"'{MODULE}': patching complete",
                "the patching transition never completed in your machine",
                f"insmod starts it; `wait {LP}/transition 0` runs the machine until it completes",
            ),
            (
                f"'{MODULE}': unpatching complete",
                "the patch was never disabled to the end",
                f"echo 0 > {LP}/enabled, then wait --gone {LP}",
            ),
        ]
        for needle, what, hint in steps:
            if not any(needle in line for line in lines):
                res.fail(what, hint)
                return
        if any("forcing remaining tasks" in line for line in lines):
            res.fail("a transition was forced", "no need here: wait for the transition instead")
        if system.kernel.modules.find(MODULE) is not None:
            res.fail(f"{MODULE} is still loaded", f"rmmod {MODULE} once its livepatch directory is gone")
        else:
            res.ok("loaded, patched, unpatched, removed")

    def prepare(self, ws: Workspace) -> None:
        sc = ws.scenario
        text = (ws.path / SOURCE).read_text()
        text = text.replace('"TODO"', f'"{sc.variant["target"]}"')
        text = text.replace(
            "\t/* TODO: print the line the sheet asks for, with seq_printf or seq_puts */\n",
            f'\tseq_printf(m, "%s\\n", "{expected_line(sc)}");\n',
        )
        (ws.path / SOURCE).write_text(text)
        build(ws.path / SOURCE)

    def solution_commands(self, sc: Scenario) -> list[str]:
        return [
            f"insmod ./{KO}",
            f"wait {LP}/transition 0",
            f"cat {TARGETS[sc.variant['target']]}",
            f"echo 0 > {LP}/enabled",
            f"wait --gone {LP}",
            f"rmmod {MODULE}",
        ]

    def solution(self, sc: Scenario) -> str:
        return (
            f"# {self.id} (seed {sc.seed}): reference solution\n\nIn {SOURCE}: .old_name = "
            f'"{sc.variant["target"]}", and the new function does\n'
            f'    seq_printf(m, "%s\\n", "{expected_line(sc)}");\n\n'
            f"klpemu build-module {SOURCE}\n\nShell commands (klpemu lab shell):\n"
            + "".join(f"  {c}\n" for c in self.solution_commands(sc))
        )


def build(source: Path) -> Path:
    try:
        return build_module(source)
    except KlpemuError as e:
        raise LabError(str(e)) from e
