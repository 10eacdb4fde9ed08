"""The handler-overhead benchmark (klpemu/bench.py): exact instruction and hypercall counts, no timing.

Each configuration is applied to one booted machine, counted and undone, as benchmarks/
handler_overhead.py and `klpemu bench` do before timing it. Instructions are per call of the
traced leaf, i.e. per iteration of bench_call_loop, including the loop's own 5.
"""

from __future__ import annotations

from collections import Counter

import pytest
from machine_util import make_machine
from unicorn import UC_HOOK_CODE
from unicorn import x86_const as x

from klpemu.bench import (
    CONFIGS,
    KPROBE_POST,
    KPROBE_PRE,
    KRETPROBE_HANDLER,
    LEAF,
    LIVEPATCH_LEAF,
    LOOP,
    REPLACEMENT,
    BareGuest,
    HandlerBench,
    count_bare,
    report,
    table,
)
from klpemu.cli import main as cli_main
from klpemu.kernel.printk import records
from klpemu.kernel.text_poke import NOP5
from klpemu.machine.machine import Machine

LOOP_5 = {LOOP: 5}  # call, mov, add, cmp, jne
TRAMP = {"ftrace_caller (own copy)": 42}
REGS_TRAMP = {"ftrace_regs_caller (own copy)": 67}
KLP = "klp_ftrace_handler"
KPROBE_FTRACE = {"kprobe_ftrace_handler": 85, "get_kprobe": 13, "get_kprobe_ctlblk": 6}
KRETPROBE = {
    "pre_handler_kretprobe": 32,
    "kretprobe_get_instance": 17,
    "__kretprobe_trampoline": 45,
    "kretprobe_trampoline_handler": 20,
    "__kretprobe_trampoline_handler": 72,
    KRETPROBE_HANDLER: 3,
    "recycle_rp_inst": 19,
}
# config: (guest instructions per call, where they run)
EXPECTED = {
    "a": (10, {**LOOP_5, LEAF: 5}),  # the leaf entered past its site
    "b": (11, {**LOOP_5, LEAF: 6}),  # + the NOP5
    "c": (54, {**LOOP_5, LEAF: 6, **TRAMP, "ftrace_empty_func": 1}),
    # one DYNAMIC ops on the shared trampoline: its slot calls the list function, as Linux
    "d": (
        155,
        {
            **LOOP_5,
            LEAF: 6,
            "ftrace_caller": 42,
            "ftrace_ops_list_func": 74,
            "ftrace_ops_test": 27,
            "ftrace_empty_func": 1,
        },
    ),
    "e": (79, {**LOOP_5, LEAF: 6, "ftrace_regs_caller (own copy)": 67, "ftrace_empty_func": 1}),
    # 2 relevant + 5 irrelevant ops: 7 tests, 2 handler calls
    "f": (
        404,
        {
            **LOOP_5,
            LEAF: 6,
            "ftrace_caller": 42,
            "ftrace_ops_list_func": 145,
            "ftrace_ops_test": 204,
            "ftrace_empty_func": 2,
        },
    ),
    # redirected: bench_leaf runs only its site; the replacement runs whole, its NOP5 included
    "g": (57, {**LOOP_5, LEAF: 1, **TRAMP, "ftrace_redirect_func": 3, REPLACEMENT: 6}),
    "h": (62, {**LOOP_5, LEAF: 1, **TRAMP, "ftrace_host_func": 8, REPLACEMENT: 6}),
    # the hook's RIP write skips bench_leaf's NOP5 (not executed, though Unicorn counts it)
    "i": (11, {**LOOP_5, REPLACEMENT: 6}),
    # livepatch: klp_ftrace_handler on the leaf's own trampoline (its ops has no SAVE_REGS)
    "j": (105, {**LOOP_5, LEAF: 1, **TRAMP, KLP: 51, REPLACEMENT: 6}),
    # + the transition branch: the task's patch_state, then the func below the top one
    "k": (114, {**LOOP_5, LEAF: 1, **TRAMP, KLP: 60, REPLACEMENT: 6}),
    # nothing below: the handler leaves regs->ip alone and the leaf's own body runs
    "l": (109, {**LOOP_5, LEAF: 6, **TRAMP, KLP: 56}),
    "m": (108, {**LOOP_5, LEAF: 6, **TRAMP, KLP: 55}),  # the nop: the leaf's own body too
    "n": (105, {**LOOP_5, LEAF: 1, **TRAMP, KLP: 51, LIVEPATCH_LEAF: 6}),  # the top patch's function
    # kprobes at the fentry site: kprobe_ftrace_ops (SAVE_REGS) on a trampoline of its own
    "o": (185, {**LOOP_5, LEAF: 6, **REGS_TRAMP, **KPROBE_FTRACE, KPROBE_PRE: 3}),
    "p": (
        195,
        {**LOOP_5, LEAF: 6, **REGS_TRAMP, **KPROBE_FTRACE, "kprobe_ftrace_handler": 93, KPROBE_PRE: 3, KPROBE_POST: 2},
    ),
    # two int3s: the probe's (in bench_leaf's count, where the lea was) and the one after the copy
    "q": (
        322,
        {
            **LOOP_5,
            LEAF: 6,
            "asm_exc_int3": 88,
            "do_int3": 30,
            "poke_int3_handler": 20,
            "kprobe_int3_handler": 104,
            "get_kprobe_ctlblk": 12,
            "get_kprobe": 25,
            KPROBE_PRE: 3,
            "setup_singlestep": 27,
            "kprobe insn slot": 2,
        },
    ),
    "r": (390, {**LOOP_5, LEAF: 6, **REGS_TRAMP, **KPROBE_FTRACE, **KRETPROBE}),
    # both ops on one site: ftrace_regs_caller and the list function; the livepatch redirects
    "s": (
        580,
        {
            **LOOP_5,
            LEAF: 1,
            "ftrace_regs_caller": 67,
            "ftrace_ops_list_func": 90,
            "ftrace_ops_test": 48,
            KLP: 51,
            **KPROBE_FTRACE,
            **KRETPROBE,
            REPLACEMENT: 6,
        },
    ),
    # function_graph's entry hook, the call not graphed: pushed, filtered out, popped
    "t": (
        189,
        {
            **LOOP_5,
            LEAF: 6,
            **TRAMP,
            "ftrace_graph_func": 3,
            "prepare_ftrace_return": 72,
            "local_clock": 2,
            "trace_graph_entry": 39,
            "ftrace_lookup_ip": 20,
        },
    ),
    # graphed: entry 246 (a TRACE_GRAPH_ENT record), return 166 (return_to_handler, TRACE_GRAPH_RET)
    "u": (
        422,
        {
            **LOOP_5,
            LEAF: 6,
            **TRAMP,
            "ftrace_graph_func": 3,
            "prepare_ftrace_return": 73,
            "local_clock": 8,
            "trace_graph_entry": 123,
            "return_to_handler": 9,
            "ftrace_return_to_handler": 32,
            "trace_graph_return": 121,
        },
    ),
}
# (path, body): the loop's 5 are in neither. A replacement's body is 6, its own NOP5 included.
PARTS = {
    "a": (0, 5),
    "b": (1, 5),
    "c": (44, 5),
    "d": (145, 5),
    "e": (69, 5),
    "f": (394, 5),
    "g": (46, 6),
    "h": (51, 6),
    "i": (0, 6),
    "j": (94, 6),
    "k": (103, 6),
    "l": (99, 5),
    "m": (98, 5),
    "n": (94, 6),
    "o": (175, 5),
    "p": (185, 5),
    "q": (312, 5),
    "r": (380, 5),
    "s": (569, 6),
    "t": (179, 5),
    "u": (412, 5),
}
# What bare Unicorn runs on a copy of the memory: the same, except where the host did the work.
BARE = {**{k: v[0] for k, v in EXPECTED.items()}, "h": 61}  # (h): nobody answers the hypercall
del BARE["q"]  # bare Unicorn has no int3 delivery
del BARE["u"]  # the ring's page changes are not per call: no bare run
HOST_ENTRIES = {"h": 1, "i": 1, "q": 2}


