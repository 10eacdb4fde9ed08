"""Lab 8: kprobes and livepatch on one function. The student predicts which combinations the
kernel refuses, then tries each; the checker reads the conflict record of their machine."""

from __future__ import annotations

from ..system import System
from .base import ANSWER, Lab, parse_answers, rng
from .result import CheckResult
from .scenario import Scenario
from .workspace import Workspace

F = "cmdline_proc_show"  # what livepatch-sample replaces
LP = "/sys/kernel/livepatch/livepatch_sample"
PATCH = "insmod livepatch-sample"
# name: (what the sheet says, the commands, the user there first, the one arriving, the policy)
COMBINATIONS: dict[str, tuple[str, list[str], str, str, str]] = {
    "post-then-patch": (
        f"a kprobe with a post handler on {F}, then the livepatch sample",
        [f"kprobe --post {F}", PATCH],
        "kprobe-post",
        "livepatch",
        "mainline",
    ),
    "plain-then-patch": (
        f"a kprobe without a post handler on {F}, then the livepatch sample",
        [f"kprobe {F}", PATCH],
        "kprobe",
        "livepatch",
        "mainline",
    ),
    "patch-then-post": (
        f"the livepatch sample, then a kprobe with a post handler on {F}",
        [PATCH, f"kprobe --post {F}"],
        "livepatch",
        "kprobe-post",
        "mainline",
    ),
    "patch-then-plain": (
        f"the livepatch sample, then a kprobe without a post handler on {F}",
        [PATCH, f"kprobe {F}"],
        "livepatch",
        "kprobe",
        "mainline",
    ),
    "kretprobe-then-patch": (
        f"a kretprobe on {F}, then the livepatch sample",
        [f"kprobe -r {F}", PATCH],
        "kretprobe",
        "livepatch",
        "mainline",
    ),
    "legacy-plain-then-patch": (
        f"with `kprobe --policy legacy` (kprobes before Linux 5.4), a kprobe without a post handler on {F}, "
        "then the livepatch sample",
        ["kprobe --policy legacy", f"kprobe {F}", PATCH],
        "kprobe",
        "livepatch",
        "legacy",
    ),
}
CLEANUP = [f"kprobe -d {F}", f"echo 0 > {LP}/enabled", f"wait --gone {LP}", "rmmod livepatch_sample"]
CLEANUP += ["kprobe --policy mainline"]

TEMPLATE = """\
# Lab 8 answers: for each numbered combination of the sheet, `N: allowed` or `N: refused`.
"""


def kind(user: str) -> str:
    """What the conflict record's description of a user is: livepatch, kretprobe, kprobe(-post)."""
    if user.startswith("livepatch"):
        return "livepatch"
    if user.startswith("kretprobe"):
        return "kretprobe"
    return "kprobe-post" if "post_handler" in user else "kprobe"


def outcomes(system: System) -> dict[tuple[str, str, str], str]:
    """(present, arriving, policy) -> allowed/refused, from the conflict record (the last meeting wins)."""
    out = {}
    for c in system.kernel.conflicts.records:
        if c.function == F:
            out[(kind(c.present), kind(c.arriving), c.policy)] = "refused" if c.errno else "allowed"
    return out


class KprobesLab(Lab):
    id = "kprobes"
    number = 8
    title = "Kprobes and livepatch: which combinations the kernel refuses"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        return Scenario(
            lab=self.id,
            seed=seed,
            machine_seed=r.randrange(1000),
            variant={"combinations": r.sample(list(COMBINATIONS), 4)},
        )

    def sheet(self, sc: Scenario) -> str:
        items = "\n".join(f"{i}. {COMBINATIONS[n][0]}" for i, n in enumerate(sc.variant["combinations"], 1))
        return f"""\
# Lab 8: kprobes and livepatch

A livepatch and a kprobe may both want the fentry site of `{F}`. A livepatch's ftrace ops
changes `regs->ip` (IPMODIFY); a kprobe at a fentry site is an ftrace ops too, and one with a
post handler must be IPMODIFY as well. ftrace allows one IPMODIFY ops per function. Kprobes
before Linux 5.4 made every fentry-site probe IPMODIFY.

Your combinations, each on a clean function (nothing else on `{F}`):

{items}

1. Before touching the machine, predict for each whether the second one is refused, and write
   your predictions into `{ANSWER}`: `1: refused` or `1: allowed`, one a line.
2. Then try each in `klpemu lab shell`: the shell's `kprobe` places a probe
   (`kprobe [-r] [--post] FUNC`, `kprobe -d FUNC` removes it, `kprobe --policy legacy|mainline`),
   `insmod livepatch-sample` loads the patch. Between two combinations undo the first: `kprobe -d`,
   `echo 0 > {LP}/enabled`, `wait --gone {LP}`, `rmmod livepatch_sample`,
   `kprobe --policy mainline`.
3. `conflicts` prints the record of every meeting: the rule and the errno. If a prediction was
   wrong, correct it and read the rule.

`klpemu lab check` checks that each combination was tried in your machine and that your answers
match the conflict record.

Think about: why can a kretprobe live with a livepatch when a post handler cannot?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {ANSWER: TEMPLATE}

    def hints(self, sc: Scenario) -> list[str]:
        return [
            "Count the IPMODIFY users of the site: a livepatch is one; which kprobes are?",
            "A kprobe without a post handler leaves regs->ip alone, and a kretprobe works on the return address.",
            "Try a combination, then `conflicts`: the errno says refused (-16, EBUSY) or allowed (0).",
            "If a second attempt of a combination is recorded, the checker reads the last one: clean up first.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        seen = outcomes(system)
        answers = parse_answers(ws.file(ANSWER))
        for i, name in enumerate(ws.scenario.variant["combinations"], 1):
            text, _, present, arriving, policy = COMBINATIONS[name]
            truth = seen.get((present, arriving, policy))
            said = answers.get(str(i), "").lower()
            if truth is None:
                res.fail(
                    f"combination {i} ({text}) was never tried: the conflict record has no such meeting",
                    "do it in `klpemu lab shell` on a clean function, then look at `conflicts`",
                )
            elif said not in ("allowed", "refused"):
                res.fail(f"{ANSWER} has no `{i}: allowed` or `{i}: refused`", self.hints(ws.scenario)[2])
            elif said != truth:
                res.fail(
                    f"combination {i}: you say {said}, the kernel's record says {truth}",
                    "read that meeting's rule in `conflicts`: " + self.hints(ws.scenario)[0],
                )
            else:
                res.ok(f"combination {i}: {truth}")
        return res

    def solution_commands(self, sc: Scenario) -> list[str]:
        cmds: list[str] = []
        for name in sc.variant["combinations"]:
            cmds += COMBINATIONS[name][1] + CLEANUP
        return cmds + ["conflicts"]

    def solution_files(self, sc: Scenario, system: System) -> dict[str, str]:
        seen = outcomes(system)
        lines = [
            f"{i}: {seen[COMBINATIONS[n][2], COMBINATIONS[n][3], COMBINATIONS[n][4]]}"
            for i, n in enumerate(sc.variant["combinations"], 1)
        ]
        return {ANSWER: "\n".join(lines) + "\n"}
