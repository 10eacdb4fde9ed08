"""Lab 6: callbacks and shadow variables. Sessions of the module klab_shadow_target are never
throttled: their struct has no field to count with. The student's livepatch keeps the missing
budget in a shadow variable per session, made with a constructor, logged by a destructor, and
freed by a post_unpatch callback when the patch goes."""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import KlpemuError
from ..machine.machine import Machine
from ..modbuild import NO_GCC
from ..system import System
from .base import Lab, rng
from .first_patch import build
from .inspect import log, patch, read_file
from .result import CheckResult
from .scenario import Scenario
from .workspace import LabError, Workspace, run_commands

SOURCE = "livepatch-shadow-lab.c"
KO = "livepatch-shadow-lab.ko"
MODULE = "livepatch_shadow_lab"
LP = f"/sys/kernel/livepatch/{MODULE}"
TARGET = "klab_shadow_target"
FUNC = "klab_session_show"
PROC = "/proc/klab_sessions"

# firmware/kernel/livepatch/shadow.c: DEFINE_HASHTABLE(klp_shadow_hash, 12) of struct klp_shadow
# { struct hlist_node node; void *obj; unsigned long id; char data[]; }.
SHADOW_BUCKETS = 1 << 12
SHADOW_OBJ, SHADOW_ID, SHADOW_DATA = 16, 24, 32
MAX_SHADOWS = 10_000
# struct klab_session { int id; char name[16]; } in klab_shadow_target.c.
SESSION_NAME = 4

SKELETON = """\
// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 6: give each session of {target} the budget its struct lacks, as a
 * shadow variable. Fill in the TODOs, then: klpemu build-module {source}
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#define KLAB_SHADOW_ID	0	/* TODO: the shadow variable id the sheet gives */
#define KLAB_BUDGET	{budget}	/* servings per session before it is throttled */

/* As {target} declares it: a patch sees the layout the module was built with. */
struct klab_session {{
	int id;
	char name[16];
}};

/* TODO: a constructor that starts a new budget at *ctor_data */
static int budget_ctor(void *obj, void *shadow_data, void *ctor_data)
{{
	return 0;
}}

/* TODO: a destructor that logs "NAME: N left" (pr_info) as the budget goes */
static void budget_dtor(void *obj, void *shadow_data)
{{
}}

static void lab_session_show(struct seq_file *m, struct klab_session *s)
{{
	/* TODO: get (or allocate) the session's budget; spend one, or throttle */
	seq_printf(m, "%s: served\\n", s->name);
}}

/* TODO: free every budget once the patch is gone (klp_shadow_free_all) */
static void lab_post_unpatch(struct klp_object *obj)
{{
}}

static struct klp_func funcs[] = {{
	{{
		.old_name = "TODO",	/* TODO: the function to replace */
		.new_func = lab_session_show,
	}},
	{{ }}
}};

static struct klp_object objs[] = {{
	{{
		.name = "TODO",		/* TODO: the module that holds it */
		.funcs = funcs,
		/* TODO: the callbacks (.callbacks = {{ ... }}) */
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

# The reference answer: what prepare() puts in place of the skeleton's TODOs.
SOLUTION = {
    "#define KLAB_SHADOW_ID\t0": "#define KLAB_SHADOW_ID\t{id:#x}",
    "{\n\treturn 0;\n}": "{\n\t*(int *)shadow_data = *(int *)ctor_data;\n\treturn 0;\n}",
    "void *shadow_data)\n{\n}": (
        "void *shadow_data)\n{\n\tstruct klab_session *s = obj;\n\n"
        '\tpr_info("%s: %d left\\n", s->name, *(int *)shadow_data);\n}'
    ),
    '\tseq_printf(m, "%s: served\\n", s->name);': (
        "\tint budget = KLAB_BUDGET;\n"
        "\tint *left = klp_shadow_get_or_alloc(s, KLAB_SHADOW_ID, sizeof(*left), GFP_KERNEL,\n"
        "\t\t\t\t\t   budget_ctor, &budget);\n\n"
        "\tif (left && *left > 0) {\n"
        "\t\t(*left)--;\n"
        '\t\tseq_printf(m, "%s: served (%d left)\\n", s->name, *left);\n'
        "\t} else {\n"
        '\t\tseq_printf(m, "%s: throttled\\n", s->name);\n'
        "\t}"
    ),
    "*obj)\n{\n}": "*obj)\n{\n\tklp_shadow_free_all(KLAB_SHADOW_ID, budget_dtor);\n}",
    '.old_name = "TODO",': f'.old_name = "{FUNC}",',
    '.name = "TODO",': f'.name = "{TARGET}",',
    "\t\t/* TODO: the callbacks (.callbacks = { ... }) */\n": (
        "\t\t.callbacks = { .post_unpatch = lab_post_unpatch },\n"
    ),
}


def session_names(sc: Scenario) -> list[str]:
    return [f"session{i}" for i in range(sc.variant["sessions"])]


def expected_read(sc: Scenario, n: int) -> str:
    """What the n-th read (from 1) of PROC shows once the fix is in."""
    budget = sc.variant["budget"]
    return "".join(
        f"{s}: served ({budget - n} left)\n" if n <= budget else f"{s}: throttled\n" for s in session_names(sc)
    )


@dataclass(frozen=True)
class Shadow:
    obj: int
    id: int
    data: int  # the first int of its data: the budget, in this lab


def shadows(m: Machine) -> list[Shadow]:
    """Every shadow variable in the guest, read from the kernel's hash table, not asked of it."""
    base = m.image.addr("klp_shadow_hash")
    heads = struct.unpack(f"<{SHADOW_BUCKETS}Q", m.mem.read(base, 8 * SHADOW_BUCKETS))
    out: list[Shadow] = []
    for node in heads:
        # Bounded: a student's module may have scribbled on a node, and a loop must not hang check.
        while node and len(out) < MAX_SHADOWS:
            try:
                obj, sid = struct.unpack("<QQ", m.mem.read(node + SHADOW_OBJ, 16))
                (data,) = struct.unpack("<i", m.mem.read(node + SHADOW_DATA, 4))
                out.append(Shadow(obj, sid, data))
                node = m.mem.read_u64(node)
            except KlpemuError:  # an unmapped link: the rest of that bucket is lost, not the check
                break
    return out


