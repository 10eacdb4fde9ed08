"""Lab 3: what ftrace ops cost. Predict, then count the guest instructions of one traced call
with one ops, one SAVE_REGS ops, and R ops sharing the site through the list function with I
more filtered to other functions."""

from __future__ import annotations

from ..bench import HandlerBench
from ..system import System
from .base import ANSWER, Lab, parse_answers, parse_int, rng
from .result import CheckResult
from .scenario import Scenario
from .workspace import Workspace

KEYS = ("one_ops", "save_regs", "list", "per_irrelevant")
TEMPLATE = """\
# Lab 3 answers: one `key: value` per line.
# First your predictions (any numbers; they are not graded, the check shows how far off they were):
predict_one_ops:
predict_save_regs:
predict_list:
# Then what you measured, in guest instructions per call (as `klpemu bench` counts them):
one_ops:
save_regs:
list:
per_irrelevant:
list_function:
"""

_counts: dict[tuple[int, int], dict[str, int | str]] = {}


def true_counts(sc: Scenario) -> dict[str, int | str]:
    """The variant's counts, measured on the scenario's machine (kept for the process)."""
    r, i = sc.variant["relevant"], sc.variant["irrelevant"]
    if (r, i) not in _counts:
        m = sc.boot().machine
        hb = HandlerBench(m, r, i)
        out: dict[str, int | str] = {}
        for key, apply in (("one_ops", hb.own_trampoline), ("save_regs", hb.save_regs), ("list", hb.list_func)):
            with apply() as applied:
                out[key] = hb.count(applied).insns
                if key == "list":
                    out["list_function"] = applied.path.split("->")[1].split()[0]
        with hb.list_func(r, i + 1) as applied:
            out["per_irrelevant"] = hb.count(applied).insns - int(out["list"])
        _counts[r, i] = out
    return _counts[r, i]


class OpsCostLab(Lab):
    id = "ops-cost"
    number = 3
    title = "What ops cost: instructions per call, from one ops to the list function"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        variant = {"relevant": r.choice((2, 3)), "irrelevant": r.randrange(5)}
        return Scenario(lab=self.id, seed=seed, machine_seed=0, variant=variant)

    def sheet(self, sc: Scenario) -> str:
        r, i = sc.variant["relevant"], sc.variant["irrelevant"]
        return f"""\
# Lab 3: what ops cost

Your configuration: **{r} relevant ops, {i} irrelevant ops** (`--relevant {r} --irrelevant {i}`)

Every user of ftrace registers a `struct ftrace_ops`: a handler and a filter. What one call of
a traced function costs depends on how its fentry site reaches the handlers:

- one ops alone on a function gets a trampoline of its own, which calls its handler directly;
- an ops with `FTRACE_OPS_FL_SAVE_REGS` gets a copy of `ftrace_regs_caller`, which saves and
  restores a full `pt_regs`;
- when several ops share a function, the site calls the shared `ftrace_caller`, whose call
  goes to the list function: it tests every registered ops' filter, the {i} irrelevant ones
  (filtered to other functions) too, and calls those that match.

1. Predict the guest instructions of one call (of `bench_leaf` from a loop, the loop's own
   instructions included) for: one ops; one SAVE_REGS ops; {r} ops on the function with {i} more
   elsewhere. Write the predictions into `{ANSWER}` first.
2. Measure: `klpemu bench --relevant {r} --irrelevant {i} --calls 200 --repeat 1` counts each
   configuration exactly (rows (c), (e) and (f), column insns/call).
3. Find out what one more irrelevant ops adds per call (run it again with one more), and name
   the list function.
4. See it happen: in `klpemu lab shell`, trace a function with the function tracer and put a
   kprobe on it too (`kprobe FUNC`): two ops on one site. `trace-call FUNC --seq-file` labels
   each instruction with its part; compare with the tracer alone.

Fill in `{ANSWER}`: `one_ops`, `save_regs`, `list`, `per_irrelevant`, `list_function`.
`klpemu lab check` measures your variant itself and compares.

Think about: why does a Linux distribution kernel try hard to keep one ops per function?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {ANSWER: TEMPLATE}

    def hints(self, sc: Scenario) -> list[str]:
        r, i = sc.variant["relevant"], sc.variant["irrelevant"]
        return [
            f"`klpemu bench --relevant {r} --irrelevant {i} --calls 200 --repeat 1`: read the insns/call column.",
            "Row (c) is one ops, (e) one SAVE_REGS ops, (f) the list function with your numbers of ops.",
            f"per_irrelevant: run again with `--irrelevant {i + 1}` and subtract the two (f) rows.",
            "The paths block above the table names what (f)'s site calls: `ftrace_caller -> NAME`.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        truth = true_counts(ws.scenario)
        answers = parse_answers(ws.file(ANSWER))
        what = {
            "one_ops": "one ops on its own trampoline",
            "save_regs": "one SAVE_REGS ops",
            "list": "the list function with your ops",
            "per_irrelevant": "each more irrelevant ops",
        }
        for key in KEYS:
            got = parse_int(answers.get(key, ""))
            want = int(truth[key])
            if got is None:
                res.fail(f"{ANSWER} has no `{key}: N`", self.hints(ws.scenario)[0 if key != "per_irrelevant" else 2])
            elif got != want:
                off = "more" if got > want else "fewer"
                res.fail(
                    f"{key}: {got} is not what {what[key]} costs ({off} than measured)",
                    "count guest instructions per call, the calling loop's included: " + self.hints(ws.scenario)[1],
                )
            else:
                res.ok(f"{key}: {want}")
            guess = parse_int(answers.get(f"predict_{key}", ""))
            if guess is not None:
                res.ok(f"your prediction for {key} was {guess}: off by {guess - want:+d}")
        name = answers.get("list_function", "")
        if name != truth["list_function"]:
            res.fail(f"list_function: {name or '(missing)'} is not the list function", self.hints(ws.scenario)[3])
        return res

    def solution_commands(self, sc: Scenario) -> list[str]:
        t = "/sys/kernel/tracing"
        return [
            f"echo cmdline_proc_show > {t}/set_ftrace_filter",
            f"echo function > {t}/current_tracer",
            "kprobe cmdline_proc_show",
            "trace-call cmdline_proc_show --seq-file",
        ]

    def solution_files(self, sc: Scenario, system: System) -> dict[str, str]:
        t = true_counts(sc)
        return {ANSWER: "".join(f"{k}: {t[k]}\n" for k in (*KEYS, "list_function"))}
