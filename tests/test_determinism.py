"""A seed fixes the whole execution: the same seed replays the same instructions on the same CPUs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from unicorn import UC_HOOK_CODE

from klpemu.kernel.printk import dmesg
from klpemu.kernel.stacktrace import unwind_task
from klpemu.kernel.tasks import all_tasks
from klpemu.system import System

MS = 1_000_000
RUN_NS = 20 * MS


@dataclass
class Run:
    trace: list[tuple[int, int]]  # (address, CPU index) of every executed instruction
    dmesg: str
    jiffies: int
    now: int
    insns: int
    stacks: dict[str, str]


def record(seed: int, **config) -> Run:
    m = System(seed=seed, **config).machine
    trace: list[tuple[int, int]] = []

    def hook(_uc, addr, _size, _ud):
        cpu = m._running
        trace.append((addr, cpu.index if cpu is not None else -1))

    m.uc.hook_add(UC_HOOK_CODE, hook, None, 1, 0)
    m.uc.ctl_flush_tb()  # blocks translated before the hook would run uninstrumented
    m.boot()
    m.run(RUN_NS)
    assert m.oops is None
    stacks = {f"{t.pid}:{t.comm}": unwind_task(m, t).proc_stack() for t in all_tasks(m)}
    return Run(trace, dmesg(m), m.read_var_int("jiffies"), m.now, m.insns, stacks)


@pytest.fixture(scope="module")
def runs():
    return {"a": record(0), "b": record(0), "other": record(1)}


def test_same_seed_same_instruction_trace(runs):
    a, b = runs["a"], runs["b"]
    assert len(a.trace) > 10_000  # boot and 20 ms of ticks really ran through the hook
    assert len(a.trace) == len(b.trace)
    first_diff = next((i for i, (x, y) in enumerate(zip(a.trace, b.trace, strict=False)) if x != y), None)
    assert first_diff is None, f"traces diverge at instruction {first_diff}"
    assert a.trace == b.trace


def test_trace_covers_every_cpu(runs):
    cpus = {cpu for _addr, cpu in runs["a"].trace}
    assert {0, 1} <= cpus
    assert -1 not in cpus  # no instruction ran outside a CPU slice


def test_same_seed_same_log_clock_and_tasks(runs):
    a, b = runs["a"], runs["b"]
    assert a.dmesg == b.dmesg and "Run /sbin/init as init process" in a.dmesg
    assert a.jiffies == b.jiffies and a.jiffies >= 4
    assert (a.now, a.insns) == (b.now, b.insns)
    assert a.stacks == b.stacks


def test_different_seed_different_trace(runs):
    a, other = runs["a"], runs["other"]
    assert a.trace != other.trace
    # The same program ran: the set of executed instructions at boot is largely the same.
    common = {addr for addr, _ in a.trace} & {addr for addr, _ in other.trace}
    assert len(common) > 0.9 * len({addr for addr, _ in a.trace})


def test_same_seed_single_cpu_machine_is_deterministic_too():
    x, y = record(7, cpus=1), record(7, cpus=1)
    assert x.trace == y.trace and x.dmesg == y.dmesg
    assert {cpu for _a, cpu in x.trace} == {0}