@pytest.fixture(scope="module")
def bench() -> HandlerBench:
    m = make_machine()
    return HandlerBench(m, relevant=2, irrelevant=5)


def _hypercalls_during(m: Machine, run) -> Counter:
    """Every hypercall made while run() runs, by name (m.hypercalls wrapped, then put back)."""
    names = {v: k for k, v in m.types.enums.items() if k.startswith("HC_")}
    seen: Counter = Counter()
    with m.hypercalls.observe(lambda nr: seen.update([names[nr]])):
        run()
    return seen


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.key)
def test_exact_counts_per_call(bench, config):
    m = bench.m
    insns, by_function = EXPECTED[config.key]
    with config.apply(bench) as applied:
        count = bench.count(applied)
        seen = _hypercalls_during(m, lambda: m.call(LOOP, 50))
        bare = count_bare(BareGuest.copy_of(m)) if config.bare else None
    assert count.insns == insns
    assert count.by_function == by_function
    assert (count.parts["path"], count.parts["body"]) == PARTS[config.key]
    assert count.parts["loop"] == 5 and sum(count.parts.values()) == insns
    assert count.counted == insns + (1 if config.key == "i" else 0)
    assert bare == BARE.get(config.key)
    if config.key == "h":
        assert count.hypercalls == {"HC_FTRACE_CALLBACK": 1}
        assert seen == {"HC_FTRACE_CALLBACK": 50}  # exactly one per call
    else:
        # Only native code (or, in (i), a Unicorn hook) on the path: the host is never called.
        assert count.hypercalls == {}
        assert seen == {}
    assert count.interrupts == ({"int3": 2} if config.key == "q" else {})
    assert count.host_entries == HOST_ENTRIES.get(config.key, 0)


