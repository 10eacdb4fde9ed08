"""--cpu-mhz: the emulated clock. Jiffies, printk timestamps and the livepatch transition's
retry follow emulated time (Machine.now), so a slower clock changes how many instructions a
second takes, not what a second is. The default stays 1000 MHz (insn_ns = 1)."""

from __future__ import annotations

import argparse

import pytest
from machine_util import booted_system, shell_run

from klpemu.cli import CPU_MHZ, _config, _machine_args
from klpemu.cli import main as cli_main
from klpemu.kernel.printk import records


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    _machine_args(p)
    return p.parse_args(argv)


def test_clock_maps_to_ns_per_instruction():
    assert CPU_MHZ == (1000, 500, 250, 200, 125, 100, 50, 40, 25, 20, 10, 8, 5, 4, 2, 1)
    assert _config(parse()).insn_ns == 1  # the default: the tests' counts and transcripts
    assert {mhz: _config(parse("--cpu-mhz", str(mhz))).insn_ns for mhz in (1000, 100, 8, 1)} == {
        1000: 1,
        100: 10,
        8: 125,
        1: 1000,
    }


@pytest.mark.parametrize("mhz", ["300", "0", "2000", "fast"])
def test_a_clock_without_a_whole_ns_period_is_refused_with_the_choices(mhz, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["boot", "--cpu-mhz", mhz])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert (
        "argument --cpu-mhz" in err
        and "use one of 1000, 500, 250, 200, 125, 100, 50, 40, 25, 20, 10, 8, 5, 4, 2, 1" in err
    )


def test_printk_timestamps_follow_emulated_time():
    # The boot runs the same instructions at either clock (no tick falls inside it), so each
    # stamp at 100 MHz is ten times the one at 1000 MHz.
    fast, slow = (records(booted_system(insn_ns=ns).machine) for ns in (1, 10))
    assert [r.text for r in fast] == [r.text for r in slow]
    assert [10 * r.ts_nsec for r in fast] == [r.ts_nsec for r in slow]
    assert any(r.ts_nsec for r in fast)


@pytest.mark.parametrize("insn_ns", [1, 10])
def test_jiffies_and_the_transition_retry_follow_emulated_time(insn_ns):
    system = booted_system(insn_ns=insn_ns)
    m = system.machine
    status, _, err = shell_run(
        system, "insmod klab_sleeper func=klab_commit; insmod klab_sleeper_patch target=klab_commit"
    )
    assert status == 0, err
    transition = system.kernel.livepatch.transition
    assert transition.patch is not None and transition.signals_cnt == 1  # klabd/0 sleeps in klab_commit
    jiffies = m.read_var_int("jiffies")
    assert shell_run(system, "sleep 2500ms")[0] == 0
    assert transition.signals_cnt == 3  # retried at 1 s and 2 s of emulated time
    assert m.read_var_int("jiffies") - jiffies == 625  # HZ=250
