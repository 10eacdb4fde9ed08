"""Lab 7: atomic replace and system states. Cumulative patches declaring a klp_state replace each
other only when the state's version does not go down; the student predicts which loads of a
seeded sequence are refused, runs it, and leaves only the patch in effect."""

from __future__ import annotations

from ..system import System
from .base import ANSWER, Lab, parse_answers, rng
from .consistency import FORCE_TEXT
from .inspect import log, patch
from .result import CheckResult
from .scenario import Scenario
from .workspace import Workspace, run_commands

# module: the console-loglevel klp_state version it declares (None: no state, not cumulative)
MODULES = {"test_klp_state": 1, "test_klp_state2": 2, "test_klp_state3": 2, "livepatch-sample": None}


def _name(module: str) -> str:
    return module.replace("-", "_")


def wait_command(module: str) -> str:
    return f"wait /sys/kernel/livepatch/{_name(module)}/transition 0"


def outcomes(system: System, sequence: list[str]) -> list[str] | None:
    """Each load's fate in the kernel log, in order: loaded, refused; None if one is missing."""
    lines = log(system)
    out, pos = [], 0
    for module in sequence:
        name = _name(module)
        for i in range(pos, len(lines)):
            if f"enabling patch '{name}'" in lines[i]:
                out.append("loaded")
                break
            if f"Livepatch patch ({name}) is not compatible" in lines[i]:
                out.append("refused")
                break
        else:
            return None
        pos = i + 1
    return out


_truths: dict[str, tuple[list[str], str]] = {}


class ReplaceLab(Lab):
    id = "replace"
    number = 7
    title = "Atomic replace and system states: which cumulative patch may replace which"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        sequence = r.sample(["test_klp_state", "test_klp_state2", "test_klp_state3"], 3)
        if r.random() < 0.5:
            sequence.insert(0, "livepatch-sample")
        return Scenario(lab=self.id, seed=seed, machine_seed=r.randrange(1000), variant={"sequence": sequence})

    def truth(self, sc: Scenario) -> tuple[list[str], str]:
        """Each load's fate and the patch left in effect, run on a fresh scenario machine."""
        key = sc.to_json()
        if key not in _truths:
            _truths[key] = self._run_truth(sc)
        return _truths[key]

    def _run_truth(self, sc: Scenario) -> tuple[list[str], str]:
        system = sc.boot()
        for module in sc.variant["sequence"]:
            if run_commands(system, f"insmod {module}")[0] == 0:
                run_commands(system, wait_command(module))
        fates = outcomes(system, sc.variant["sequence"])
        assert fates is not None
        last = [m for m, f in zip(sc.variant["sequence"], fates, strict=True) if f == "loaded"][-1]
        return fates, _name(last)

    def sheet(self, sc: Scenario) -> str:
        seq = sc.variant["sequence"]
        items = "\n".join(f"{i}. `insmod {m}`" for i, m in enumerate(seq, 1))
        return f"""\
# Lab 7: atomic replace and system states

Your sequence:

{items}

A cumulative patch (`.replace = true`) takes the place of every patch loaded before it: when its
transition completes, the others are disabled and freed, their modules left for `rmmod`. A patch
may also declare the system states it changes (`struct klp_state`: an id and a version). The
`test_klp_state*` modules all change the console loglevel, state id 1: `test_klp_state` declares
version 1, `test_klp_state2` and `test_klp_state3` version 2, which knows how to take the state
over from an earlier patch. The kernel refuses a patch that would drop a state in effect or lower
its version (`klp_is_patch_compatible`). `livepatch-sample` declares no state.

1. Predict, for each load of your sequence, whether the kernel refuses it. Write
   `N: loaded` or `N: refused` for each into `{ANSWER}`.
2. In `klpemu lab shell`, run the sequence in order, letting each transition complete
   (`wait /sys/kernel/livepatch/NAME/transition 0` after each insmod that succeeds; for a
   refused one there is nothing to wait for). Read the kernel log (`dmesg`): the callbacks
   say who allocates the state and who takes it over. `ls /sys/kernel/livepatch` shows what is left.
3. Correct your answers if needed, then `rmmod` every module whose patch was replaced, so that
   `lsmod` lists only the module of the patch in effect.

`klpemu lab check` reads the kernel log of your sessions (each load, in order), the patches
and modules left, and your answers.

{FORCE_TEXT.format(lp="/sys/kernel/livepatch/NAME")}
Think about: what would go wrong if version 1 were allowed to replace version 2?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {ANSWER: "# Lab 7 answers: `N: loaded` or `N: refused`, one a line.\n"}

    def hints(self, sc: Scenario) -> list[str]:
        return [
            "A state's version may stay or go up across replacements, never down.",
            "A patch with no klp_state has nothing to be incompatible with; only what is installed counts.",
            "`dmesg` says `is not compatible with the already installed livepatches` for a refused load.",
            "After a replacement the old module stays loaded, its refcount 0: `rmmod` it.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        sc = ws.scenario
        seq = sc.variant["sequence"]
        fates, last = self.truth(sc)
        seen = outcomes(system, seq)
        if seen is None:
            res.fail(
                "your sessions did not load the whole sequence, in order",
                "run each `insmod` of the sheet in turn, waiting for each transition",
            )
        elif seen != fates:
            res.fail(
                "the loads in your machine went otherwise than the sequence run cleanly",
                "`klpemu lab reset` and run the sequence on the fresh machine, letting each transition complete",
            )
        answers = parse_answers(ws.file(ANSWER))
        for i, (module, fate) in enumerate(zip(seq, fates, strict=True), 1):
            said = answers.get(str(i), "").lower()
            if said not in ("loaded", "refused"):
                res.fail(f"{ANSWER} has no `{i}: loaded` or `{i}: refused`", self.hints(sc)[2])
            elif said != fate:
                res.fail(f"{i} (insmod {module}): you say {said}, the kernel {fate} it", self.hints(sc)[0])
            else:
                res.ok(f"{i}: {fate}")
        if any("forcing remaining tasks" in line for line in log(system)):
            res.fail("a transition was forced", "no need: wait for each transition to complete")
        lp = system.kernel.livepatch
        left = [lp.name(p) for p in lp.patches]
        if seen is not None and left != [last]:
            res.fail(
                f"the patches left are {', '.join(left) or 'none'}; only {last} should be in effect",
                "a refused patch leaves nothing; a cumulative one replaces all before it",
            )
        if patch(system, last) is not None and not patch(system, last).enabled:
            res.fail(f"{last} is disabled", "leave the last patch enabled")
        stale = [m.name for m in system.kernel.modules.list() if m.name in map(_name, MODULES) and m.name != last]
        if stale:
            res.fail(f"{', '.join(stale)} still loaded though replaced", self.hints(sc)[3])
        return res

    def solution_commands(self, sc: Scenario) -> list[str]:
        fates, last = self.truth(sc)
        cmds: list[str] = []
        for module, fate in zip(sc.variant["sequence"], fates, strict=True):
            cmds += [f"insmod {module}"] + ([wait_command(module)] if fate == "loaded" else [])
        cmds += ["dmesg", "ls /sys/kernel/livepatch"]
        loaded = [m for m, f in zip(sc.variant["sequence"], fates, strict=True) if f == "loaded"]
        return cmds + [f"rmmod {_name(m)}" for m in loaded if _name(m) != last]

    def solution_files(self, sc: Scenario, system: System) -> dict[str, str]:
        fates, _ = self.truth(sc)
        return {ANSWER: "".join(f"{i}: {f}\n" for i, f in enumerate(fates, 1))}