def test_configurations_are_undone(bench):
    m, ft = bench.m, bench.ft
    assert ft.ops == [] and ft.private_trampolines
    assert m.kernel.livepatch.patches == [] and m.kernel.livepatch.transition.patch is None
    assert m.kernel.kprobes.probes == {} and m.kernel.kprobes.table() == []
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
    klp = "own trampoline (copy of ftrace_caller) -> klp_ftrace_handler; func_stack "
    assert paths["j"] == klp + "[ftrace_selftest_leaf]; no transition"
    assert paths["k"].startswith(
        klp + "[livepatch_bench_leaf, ftrace_selftest_leaf]; 'bench_klp2' in transition, calling task "
    )
    assert paths["k"].endswith(" unpatched")
    assert paths["l"].startswith(klp + "[ftrace_selftest_leaf]; 'bench_klp' in transition, calling task ")
    assert paths["l"].endswith(" unpatched")
    assert paths["m"].startswith(
        klp + "[nop (bench_leaf), ftrace_selftest_leaf]; 'bench_klp_replace' in transition, calling task "
    )
    assert paths["m"].endswith(" patched")
    assert paths["n"] == klp + "[livepatch_bench_leaf, ftrace_selftest_leaf]; no transition"
    assert paths["o"] == (
        "own trampoline (copy of ftrace_regs_caller) -> kprobe_ftrace_handler (kprobe_ftrace_ops) "
        "-> bench_kprobe_pre_handler"
    )
    assert paths["p"] == (
        "own trampoline (copy of ftrace_regs_caller) -> kprobe_ftrace_handler "
        "(kprobe_ipmodify_ops) -> bench_kprobe_pre_handler + bench_kprobe_post_handler"
    )
    assert paths["q"].startswith(
        "int3 at bench_leaf+6 -> kprobe_int3_handler -> bench_kprobe_pre_handler; "
        "the probed instruction (3 bytes) stepped in its insn slot"
    )
    assert paths["s"].startswith(
        "ftrace_regs_caller -> ftrace_ops_list_func (tests 2 ops); "
        "func_stack [ftrace_selftest_leaf]; no transition; returns through "
        "__kretprobe_trampoline"
    )


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


# --- livepatch and kprobe configurations: how they relate ------------------------------------------


def _counts(bench, keys: str) -> dict:
    out = {}
    for config in CONFIGS:
        if config.key in keys:
            with config.apply(bench) as applied:
                out[config.key] = bench.count(applied)
    return out


def test_livepatch_handler_cases(bench):
    c = _counts(bench, "bgjklmn")
    # An unpatched task in a transition costs the handler more: the task's patch_state and the
    # func below the top one are read (9 instructions), and the call still goes to a replacement.
    assert c["k"].insns > c["j"].insns
    assert c["k"].by_function[KLP] - c["j"].by_function[KLP] == 9
    assert c["k"].parts["body"] == c["j"].parts["body"] == 6
    # Nothing below, or the nop of a replacing patch on top: the leaf's own body runs, as with
    # no livepatch at all, and nothing of a replacement does.
    for key in "lm":
        assert c[key].by_function[LEAF] == c["b"].by_function[LEAF] == 6
        assert c[key].parts["body"] == c["b"].parts["body"]
        assert REPLACEMENT not in c[key].by_function and LIVEPATCH_LEAF not in c[key].by_function
    # With no transition the depth of the func_stack costs nothing: only the top is read.
    assert c["n"].insns == c["j"].insns and c["n"].by_function[KLP] == c["j"].by_function[KLP]
    # Beside the native redirect (g): the same trampoline and target, klp_ftrace_handler instead
    # of ftrace_redirect_func.
    assert c["j"].insns - c["g"].insns == c["j"].by_function[KLP] - c["g"].by_function["ftrace_redirect_func"]


