"""The handler-overhead benchmark (klpemu/bench.py): exact instruction and hypercall counts, no timing.

Each configuration is applied to one booted machine, counted and undone, as benchmarks/
handler_overhead.py and `klpemu bench` do before timing it. Instructions are per call of the
traced leaf, i.e. per iteration of bench_call_loop, including the loop's own 5.
"""

from __future__ import annotations

from collections import Counter

import pytest
from unicorn import UC_HOOK_CODE
from unicorn import x86_const as x

from klpemu.bench import CONFIGS, LEAF, LOOP, REPLACEMENT, BareGuest, HandlerBench, count_bare
from klpemu.cli import main as cli_main
from klpemu.kernel.text_poke import NOP5
from klpemu.machine.machine import Machine

LOOP_5 = {LOOP: 5}  # call, mov, add, cmp, jne
TRAMP = {"ftrace_caller (own copy)": 42}
# config: (guest instructions per call, where they run)
EXPECTED = {
    "a": (10, {**LOOP_5, LEAF: 5}),  # the leaf entered past its site
    "b": (11, {**LOOP_5, LEAF: 6}),  # + the NOP5
    "c": (54, {**LOOP_5, LEAF: 6, **TRAMP, "ftrace_empty_func": 1}),
    # one DYNAMIC ops on the shared trampoline: its slot calls the list function, as Linux
    "d": (155, {**LOOP_5, LEAF: 6, "ftrace_caller": 42, "ftrace_ops_list_func": 74, "ftrace_ops_test": 27,
                "ftrace_empty_func": 1}),
    "e": (79, {**LOOP_5, LEAF: 6, "ftrace_regs_caller (own copy)": 67, "ftrace_empty_func": 1}),
    # 2 relevant + 5 irrelevant ops: 7 tests, 2 handler calls
    "f": (404, {**LOOP_5, LEAF: 6, "ftrace_caller": 42, "ftrace_ops_list_func": 145, "ftrace_ops_test": 204,
                "ftrace_empty_func": 2}),
    # redirected: bench_leaf runs only its site; the replacement runs whole, its NOP5 included
    "g": (57, {**LOOP_5, LEAF: 1, **TRAMP, "ftrace_redirect_func": 3, REPLACEMENT: 6}),
    "h": (62, {**LOOP_5, LEAF: 1, **TRAMP, "ftrace_host_func": 8, REPLACEMENT: 6}),
    # the hook's RIP write skips bench_leaf's NOP5 (not executed, though Unicorn counts it)
    "i": (11, {**LOOP_5, REPLACEMENT: 6}),
}
# What bare Unicorn runs on a copy of the memory: the same, except where the host did the work.
BARE = {**{k: v[0] for k, v in EXPECTED.items()}, "h": 61}  # (h): nobody answers the hypercall


@pytest.fixture(scope="module")
def bench() -> HandlerBench:
    m = Machine()
    m.boot()
    return HandlerBench(m, relevant=2, irrelevant=5)


def _hypercalls_during(m: Machine, run) -> Counter:
    """Every hypercall made while run() runs, by name (m.hypercalls wrapped, then put back)."""
    names = {v: k for k, v in m.types.enums.items() if k.startswith("HC_")}
    seen: Counter = Counter()
    saved = dict(m.hypercalls)
    for nr, fn in saved.items():
        m.hypercalls[nr] = lambda *a, nr=nr, fn=fn: seen.update([names[nr]]) or fn(*a)
    try:
        run()
    finally:
        m.hypercalls.update(saved)
    return seen


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.key)
def test_exact_counts_per_call(bench, config):
    m = bench.m
    insns, by_function = EXPECTED[config.key]
    with config.apply(bench) as applied:
        count = bench.count(applied)
        seen = _hypercalls_during(m, lambda: m.call(LOOP, 50))
        bare = count_bare(BareGuest.copy_of(m))
    assert count.insns == insns
    assert count.by_function == by_function
    assert count.counted == insns + (1 if config.key == "i" else 0)
    assert bare == BARE[config.key]
    if config.key == "h":
        assert count.hypercalls == {"HC_FTRACE_CALLBACK": 1}
        assert seen == {"HC_FTRACE_CALLBACK": 50}  # exactly one per call
    else:
        # Only native code (or, in (i), a Unicorn hook) on the path: the host is never called.
        assert count.hypercalls == {}
        assert seen == {}
    assert count.host_entries == (1 if config.key in "hi" else 0)


def test_configurations_are_undone(bench):
    m, ft = bench.m, bench.ft
    assert ft.ops == [] and ft.private_trampolines
    assert m.mem.read(bench.leaf, 5) == NOP5
    assert m.call(LOOP, 10) == 10


def test_paths(bench):
    paths = {}
    for config in CONFIGS:
        with config.apply(bench) as applied:
            paths[config.key] = applied.path
    assert paths["b"] == "NOP5 site"
    assert paths["c"] == "own trampoline (copy of ftrace_caller) -> ftrace_empty_func"
    assert paths["d"] == "ftrace_caller -> ftrace_ops_list_func (tests 1 ops)"
    assert paths["e"] == "own trampoline (copy of ftrace_regs_caller) -> ftrace_empty_func"
    assert paths["f"] == "ftrace_caller -> ftrace_ops_list_func (tests 7 ops)"
    assert paths["h"].endswith("ftrace_host_func -> HC_FTRACE_CALLBACK (Python)")


def test_list_function_grows_per_ops(bench):
    s = bench.list_scaling()
    assert (s["insns_per_call"], s["per_relevant_ops"], s["per_irrelevant_ops"]) == (404, 44, 41)


def test_a_rip_write_in_a_code_hook_skips_the_hooked_instruction(bench):
    # What (i) relies on (Unicorn 2.1.4): the write takes effect at once, in the same
    # emu_start, and the hooked instruction does not run. Here the hook skips the leaf's
    # `lea eax, [rdi + 1]`, so no call adds anything: the loop returns whatever rax held at
    # the first call (the host call's context, the same every time), whatever the count.
    m = bench.m
    lea = bench.leaf + 6
    assert m.mem.read(lea, 3) == bytes.fromhex("8d4701")  # lea eax, [rdi + 1]

    def skip(uc, addr, size, _ud):
        uc.reg_write(x.UC_X86_REG_RIP, addr + size)

    h = m.uc.hook_add(UC_HOOK_CODE, skip, None, lea, lea)
    m.uc.ctl_remove_cache(lea, lea + 1)
    try:
        assert m.call(LOOP, 7) == m.call(LOOP, 9)
    finally:
        m.uc.hook_del(h)
        m.uc.ctl_remove_cache(lea, lea + 1)
    assert m.call(LOOP, 7) == 7


def test_cli_refuses_bad_arguments_before_booting(capsys):
    assert cli_main(["bench", "--calls", "0"]) == 1
    assert "--calls and --repeat must be positive" in capsys.readouterr().err
