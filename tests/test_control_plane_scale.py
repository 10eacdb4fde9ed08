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


def brute_force_check_stack(transition, trace) -> str | None:
    """klp_check_stack as the kernel writes it: every patched func against every frame."""
    lp = transition.lp
    addrs = [f.addr for f in trace.frames if f.kind != "user"]
    for f in [f for o in lp.objects(transition.active) if o.patched for f in lp.funcs(o)]:
        stack = lp.patch_layer.func_stack(f.old_func)
        at = stack.index(f)
        below = stack[at + 1] if at + 1 < len(stack) else None
        lo, size = (f.old_func, f.old_size) if below is None else (below.new_func, below.new_size)
        if any(lo <= a < lo + size for a in addrs):
            return system_read_name(transition, f)
    return None


def system_read_name(transition, f) -> str:
    return transition.m.mem.read_cstr(f.old_name, 512)


def test_the_stack_check_finds_what_a_full_scan_finds_and_reads_nothing_again():
    from klpemu.kernel.stacktrace import unwind_task
    from klpemu.kernel.tasks import all_tasks

    system = booted_system()
    m = system.machine
    tasks = [t for t in all_tasks(m) if t.running_on is None]
    on_stacks: Counter[str] = Counter()
    for task in tasks:
        on_stacks.update({m.image.function_at(f.addr).name for f in unwind_task(m, task).frames if f.kind != "user"})
    unique = set(unique_traceable_functions(system)) - {"version_proc_show"}
    # every function no task is in, and one that a single task is in
    (blocker, *_) = sorted(name for name in unique if on_stacks[name] == 1)
    names = sorted(name for name in unique if not on_stacks[name]) + [blocker]
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    patch = b.patch("scale", [b.object(None, [b.func(name, "version_proc_show") for name in names])])
    lp.enable(patch)
    transition = lp.transition
    traces = [unwind_task(m, task) for task in tasks]
    found = [transition.check_stack(trace) for trace in traces]
    assert found == [brute_force_check_stack(transition, trace) for trace in traces]
    assert [hit for hit in found if hit] == [blocker]

    reads = 0
    real_read = m.mem.read

    def counted(va: int, size: int) -> bytes:
        nonlocal reads
        reads += 1
        return real_read(va, size)

    m.mem.read = counted  # type: ignore[method-assign]
    try:
        clear = [trace for trace, hit in zip(traces, found, strict=True) if hit is None]
        for trace in clear:
            transition.check_stack(trace)
    finally:
        del m.mem.read
    # the key of the ranges is read per call (the transition's patch and target), no function
    assert reads <= 4 * len(clear)