def test_kprobe_costs_add_up(bench):
    c = _counts(bench, "jopqrs")
    # The post handler: its call (2) and the handler's extra work around it (8).
    assert c["p"].insns - c["o"].insns == 10
    # An int3 probe costs more than the same probe through ftrace, and enters the host twice.
    assert c["q"].insns > c["o"].insns and c["q"].host_entries == 2 and c["o"].host_entries == 0
    # A kretprobe beside a livepatch: both handlers, the list function to reach them, and the
    # replacement's body in place of the leaf's.
    s, r, j = c["s"].by_function, c["r"].by_function, c["j"].by_function
    dispatch = s["ftrace_ops_list_func"] + s["ftrace_ops_test"]
    assert s["ftrace_regs_caller"] == r["ftrace_regs_caller (own copy)"]
    assert c["s"].insns == c["r"].insns + j[KLP] + dispatch + c["j"].parts["body"] - c["r"].parts["body"]


@pytest.mark.parametrize(
    "key, handlers",
    [
        ("o", {KPROBE_PRE}),
        ("p", {KPROBE_PRE, KPROBE_POST}),
        ("q", {KPROBE_PRE}),
        ("r", {KRETPROBE_HANDLER}),
        ("s", {KRETPROBE_HANDLER}),
    ],
)
def test_probe_handlers_run_once_per_call(bench, key, handlers):
    config = next(c for c in CONFIGS if c.key == key)
    before = bench.handler_calls()
    with config.apply(bench):
        assert bench.m.call(LOOP, 50) == 50
    after = bench.handler_calls()
    assert {k: after[k] - before[k] for k in after} == {k: 50 if k in handlers else 0 for k in after}


def test_nop_configuration_transcript(bench):
    # (m) through the livepatch core: the replacing patch's transition is held open while the
    # calling task switches, then completed; the replaced patch goes without a transition of its own.
    m = bench.m
    config = next(c for c in CONFIGS if c.key == "m")
    start = len(records(m))
    with config.apply(bench):
        pass
    lines = [r.text for r in records(m)[start:] if r.text.startswith("livepatch")]
    assert lines == [
        "livepatch: enabling patch 'bench_klp'",
        "livepatch: 'bench_klp': initializing patching transition",
        "livepatch: 'bench_klp': starting patching transition",
        "livepatch: 'bench_klp': completing patching transition",
        "livepatch: 'bench_klp': patching complete",
        "livepatch: enabling patch 'bench_klp_replace'",
        "livepatch: 'bench_klp_replace': initializing patching transition",
        "livepatch: 'bench_klp_replace': starting patching transition",
        "livepatch: 'bench_klp_replace': completing patching transition",
        "livepatch: 'bench_klp_replace': patching complete",
        "livepatch: 'bench_klp_replace': initializing unpatching transition",
        "livepatch: 'bench_klp_replace': starting unpatching transition",
        "livepatch: 'bench_klp_replace': completing unpatching transition",
        "livepatch: 'bench_klp_replace': unpatching complete",
    ]


def test_rows_without_a_bare_run(bench):
    # (q) has no bare run (bare Unicorn delivers no int3): the row, table and report say so.
    configs = {c.key: c for c in CONFIGS}
    rows = [bench.measure(configs[k], 200, 1) for k in "aq"]
    q = rows[1]
    assert (q["insns_per_call"], q["path_insns_per_call"], q["body_insns_per_call"]) == (322, 312, 5)
    assert q["interrupts_per_call"] == {"int3": 2} and q["host_entries_per_call"] == 2
    assert q["bare"] is None and q["ratio"] is None
    for r in rows:
        r["insns_over_notrace"] = r["insns_per_call"] - rows[0]["insns_per_call"]
    result = {
        "rows": rows,
        "unicorn": "x",
        "python": "y",
        "calls": 200,
        "host_calls": 200,
        "repeat": 1,
        "list_scaling": {
            "relevant": 2,
            "irrelevant": 5,
            "insns_per_call": 404,
            "per_relevant_ops": 44,
            "per_irrelevant_ops": 41,
        },
    }
    line = next(line for line in table(result).splitlines() if line.startswith("(q)"))
    assert line.split()[-2:] == ["-", "-"]
    assert "[no bare run: bare Unicorn delivers no int3]" in report(result)
