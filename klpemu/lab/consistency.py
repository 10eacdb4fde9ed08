"""Lab 5: the consistency model. A kernel thread sleeps inside the function a livepatch
replaces; the student finds it, lets it leave, and sees the transition complete without force."""

from __future__ import annotations

from ..system import System
from .base import ANSWER, Lab, parse_answers, rng
from .inspect import log, module_param, patch, read_file, tasks_named
from .result import CheckResult
from .scenario import Scenario
from .workspace import Workspace

STEPS = ("klab_read_config", "klab_parse_table", "klab_apply_entry", "klab_commit", "klab_flush_log")
PATCH = "klab_sleeper_patch"
LP = f"/sys/kernel/livepatch/{PATCH}"
RELEASE = "/sys/module/klab_sleeper/parameters/release"

TEMPLATE = """\
# Lab 5 answers: one `key: value` per line.
task:
function:
"""

FORCE_TEXT = """\
## About force

`echo 1 > {lp}/force` switches every remaining task at once, without looking at its stack. The
kernel cannot know whether a forced task will later return into code it no longer expects, so
a module whose code a forced task may still run keeps a reference for good: force an
unpatching transition (or a cumulative patch replacing older ones) and the module of the patch
going away can never be removed (`lsmod` shows it in use). Forcing does not complete the
transition by itself: that happens at the next attempt, and if you write 0 to `enabled` right
after forcing, while the transition is still open, you reverse it: the target becomes the
unpatched state again. Force is for when you know why a task is stuck and that switching it is
safe; here you can do better, and the checker refuses a forced transition (the kernel log
records every force).
"""


class ConsistencyLab(Lab):
    id = "consistency"
    number = 5
    title = "The consistency model: a task asleep in the patched function"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        funcs = r.sample(STEPS, r.choice((3, 4)))
        return Scenario(
            lab=self.id,
            seed=seed,
            machine_seed=r.randrange(1000),
            modules=[f"klab_sleeper func={','.join(funcs)}"],
            variant={"target": r.choice(funcs), "sleepers": funcs},
        )

    def sheet(self, sc: Scenario) -> str:
        t = sc.variant["target"]
        return f"""\
# Lab 5: the consistency model

Your function: **{t}**

Livepatch switches tasks to the new code one at a time. A task may switch only when no function
being patched is on its stack: otherwise it could return into the old code after switching.
The transition completes when every task has switched; until then `{LP}/transition` reads 1.

This machine runs the module `klab_sleeper`: its kernel threads `klabd/N` each sleep inside one
of its functions until released. `klab_sleeper_patch target=FUNC` replaces one of them.

1. In `klpemu lab shell`, load the patch for your function:
   `insmod klab_sleeper_patch target={t}`.
2. Run the machine for a while (`sleep 2s`): the transition does not complete. Find out why:
   `blocking` names the tasks in the way; `cat /proc/PID/stack` shows where they sleep;
   `ps` shows each task's patch state.
3. Let only that task go: write its pid to `{RELEASE}` (leave the other threads asleep),
   and wait until `{LP}/transition` reads 0 (`wait {LP}/transition 0`).
4. Write into `{ANSWER}` the task that held the transition up and the function it was in:

       task: PID
       function: NAME

Leave the patch enabled. `klpemu lab check` inspects the machine your session left.

{FORCE_TEXT.format(lp=LP)}
Think about: why is a task asleep in a *caller* of the patched function just as much in the way?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {ANSWER: TEMPLATE}

    def hints(self, sc: Scenario) -> list[str]:
        return [
            f"`insmod klab_sleeper_patch target={sc.variant['target']}`, then `sleep 2s` and `blocking`.",
            "`blocking` prints the pid, the name and the function each stuck task sleeps in.",
            f"`echo PID > {RELEASE}` wakes only that thread; it returns out of the function and exits.",
            f"Transitions retry about once a second: `wait {LP}/transition 0` runs the machine until done.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        t = ws.scenario.variant["target"]
        p = patch(system, PATCH)
        if p is None:
            loaded = system.kernel.modules.find(PATCH) is not None
            return res.fail(
                f"{PATCH} is {'loaded but its patch is gone (disabled)' if loaded else 'not loaded'}",
                self.hints(ws.scenario)[0] + ("" if not loaded else " (after `rmmod` and `klpemu lab reset`)"),
            )
        target = module_param(system, PATCH, "target")
        if target != t:
            res.fail(
                f"your patch replaces {target}, not {t}",
                f"`klpemu lab reset`, then load it with `target={t}`",
            )
        if any("forcing remaining tasks" in line for line in log(system)):
            res.fail(
                "the transition was forced (the kernel log says so): the blocking task was switched unchecked",
                "`klpemu lab reset` and make it complete by letting the blocking task go (no `force`)",
            )
        if (read_file(system, f"{LP}/enabled") or "").strip() != "1":
            res.fail("the patch is disabled", "writing 0 to enabled reverses or undoes the patch; leave it at 1")
        if (read_file(system, f"{LP}/transition") or "").strip() != "0":
            res.fail("the transition has not completed: a task is still in the way", self.hints(ws.scenario)[1])
        else:
            res.ok("the transition completed")
        sleepers = ws.scenario.variant["sleepers"]
        left = tasks_named(system, "klabd/")
        culprit = f"klabd/{sleepers.index(t)}"
        others = [f"klabd/{i}" for i, f in enumerate(sleepers) if f != t]
        gone = [c for c in others if c not in left]
        if gone:
            res.fail(
                f"you released {', '.join(gone)} too, which were not in the way",
                "release only the task `blocking` names: its pid, not -1",
            )
        answers = parse_answers(ws.file(ANSWER))
        task = answers.get("task", "")
        culprit_pid = _pid_of(system, ws, culprit)
        if task not in (str(culprit_pid), culprit, f"[{culprit}]"):
            res.fail(
                f"task: {task or '(missing)'} is not the task that held the transition up",
                "the pid `blocking` printed before you released it",
            )
        else:
            res.ok(f"task {culprit} (pid {culprit_pid})")
        if answers.get("function") != t:
            res.fail(
                f"function: {answers.get('function', '(missing)')} is not where that task slept",
                "the function /proc/PID/stack shows below klab_wait",
            )
        return res

    def solution_commands(self, sc: Scenario) -> list[str]:
        sleepers = sc.variant["sleepers"]
        pid = _pid_in(sc.boot(), f"klabd/{sleepers.index(sc.variant['target'])}")
        return [
            f"insmod {PATCH} target={sc.variant['target']}",
            "sleep 2s",
            "blocking",
            f"cat /proc/{pid}/stack",
            f"echo {pid} > {RELEASE}",
            f"wait {LP}/transition 0",
        ]

    def solution_files(self, sc: Scenario, system: System) -> dict[str, str]:
        pid = _pid_in(sc.boot(), f"klabd/{sc.variant['sleepers'].index(sc.variant['target'])}")
        return {ANSWER: f"task: {pid}\nfunction: {sc.variant['target']}\n"}


def _pid_in(system: System, comm: str) -> int:
    return tasks_named(system, comm)[comm]


def _pid_of(system: System, ws: Workspace, comm: str) -> int:
    """The pid the thread has (or had, if it exited): the scenario's machine knows it."""
    return _pid_in(ws.scenario.boot(), comm)
