"""Uncounted slicing: the block counter counts exactly, stops on block boundaries, forgets changed
code, and machines sliced by it are deterministic for a seed and fast where a CPU runs alone."""

from __future__ import annotations

import argparse
from errno import ENOTSUP

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from machine_util import MS, booted_system, make_machine, shell_run
from test_snapshot import state
from unicorn import UC_ARCH_X86, UC_HOOK_CODE, UC_MODE_64, Uc
from unicorn.x86_const import UC_X86_REG_CS, UC_X86_REG_RDI, UC_X86_REG_RIP, UC_X86_REG_RSP

from klpemu.bench import BareGuest
from klpemu.cli import DEFAULT_CPU_MHZ, INTERACTIVE_CPU_MHZ, _config
from klpemu.cli import main as cli_main
from klpemu.errors import KlpemuError
from klpemu.machine import block_counter
from klpemu.machine.block_counter import BlockCounter, unavailable_reason
from klpemu.machine.image import KernelImage
from klpemu.machine.machine import Machine, MachineConfig, shipped_image
from klpemu.snapshot import Snapshot

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

LOOP = "bench_call_loop"
TRACING = "/sys/kernel/tracing"


@pytest.fixture(scope="module")
def bare() -> tuple[BareGuest, BlockCounter]:
    g = BareGuest(KernelImage(shipped_image()))
    assert g.mem is not None
    return g, BlockCounter(g.uc, g.mem.read)


def code_hook_count(uc, run) -> int:
    """Instructions run() executes, counted one by one by a code hook."""
    n = [0]

    def hook(*_args):
        n[0] += 1

    h = uc.hook_add(UC_HOOK_CODE, hook, None, 1, 0)
    uc.ctl_flush_tb()
    try:
        run()
    finally:
        uc.hook_del(h)
        uc.ctl_flush_tb()
    return n[0]


def counted(counter: BlockCounter, run) -> int:
    before = counter.counted
    run()
    return counter.counted - before


def test_the_block_counter_counts_what_a_code_hook_counts(bare):
    g, counter = bare
    counter.arm(1 << 60)
    for n in (0, 1, 1000):
        by_blocks = counted(counter, lambda n=n: g.call(LOOP, n))
        assert by_blocks == code_hook_count(g.uc, lambda n=n: g.call(LOOP, n))
    # 11 instructions an iteration: the loop's 5 and bench_leaf's 6 (its fentry site a NOP)
    assert counted(counter, lambda: g.call(LOOP, 2000)) - counted(counter, lambda: g.call(LOOP, 1000)) == 11_000


def run_loop(g: BareGuest, n: int) -> int:
    """bench_call_loop(n) on g, uncounted, wherever the counter stops it; returns where it stopped."""
    uc = g.uc
    uc.context_restore(g.ctx)
    uc.mem_write(g._ret_slot, g.sentinel.to_bytes(8, "little"))
    uc.reg_write(UC_X86_REG_RSP, g.sp)
    uc.reg_write(UC_X86_REG_RDI, n)
    uc.emu_start(g.image.addr(LOOP), g.sentinel, count=0)
    return uc.reg_read(UC_X86_REG_RIP)


def test_a_budget_stops_the_run_at_the_first_block_boundary_at_or_past_it(bare):
    g, counter = bare
    block_starts = {g.image.addr(LOOP) + off for off in (0, 5, 0x1D)} | {g.image.addr("bench_leaf")}
    for budget in (1, 2, 3, 100, 1001):
        counter.arm(budget)
        stops: list[int] = []
        ran = counted(counter, lambda stops=stops: stops.append(run_loop(g, 10_000)))
        counter.arm(budget)
        assert code_hook_count(g.uc, lambda: run_loop(g, 10_000)) == ran  # what ran is what was counted
        assert budget <= ran < budget + 9  # the loop's blocks hold at most 9 instructions
        assert stops[0] in block_starts
    counter.arm(1 << 60)