def owner(m: Machine, obj: int) -> str:
    """The session a shadow variable is attached to, by the name in its struct."""
    try:
        return m.mem.read_cstr(obj + SESSION_NAME, 16)
    except KlpemuError:  # not mapped: no session at all, an address the student made up
        return f"0x{obj:x}"


class ShadowLab(Lab):
    id = "shadow"
    number = 6
    title = "Callbacks and shadow variables: the state a struct lacks, added by a livepatch"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        sessions = r.choice((2, 3, 4))
        variant = {"sessions": sessions, "budget": r.choice((2, 3, 4, 5)), "id": r.randrange(0x100, 0x1000)}
        return Scenario(
            lab=self.id,
            seed=seed,
            machine_seed=r.randrange(1000),
            modules=[f"{TARGET} sessions={sessions}"],
            settle_ms=10,
            variant=variant,
        )

    def sheet(self, sc: Scenario) -> str:
        v = sc.variant
        gcc = "" if shutil.which("gcc") else "\n**gcc is not installed on this machine: install it first.**\n"
        return f"""\
# Lab 6: callbacks and shadow variables

Your shadow variable id: **{v["id"]:#x}**. Your budget: **{v["budget"]}** servings per session.

This machine runs `{TARGET} sessions={v["sessions"]}`: {v["sessions"]} sessions, made at
load, each a `struct klab_session {{ int id; char name[16]; }}`. Every read of
`{PROC}` serves each session once through `{FUNC}`, which prints
`sessionN: served`. The bug: a session should be served {v["budget"]} times and then
throttled, but its struct has nowhere to count.

A livepatch replaces code, not data: the sessions exist already, and their struct cannot grow.
A *shadow variable* is data the livepatch attaches to an existing object, found again by the
object's address and an id (`klp_shadow_get`, `klp_shadow_alloc`, `klp_shadow_get_or_alloc`,
with an optional constructor that fills in a new one; `klp_shadow_free` and
`klp_shadow_free_all`, with an optional destructor called on each one freed). Callbacks run
at the patch's milestones (`pre_patch`, `post_patch`, `pre_unpatch`, `post_unpatch`, in the
`struct klp_object` of the module patched).

1. Complete `{SOURCE}`. The new `{FUNC}` gets, or makes, the session's
   budget: a shadow variable holding one `int`, with id `{v["id"]:#x}`, started at {v["budget"]} by a
   constructor.
   Each serving spends one and prints `sessionN: served (K left)` (K after spending);
   with nothing left it prints `sessionN: throttled`.
2. A destructor logs each budget as it is freed: `pr_info("%s: %d left\\n", s->name, ...)`.
   A `post_unpatch` callback frees every budget of your id with the destructor, so that the
   shadow variables do not outlive the patch.
3. Build it: `klpemu build-module {SOURCE}`, which writes `{KO}`
   (gcc is needed).
{gcc}4. In `klpemu lab shell`: `insmod ./{KO}`, then
   `wait {LP}/transition 0`,
   then read `{PROC}` until every session is throttled.
5. Disable the patch: `echo 0 > {LP}/enabled`, then
   `wait --gone {LP}`.
   The kernel log (`dmesg`) shows each budget freed. Then `rmmod {MODULE}`.

`klpemu lab check` loads your `{KO}` into a fresh machine,
reads `{PROC}`, looks for the shadow variables in the kernel's own table, disables the patch and looks again;
and it reads the kernel log of your shell sessions.

Think about: why free the budgets in `post_unpatch` and not in `pre_unpatch`? And what would
a session created *after* the patch was loaded need?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {SOURCE: SKELETON.format(target=TARGET, source=SOURCE, budget=sc.variant["budget"])}

    def hints(self, sc: Scenario) -> list[str]:
        v = sc.variant
        return [
            f'The function is "{FUNC}", in the module "{TARGET}": that is the klp_object\'s .name.',
            f"klp_shadow_get_or_alloc(s, {v['id']:#x}, sizeof(int), GFP_KERNEL, budget_ctor, &budget) "
            "returns the session's int, calling the constructor only the first time.",
            "The constructor copies *(int *)ctor_data into *(int *)shadow_data and returns 0.",
            ".callbacks = { .post_unpatch = lab_post_unpatch } in the klp_object; it calls "
            f"klp_shadow_free_all({v['id']:#x}, budget_dtor).",
            f"`cat {PROC}` {v['budget'] + 1} times throttles every session; `dmesg` shows the destructor's lines.",
        ]

    # --- the checker ---------------------------------------------------------------------------

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        sc = ws.scenario
        ko = ws.path / KO
        if not ko.is_file():
            hint = f"klpemu build-module {SOURCE}" + ("" if shutil.which("gcc") else f" ({NO_GCC})")
            res.fail(f"there is no {KO}: build your module", hint)
        else:
            self._check_module(res, sc, ko)
        self._check_session(res, sc, system)
        return res

    def _check_module(self, res: CheckResult, sc: Scenario, ko: Path) -> None:
        """Load the student's .ko into a fresh machine: what it patches, what PROC shows, which
        shadow variables it leaves while enabled and after it is disabled."""
        hints = self.hints(sc)
        sid = sc.variant["id"]
        fresh = sc.boot()
        m = fresh.machine
        before = set(shadows(m))
        status, _, err = run_commands(fresh, f"insmod {ko}")
        if status != 0:
            res.fail(f"your {KO} does not load in a fresh machine: {err.strip()}", hints[0])
            return
        p = patch(fresh, MODULE)
        if p is None:
            res.fail(f"{KO} loads but registers no livepatch", "its init must return klp_enable_patch(&patch)")
            return
        lp = fresh.kernel.livepatch
        names = [(lp.object_name(o), lp.func_name(fn)) for o in lp.objects(p) for fn in lp.funcs(o)]
        if names != [(TARGET, FUNC)]:
            listed = ", ".join(f"{o}:{n}" for o, n in names)
            res.fail(f"your patch replaces {listed}, the lab asks for {TARGET}:{FUNC} alone", hints[0])
            return
        run_commands(fresh, f"wait {LP}/transition 0")
        for n in range(1, sc.variant["budget"] + 2):
            shown = read_file(fresh, PROC) or ""
            if shown != expected_read(sc, n):
                res.fail(
                    f"with your patch, read {n} of {PROC} shows {shown.strip()!r}, "
                    f"not {expected_read(sc, n).strip()!r}",
                    hints[1] if n == 1 else "each read spends one serving of every session, down to 0",
                )
                return
        res.ok(f"{PROC} counts each session down from {sc.variant['budget']}, then throttles it")
        made = [s for s in shadows(m) if s not in before]
        mine = {owner(m, s.obj): s for s in made if s.id == sid}
        if not mine:
            others = sorted({f"{s.id:#x}" for s in made})
            what = (
                f"no shadow variable has id {sid:#x}; yours have id {', '.join(others)}"
                if others
                else "there is no shadow variable at all: the count lives somewhere else (a static array?)"
            )
            res.fail(what, f"keep each session's budget in a shadow variable with id {sid:#x}: {hints[1]}")
            return
        if sorted(mine) != session_names(sc) or any(s.data != 0 for s in mine.values()):
            found = ", ".join(f"{k}={s.data}" for k, s in sorted(mine.items()))
            res.fail(
                f"the shadow variables with id {sid:#x} are {found}: expected one per session, each spent to 0",
                "attach the budget to the session (the obj argument is the struct klab_session pointer)",
            )
            return
        res.ok(f"one shadow variable {sid:#x} per session, each spent")
        run_commands(fresh, f"echo 0 > {LP}/enabled; wait --gone {LP}")
        left = sorted(owner(m, s.obj) for s in shadows(m) if s.id == sid)
        if left:
            res.fail(
                f"after the patch is disabled, {len(left)} shadow variable(s) {sid:#x} are still there "
                f"({', '.join(left)}): leaked",
                "a post_unpatch callback must free them all: " + hints[3],
            )
            return
        res.ok("disabling the patch frees every shadow variable")
        lines = log(fresh)
        missing = [s for s in session_names(sc) if not _logged(lines, f"{s}: 0 left")]
        if missing:
            res.fail(
                f"no destructor line for {', '.join(missing)} in the kernel log when the patch went",
                'pass a destructor to klp_shadow_free_all that does pr_info("%s: %d left\\n", ...)',
            )
        else:
            res.ok("the destructor logged each budget freed")

    def _check_session(self, res: CheckResult, sc: Scenario, system: System) -> None:
        """The student's own machine: the patch loaded, every session throttled, then disabled
        (the destructor's lines show each budget spent), and the module removed."""
        lines = log(system)
        steps = [
            (f"enabling patch '{MODULE}'", f"your shell sessions never loaded {KO}", f"insmod ./{KO}"),
            (
                f"'{MODULE}': patching complete",
                "the patching transition never completed in your machine",
                f"wait {LP}/transition 0",
            ),
        ]
        for needle, what, hint in steps:
            if not any(needle in line for line in lines):
                res.fail(what, hint)
                return
        if not any(f"'{MODULE}': unpatching complete" in line for line in lines):
            res.fail("the patch was never disabled to the end", f"echo 0 > {LP}/enabled, then wait --gone {LP}")
            return
        unspent = [s for s in session_names(sc) if not _logged(lines, f"{s}: 0 left")]
        if unspent:
            res.fail(
                f"in your machine, {', '.join(unspent)} went without spending its budget (no '0 left' line)",
                f"read {PROC} until every session is throttled before disabling the patch",
            )
            return
        if system.kernel.modules.find(MODULE) is not None:
            res.fail(f"{MODULE} is still loaded", f"rmmod {MODULE} once its livepatch directory is gone")
        else:
            res.ok("loaded, every session throttled, unpatched, budgets freed, removed")

    # --- the reference solution ----------------------------------------------------------------

    def prepare(self, ws: Workspace) -> None:
        text = (ws.path / SOURCE).read_text()
        for old, new in SOLUTION.items():
            if old not in text:
                raise LabError(f"{SOURCE} is not the skeleton any more: cannot find {old!r}")
            text = text.replace(old, new.replace("{id:#x}", f"{ws.scenario.variant['id']:#x}"), 1)
        (ws.path / SOURCE).write_text(text)
        build(ws.path / SOURCE)

    def solution_commands(self, sc: Scenario) -> list[str]:
        reads = [f"cat {PROC}"] * (sc.variant["budget"] + 1)
        return [
            f"insmod ./{KO}",
            f"wait {LP}/transition 0",
            *reads,
            f"echo 0 > {LP}/enabled",
            f"wait --gone {LP}",
            "dmesg",
            f"rmmod {MODULE}",
        ]

    def solution(self, sc: Scenario) -> str:
        text = SKELETON.format(target=TARGET, source=SOURCE, budget=sc.variant["budget"])
        for old, new in SOLUTION.items():
            text = text.replace(old, new.replace("{id:#x}", f"{sc.variant['id']:#x}"), 1)
        return (
            f"# {self.id} (seed {sc.seed}): reference solution\n\n{SOURCE}:\n"
            + "".join(f"  {line}\n" for line in text.splitlines())
            + f"\nklpemu build-module {SOURCE}\n\nShell commands (klpemu lab shell):\n"
            + "".join(f"  {c}\n" for c in self.solution_commands(sc))
        )


def _logged(lines: list[str], text: str) -> bool:
    """A destructor's line, whatever prefix the student's pr_fmt gives it."""
    return any(line.rstrip().endswith(text) for line in lines)
