"""The shadow variable samples: livepatch-shadow-mod leaks, fix1 stops the leak with an SV_LEAK
shadow variable, fix2 adds a per-dummy counter; the heap shows exactly which buffers leaked."""

from __future__ import annotations

import re

from machine_util import booted_system, shell_run

from klpemu.kernel.printk import records

KLP = "/sys/kernel/livepatch"


def run(system, cmds: str) -> None:
    status, _out, err = shell_run(system, cmds)
    assert (status, err) == (0, ""), err


def log(system) -> list[str]:
    return [r.text for r in records(system.machine)]


def addrs(lines: list[str], pattern: str) -> list[str]:
    return [m.group(1) for line in lines if (m := re.search(pattern, line))]


def test_fix1_and_fix2_repair_the_leak_of_dummies_allocated_after_them():
    system = booted_system()
    slab = system.machine.kernel.slab
    live_before = set(slab.objects)

    run(system, "insmod livepatch-shadow-mod.ko; sleep 4500ms")
    run(system, f"insmod livepatch-shadow-fix1.ko; wait {KLP}/livepatch_shadow_fix1/transition 0; sleep 13s")
    run(system, f"insmod livepatch-shadow-fix2.ko; wait {KLP}/livepatch_shadow_fix2/transition 0; sleep 7s")
    run(
        system,
        f"echo 0 > {KLP}/livepatch_shadow_fix2/enabled; wait --gone {KLP}/livepatch_shadow_fix2; "
        f"echo 0 > {KLP}/livepatch_shadow_fix1/enabled; wait --gone {KLP}/livepatch_shadow_fix1; "
        "rmmod livepatch_shadow_fix2; rmmod livepatch_shadow_fix1; rmmod livepatch_shadow_mod; lsmod",
    )

    lines = log(system)
    unpatched = addrs(lines, r"^dummy_alloc: dummy @ ([0-9a-f]+)")
    fixed = addrs(lines, r"^livepatch_shadow_fix1: livepatch_fix1_dummy_alloc: dummy @ ([0-9a-f]+)")
    assert len(unpatched) >= 4 and len(fixed) >= 10

    # Dummies from before fix1 have no SV_LEAK: their buffer is reported lost when they are freed.
    leaked = addrs(lines, r"dummy_free: dummy @ ([0-9a-f]+) leaked!$")
    assert leaked and set(leaked) <= set(unpatched[:5])
    # The others free theirs through the SV_LEAK destructor, in fix1 or (once it replaced it) fix2.
    prevented = addrs(lines, r"dummy_leak_dtor: dummy @ ([0-9a-f]+), prevented leak @ ")
    assert set(prevented) >= set(fixed)

    # fix2 counts every check of a live dummy: each cleanup, every 3 s, adds one.
    counts = [int(c) for c in addrs(lines, r"livepatch_fix2_dummy_free: dummy @ [0-9a-f]+, check counter = (\d+)$")]
    assert counts and all(1 <= c <= 3 for c in counts)

    # What stays on the heap is one int-sized buffer per dummy_alloc that ran unpatched.
    left = [a for a in slab.objects if a not in live_before]
    assert len(left) == len(unpatched)
    assert all(slab.objects[a] == 4 for a in left)