def test_the_table_forgets_code_that_changed(bare):
    g, counter = bare
    assert g.mem is not None
    counter.arm(1 << 60)
    leaf = g.image.addr("bench_leaf")
    before = counted(counter, lambda: g.call(LOOP, 100))
    misses = counter.misses
    nop5 = g.mem.read(leaf, 5)
    try:
        # Two NOPs where the NOP5 was: the same bytes, one instruction more per call.
        g.mem.write(leaf, b"\x66\x90\x0f\x1f\x00")
        g.uc.ctl_remove_cache(leaf, leaf + 5)
        after = counted(counter, lambda: g.call(LOOP, 100))
    finally:
        g.mem.write(leaf, nop5)
        g.uc.ctl_remove_cache(leaf, leaf + 5)
    assert counter.misses > misses
    assert after == before + 100
    assert counted(counter, lambda: g.call(LOOP, 100)) == before


def uncounted_machine(extra: str = "kbusy=1", **config) -> Machine:
    return make_machine(extra, cpus=2, uncounted=True, **config)


def test_uncounted_machines_are_deterministic_for_a_seed_and_after_a_restore():
    a, b = uncounted_machine(), uncounted_machine()
    assert a.block_counter is not None
    copy = Snapshot.take(a).restore_machine()
    assert copy.block_counter is not None and copy.block_counter is not a.block_counter
    for m in (a, b, copy):
        m.run(3 * MS)
        assert m.oops is None
    assert state(a) == state(b) == state(copy)
    other_seed = uncounted_machine(seed=1)
    other_seed.run(3 * MS)
    assert state(other_seed)["regs"] != state(a)["regs"]


def emu_starts(m: Machine, run) -> int:
    n = [0]
    real = m.uc.emu_start

    def counting(*args, **kwargs):
        n[0] += 1
        return real(*args, **kwargs)

    m.uc.emu_start = counting  # type: ignore[method-assign]
    try:
        run()
    finally:
        del m.uc.emu_start
    return n[0]


def test_a_cpu_running_alone_runs_in_long_slices():
    """kbusy keeps one CPU busy while the other idles: counted, each round is one mean slice;
    uncounted, the busy CPU runs up to ALONE_SLICE_FACTOR times longer between ticks."""
    counted_m = make_machine("kbusy=1", cpus=2)
    uncounted_m = uncounted_machine()
    start = uncounted_m.now
    machines = (("counted", counted_m), ("uncounted", uncounted_m))
    slices = {name: emu_starts(m, lambda m=m: m.run(4 * MS)) for name, m in machines}
    insns = 4 * MS // counted_m.config.insn_ns
    assert slices["counted"] >= insns // (3 * counted_m.config.slice_insns // 2)
    # Alone, kbusy takes a handful of long slices a tick; the idle CPU's tick handling interleaves.
    assert slices["uncounted"] * 20 < slices["counted"]
    # Time went by the instructions run, and the run ended on its deadline, within a block.
    assert 4 * MS <= uncounted_m.now - start < 4 * MS + 64


def test_stepping_an_uncounted_machine_steps_one_instruction():
    """Steps are counted by Unicorn even on an uncounted machine, kbusy's blocks translated
    uncounted before them notwithstanding; and block slices take over again after."""
    m = uncounted_machine()
    m.run(MS)
    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    for _addr, before, after, _events in (s for s in m.step(0, 200) if s[0] is not None):
        _, size, mnemonic, _ = next(cs.disasm_lite(m.mem.read(before["rip"], 16), before["rip"]))
        if not mnemonic.startswith(("j", "call", "ret", "int", "iret", "hlt", "loop", "sys")):
            assert after["rip"] == before["rip"] + size, mnemonic  # one instruction, not a block
    ran: list[int] = []
    steps = []

    def step() -> None:
        steps.extend(m.step(0, 500))

    ran.append(code_hook_count(m.uc, step))
    insns = [s for s in steps if s[0] is not None]
    assert len(steps) == 500 and ran[0] == len(insns)
    assert all(a[2]["rip"] == b[1]["rip"] for a, b in zip(insns, insns[1:], strict=False))
    before = m.now
    m.run(MS)
    assert m.oops is None and m.now - before >= MS


