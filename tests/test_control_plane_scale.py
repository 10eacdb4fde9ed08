"""The control plane's cost in counts, not times: a livepatch enable pokes its sites in one
batch whatever its size (up to the scale configuration's 1000 functions), its guest reads grow
linearly with the functions it patches, and a stack check pass's with the tasks it checks."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import pytest
from machine_util import MS, booted_system

from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.module.kmod import shipped_module
from klpemu.kernel.stacktrace import unwind_task
from klpemu.kernel.tasks import all_tasks
from klpemu.snapshot import Snapshot


def unique_traceable_functions(system) -> list[str]:
    """vmlinux functions with a record and a name no other function has (no sympos needed)."""
    names = [system.machine.image.function_at(ip).name for ip in system.kernel.ftrace.records.ips()]
    counts = Counter(names)
    return [name for name in names if counts[name] == 1]


@contextlib.contextmanager
def counting_reads(mem) -> Iterator[list[int]]:
    """Every host read of guest memory inside the block counted, in the list's one item."""
    counter = [0]
    real_read = mem.read

    def read(va: int, size: int) -> bytes:
        counter[0] += 1
        return real_read(va, size)

    mem.read = read
    try:
        yield counter
    finally:
        del mem.read


def enable_costs(system, names: list[str], obj: str | None) -> tuple[int, int, int]:
    """(text_poke syncs, guest memory reads, sites poked) of enabling a patch of names."""
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    patch = b.patch("scale", [b.object(obj, [b.func(name, "version_proc_show") for name in names])])
    mem = system.machine.mem
    tp = system.kernel.ftrace.text_poke
    syncs = tp.syncs
    with counting_reads(mem) as reads:
        lp.enable(patch)
    assert system.kernel.check_consistency() == []
    poked = sum(1 for ip in system.kernel.ftrace.records.ips() if mem.read(ip, 1) == b"\xe8")
    return tp.syncs - syncs, reads[0], poked


@pytest.fixture(scope="module")
def costs():
    out = {}
    for n in (1, 10, 100):
        system = booted_system()
        out[n] = enable_costs(system, unique_traceable_functions(system)[:n], None)
    return out


def test_one_text_poke_batch_per_patch_whatever_its_size(costs):
    assert {n: c[2] for n, c in costs.items()} == {1: 1, 10: 10, 100: 100}
    assert costs[1][0] == costs[10][0] == costs[100][0]


def test_guest_reads_of_an_enable_grow_linearly_with_its_functions(costs):
    per_function_10 = (costs[10][1] - costs[1][1]) / 9
    per_function_100 = (costs[100][1] - costs[10][1]) / 90
    assert per_function_100 <= 1.5 * per_function_10


# The scale configuration: scale_funcs (1024 traceable functions) and its kernel threads.
SCALE_THREADS = 256  # a multiple of the default depth (16): each block of 16 has every depth once


def scale_snapshot(threads: int) -> Snapshot:
    if threads not in _scale_snapshots:
        system = booted_system()
        system.kernel.modules.load(shipped_module("scale_funcs"), f"threads={threads}")
        system.machine.run(20 * MS)  # every thread reaches its sleep
        _scale_snapshots[threads] = Snapshot.take(system)
    return _scale_snapshots[threads]


_scale_snapshots: dict[int, Snapshot] = {}


def test_the_syncs_of_an_enable_grow_by_a_batch_per_full_vector_not_per_function():
    snapshot = scale_snapshot(0)
    by_size = {}
    for n in (1, 10, 100, 256, 1000):
        names = [f"scale_func_{i:04d}" for i in range(n)]
        by_size[n] = enable_costs(snapshot.restore_system(), names, "scale_funcs")
    assert {n: c[2] for n, c in by_size.items()} == {1: 1, 10: 10, 100: 100, 256: 256, 1000: 1000}
    # text_poke_queue flushes when its vector of TP_VEC_MAX sites is full: 1000 sites are four
    # batches of the int3, tail and first-byte syncs where up to 256 are one
    tp_vec_max = len(snapshot.restore_machine().var("text_poke_array").vec)
    assert tp_vec_max == 256
    syncs = {n: c[0] for n, c in by_size.items()}
    assert syncs[1] == syncs[10] == syncs[100] == syncs[256]
    assert syncs[1000] == syncs[1] + 3 * (4 - 1)
    per_function_100 = (by_size[100][1] - by_size[10][1]) / 90
    per_function_1000 = (by_size[1000][1] - by_size[100][1]) / 900
    assert per_function_1000 <= 1.5 * per_function_100


def test_the_threads_sleep_at_the_depth_asked_and_block_the_functions_they_are_in():
    system = scale_snapshot(SCALE_THREADS).restore_system()
    m = system.machine
    threads = [t for t in all_tasks(m) if t.comm.startswith("kscale/")]
    assert [t.comm for t in threads] == [f"kscale/{i}" for i in range(SCALE_THREADS)]
    chains = []
    for t in threads[:3] + threads[17:18]:
        names = [m.image.function_at(f.addr - 1).name for f in unwind_task(m, t).frames]
        chains.append([n for n in names if n.startswith("scale_func_")])
    assert chains == [
        ["scale_func_0000"],
        ["scale_func_0002", "scale_func_0001"],
        ["scale_func_0004", "scale_func_0003", "scale_func_0002"],
        ["scale_func_0018", "scale_func_0017"],
    ]
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    lp.enable(b.patch("scale", [b.object("scale_funcs", [b.func("scale_func_0001", "version_proc_show")])]))
    blocked = sorted(t.comm for t, why in lp.transition.blockers() if why == "sleeping in function scale_func_0001")
    # thread i's chain is functions i to i + i % 16: those reaching 1 are 0 (depth 1 is 0 only) and 1
    assert blocked == ["kscale/1"]


def test_guest_reads_of_a_stack_check_pass_grow_linearly_with_the_tasks():
    system = scale_snapshot(SCALE_THREADS).restore_system()
    m = system.machine
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    names = [f"scale_func_{i:04d}" for i in range(1000)]
    lp.enable(b.patch("scale", [b.object("scale_funcs", [b.func(n, "version_proc_show") for n in names])]))
    transition = lp.transition
    threads = [t for t in all_tasks(m) if t.comm.startswith("kscale/")]
    reads = {}
    for n in (64, 128, 256):
        with counting_reads(m.mem) as counter:
            for task in threads[:n]:
                transition.blocker(task)
        reads[n] = counter[0]
    # each block of 16 threads has the same depths, so the same reads: exactly linear
    assert reads[128] == 2 * reads[64] and reads[256] == 4 * reads[64]
    assert reads[64] / 64 < 40  # a few reads per frame, none per patched function


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

    clear = [trace for trace, hit in zip(traces, found, strict=True) if hit is None]
    with counting_reads(m.mem) as counter:
        for trace in clear:
            transition.check_stack(trace)
    reads = counter[0]
    # the key of the ranges is read per call (the transition's patch and target), no function
    assert reads <= 4 * len(clear)
