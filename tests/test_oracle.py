"""The consistency oracle (klpemu/oracle.py) against each model, on klp_caller_callee: it sees
the mixed executions immediate allows and linux's stack check prevents, and none under linux.

The default suite runs a few seeds; KLPEMU_ORACLE_SEEDS=200 runs the 200 of the claim.
"""

from __future__ import annotations

import os

import pytest

from klpemu.campaign.run import run_one

SEEDS = range(int(os.environ.get("KLPEMU_ORACLE_SEEDS", "3")))


def test_immediate_mixes_caller_and_callee_and_the_oracle_says_where():
    r = run_one("immediate", "caller-callee", 1)
    assert r["completed"] and r["emulated_seconds"] < 0.001
    assert r["violations"] == r["mixed"] == 2  # the oracle agrees with the module's own count
    assert r["violation_rules"] == ["mixed"]
    assert (
        r["first_violation"]
        == """\
[    0.108000] kcaller/0:9 entered new livepatch_cc_callee with old cc_caller on its stack (mixed)
    livepatch_cc_callee+0x5/0x10 [klp_caller_callee_patch]
    cc_caller+0x23/0x38 [klp_caller_callee]
    cc_thread+0x49/0xf5 [klp_caller_callee]
    ret_from_fork+0x34/0x3c
    ret_from_fork_asm+0x11/0x2e"""
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_linux_never_mixes(seed):
    r = run_one("linux", "caller-callee", seed)
    assert r["completed"] and not r["forced"]
    assert (r["violations"], r["mixed"]) == (0, 0)
    assert r["oracle_entries"] > 100  # it did watch: every call of both functions, old and new


def test_immediate_mixes_over_the_seeds():
    runs = [run_one("immediate", "caller-callee", seed) for seed in SEEDS]
    assert sum(r["violations"] > 0 for r in runs) >= len(runs) // 2
    assert all(r["violations"] == r["mixed"] for r in runs)


def test_without_the_stack_check_linux_mixes_too():
    """The debug switch that lets linux's model switch a task asleep in cc_caller: the oracle
    catches it, so it does not merely repeat the transition's own check."""
    r = run_one("linux-nocheck", "caller-callee", 1)
    assert r["violations"] == 2 and r["violation_rules"] == ["mixed"]


def test_stop_machine_fails_where_a_function_is_always_on_some_stack_and_linux_completes():
    sm = run_one("stop_machine", "relay", 1)
    assert (sm["completed"], sm["attempts"], sm["emulated_seconds"]) == (False, 5, None)
    lx = run_one("linux", "relay", 1)
    assert lx["completed"] and not lx["forced"] and lx["emulated_seconds"] == 2.00001
    assert sm["violations"] == lx["violations"] == 0


def test_a_sleeper_in_the_function_needs_force_under_linux_and_lazy():
    for model in ("linux", "lazy"):
        r = run_one(model, "sleeper", 1)
        assert (r["completed"], r["signals"], r["forced"]) == (False, True, True), model