def args(**given) -> argparse.Namespace:
    return argparse.Namespace(
        **{
            "image": None,
            "cpus": 2,
            "seed": 0,
            "cmdline": MachineConfig.cmdline,
            "consistency_model": "linux",
            "klp_stack_check": True,
            "mem_mb": 64,
            "cpu_mhz": None,
            "slicing": None,
            **given,
        }
    )


def test_the_terminal_defaults_to_a_slower_uncounted_clock_and_scripts_do_not():
    scripted = _config(args())
    assert (scripted.insn_ns, scripted.uncounted) == (1000 // DEFAULT_CPU_MHZ, False)
    interactive = _config(args(), interactive=True)
    assert (interactive.insn_ns, interactive.uncounted) == (1000 // INTERACTIVE_CPU_MHZ, True)
    pinned = _config(args(cpu_mhz=1000, slicing="counted"), interactive=True)
    assert (pinned.insn_ns, pinned.uncounted) == (1, False)


def test_code_patched_while_the_live_cpu_is_in_user_mode_runs_patched():
    """Uncounted, sh's slices often end in user mode, where Unicorn's MMU cannot see kernel text:
    the machine drops the old translations from a ring-0 state, so the patched site runs."""
    system = booted_system(uncounted=True)
    m = system.machine
    status, _, err = shell_run(system, "insmod hello")  # its init runs hello_greet: translated unpatched
    assert status == 0, err
    live_modes = []
    drop = m.uc.ctl_remove_cache

    def spy(begin: int, end: int) -> None:
        live_modes.append(m.uc.reg_read(UC_X86_REG_CS) & 3)
        drop(begin, end)

    m.uc.ctl_remove_cache = spy  # type: ignore[method-assign]
    status, _, err = shell_run(
        system, f"echo hello_greet > {TRACING}/set_ftrace_filter; echo function > {TRACING}/current_tracer"
    )
    assert status == 0, err
    assert 3 in live_modes  # the case this is about did arise
    status, out, err = shell_run(system, f"insmod hello_friend; cat {TRACING}/trace")
    assert status == 0, err
    assert out.count(" hello_greet <-") == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 300), budget=st.integers(1, 4000))
def test_any_budget_counts_what_ran_and_stops_on_a_block_boundary(bare, n, budget):
    """Whatever the loop's length and the budget: what the counter counted is what a code hook
    saw run, and the run either finished or ran its budget and less than one block more."""
    g, counter = bare
    seen = [0]

    def hook(*_args):
        seen[0] += 1

    h = g.uc.hook_add(UC_HOOK_CODE, hook, None, 1, 0)
    g.uc.ctl_flush_tb()
    try:
        counter.arm(budget)
        stops: list[int] = []
        ran = counted(counter, lambda: stops.append(run_loop(g, n)))
    finally:
        g.uc.hook_del(h)
        g.uc.ctl_flush_tb()
        counter.arm(1 << 60)
    assert ran == seen[0]
    if stops[0] == g.sentinel:
        assert ran == 11 * n + 15  # the whole call: 11 an iteration and 15 around them
    else:
        assert budget <= ran < budget + 9


def test_a_host_that_cannot_run_the_hook_says_so_and_the_terminal_stays_counted(monkeypatch, capsys):
    monkeypatch.setattr(block_counter.platform, "machine", lambda: "aarch64")
    assert unavailable_reason() == "the block counter's hook is x86-64 System V code; this host is aarch64 posix"
    with pytest.raises(KlpemuError) as e:
        BlockCounter(Uc(UC_ARCH_X86, UC_MODE_64), lambda _addr, _size: b"")
    assert e.value.errno == ENOTSUP
    assert str(e.value).startswith("uncounted slicing is not available: the block counter's hook is x86-64")
    interactive = _config(args(), interactive=True)
    assert (interactive.insn_ns, interactive.uncounted) == (1000 // INTERACTIVE_CPU_MHZ, False)
    assert cli_main(["boot", "--slicing", "uncounted"]) == 1
    assert "klpemu: uncounted slicing is not available: " in capsys.readouterr().err
