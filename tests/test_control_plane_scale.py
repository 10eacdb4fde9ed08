"""The control plane's cost in counts, not times: a livepatch enable pokes its sites in one
batch whatever its size, and its guest reads grow linearly with the functions it patches."""

from __future__ import annotations

from collections import Counter

import pytest
from machine_util import booted_system

from klpemu.kernel.livepatch.builder import KlpBuilder


def unique_traceable_functions(system) -> list[str]:
    """vmlinux functions with a record and a name no other function has (no sympos needed)."""
    names = [system.machine.image.function_at(ip).name for ip in system.kernel.ftrace.records.ips()]
    counts = Counter(names)
    return [name for name in names if counts[name] == 1]


def enable_costs(n: int) -> tuple[int, int, int]:
    """(text_poke syncs, guest memory reads, sites poked) of enabling an n-function patch."""
    system = booted_system()
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    names = unique_traceable_functions(system)[:n]
    patch = b.patch("scale", [b.object(None, [b.func(name, "version_proc_show") for name in names])])
    mem = system.machine.mem
    reads = 0
    real_read = mem.read

    def counted(va: int, size: int) -> bytes:
        nonlocal reads
        reads += 1
        return real_read(va, size)

    tp = system.kernel.ftrace.text_poke
    syncs = tp.syncs
    mem.read = counted  # type: ignore[method-assign]
    try:
        lp.enable(patch)
    finally:
        del mem.read
    assert system.kernel.check_consistency() == []
    poked = sum(1 for ip in system.kernel.ftrace.records.ips() if mem.read(ip, 1) == b"\xe8")
    return tp.syncs - syncs, reads, poked


@pytest.fixture(scope="module")
def costs():
    return {n: enable_costs(n) for n in (1, 10, 100)}


def test_one_text_poke_batch_per_patch_whatever_its_size(costs):
    assert {n: c[2] for n, c in costs.items()} == {1: 1, 10: 10, 100: 100}
    assert costs[1][0] == costs[10][0] == costs[100][0]


def test_guest_reads_of_an_enable_grow_linearly_with_its_functions(costs):
    per_function_10 = (costs[10][1] - costs[1][1]) / 9
    per_function_100 = (costs[100][1] - costs[10][1]) / 90
    assert per_function_100 <= 1.5 * per_function_10
