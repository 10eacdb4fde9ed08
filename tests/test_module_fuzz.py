"""The module fuzzer (klpemu/fuzz.py), and the bugs it found, each kept as a regression test."""

from __future__ import annotations

import errno
import json
import struct

import pytest
from machine_util import booted_system

from klpemu.cli import main as cli_main
from klpemu.fuzz import (
    ACCEPTED,
    BUGS,
    LEFT_BEHIND,
    MUTATORS,
    OUTCOMES,
    TRACEBACK,
    Fuzzer,
    FuzzInput,
    make_input,
    summarize,
)
from klpemu.kernel.module import ModuleError, Modules, shipped_module

# The outcomes of the CI campaign (seed 0, 300 inputs): the machine is deterministic, so a change
# here means the loader now decides differently about some damaged module, or that the shipped
# modules the inputs are drawn from changed (a new one moves every later draw). Look at which
# (replay the inputs with `python -m klpemu.fuzz --replay 0:INDEX`) before updating the numbers.
# Some inputs damage a GPL module's license tag: not GPL-compatible, it cannot link
# against the GPL-only exports it uses (klp_enable_patch, klp_shadow_*, flush_work), so is refused.
GOLDEN = {
    "refused": 108,
    "accepted": 185,
    "unload-refused": 0,
    "oops": 7,
    "hang": 0,
    "known": 0,
    "unload-leak": 0,
    "traceback": 0,
    "left-behind": 0,
}


def test_unloading_a_module_keeps_the_ftrace_records_of_modules_above_it():
    # ftrace_release_mod took the module's text ranges for (base, size) pairs: every record from
    # the module's text to the end of the address space went, the next module's with them.
    system = booted_system()
    m = system.machine
    mods = m.kernel.modules
    low = mods.load(shipped_module("hello"))
    high = mods.load(shipped_module("test_klp_callbacks_mod"))
    assert low.text_ranges()[0][0] < high.text_ranges()[0][0] and high.records
    mods.unload("hello")
    records = m.kernel.ftrace.records.ips()
    assert [ip for ip in high.records if ip not in records] == []
    assert not [ip for ip in records if any(lo <= ip < hi for lo, hi in low.text_ranges())]
    assert m.kernel.check_consistency() == []
    listed = [line for line in m.kernel.ftrace.available_filter_functions().splitlines() if "[" in line]
    assert listed == [
        "test_klp_callbacks_mod_init [test_klp_callbacks_mod]",
        "test_klp_callbacks_mod_exit [test_klp_callbacks_mod]",
    ]


# --- the fuzzer ----------------------------------------------------------------------------------

SEED, COUNT = 0, 300


@pytest.fixture(scope="module")
def fuzzer():
    return Fuzzer(booted_system())


@pytest.fixture(scope="module")
def campaign(fuzzer):
    return list(fuzzer.campaign(COUNT, SEED))


def test_inputs_are_deterministic_from_the_seed(fuzzer):
    a, b = make_input(fuzzer.targets, 7, 123), make_input(fuzzer.targets, 7, 123)
    assert a == b and a.data != next(t.data for t in fuzzer.targets if t.filename == a.module)
    assert make_input(fuzzer.targets, 8, 123).data != a.data


def test_the_unmutated_modules_load_and_unload_cleanly(fuzzer):
    # The baseline: with no damage, every shipped module is accepted and unloads to the state it
    # found, but those that cannot load alone: one needs hello's symbol, two fail on purpose.
    refused = {}
    for t in fuzzer.targets:
        r = fuzzer.run_one(FuzzInput(0, 0, t.filename, "none", "unmutated", t.data))
        if r.outcome != ACCEPTED:
            refused[t.filename] = f"{r.outcome}: {r.detail}"
    assert refused == {
        "hello_friend.ko": "refused: ENOENT: hello_friend: Unknown symbol in module",
        "init_fail.ko": "refused: EINVAL: init_fail: init failed: Invalid argument",
        "test_klp_init_fail.ko": "refused: EINVAL: test_klp_init_fail: init failed: Invalid argument",
    }


def test_a_campaign_finds_no_traceback_and_nothing_left_behind(campaign):
    found = [r.line() for r in campaign if r.outcome in BUGS]
    assert found == []
    assert len(campaign) == COUNT


def test_the_campaign_outcomes_are_the_golden_ones(campaign):
    summary = summarize(campaign, SEED, 0)
    assert summary["outcomes"] == GOLDEN, summary["outcomes"]
    assert {r.mutator for r in campaign} == set(MUTATORS)


def test_a_refusal_that_leaves_state_behind_is_reported(fuzzer, monkeypatch):
    # The classifier itself, on a loader that refuses after allocating and forgets to free.
    def leaky_load(self, source, args="", *, filename=None):
        self.m.heap.kmalloc(16)
        raise ModuleError("refused on purpose", errno.EINVAL)

    monkeypatch.setattr(Modules, "load", leaky_load)
    t = next(t for t in fuzzer.targets if t.filename == "hello.ko")
    r = fuzzer.run_one(FuzzInput(0, 0, t.filename, "none", "unmutated", t.data))
    assert (r.outcome, r.detail) == (LEFT_BEHIND, "EINVAL; heap: -[] +[(18446683600570023936, 16)]")

    def crashing_load(self, source, args="", *, filename=None):
        raise IndexError("list index out of range")

    monkeypatch.setattr(Modules, "load", crashing_load)
    r = fuzzer.run_one(FuzzInput(0, 0, t.filename, "none", "unmutated", t.data))
    assert r.outcome == TRACEBACK and r.detail.startswith("IndexError: list index out of range at ")


def test_fuzz_modules_command(tmp_path, capsys):
    out = tmp_path / "fuzz.json"
    assert cli_main(["fuzz-modules", "--count", "20", "--seed", "3", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["mutator", *OUTCOMES]
    assert "20 inputs, seed 3" in table
    data = json.loads(out.read_text())
    assert data["inputs"] == 20 and sum(data["outcomes"].values()) == 20


def test_a_section_flagged_compressed_is_refused_as_a_bad_elf(fuzzer):
    # pyelftools inflates a section flagged SHF_COMPRESSED: a zlib error escaped the loader.
    # (found as seed 1, input 7300: .rela.text's sh_flags of test_klp_mod_target.ko damaged so)
    data = bytearray(next(t.data for t in fuzzer.targets if t.filename == "test_klp_mod_target.ko"))
    shoff, shentsize, shstrndx = struct.unpack_from("<Q", data, 0x28)[0], *struct.unpack_from("<HxxH", data, 0x3A)
    strtab = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
    index = 0
    while True:
        name_at = strtab + struct.unpack_from("<I", data, shoff + index * shentsize)[0]
        if data[name_at : data.index(0, name_at)] == b".rela.text":
            break
        index += 1
    struct.pack_into("<Q", data, shoff + index * shentsize + 8, 0xBE8780C4D944EA2F)  # sh_flags
    m = fuzzer._restore().machine
    with pytest.raises(ModuleError) as e:
        m.kernel.modules.load(bytes(data), filename="test_klp_mod_target.ko")
    assert e.value.errno == errno.ENOEXEC
    assert str(e.value) == (
        "test_klp_mod_target.ko: not a valid module ELF (Error -3 while decompressing data: incorrect header check)"
    )
    assert m.kernel.modules.list() == [] and m.kernel.check_consistency() == []


def test_a_module_state_no_enumerator_has_is_shown_as_its_number(fuzzer):
    # A module's own damaged code may write over its struct module: a state outside
    # MODULE_STATE_* escaped as StopIteration from Modules.state (found as seed 1, input 3235:
    # test_klp_kprobe.ko with a symbol's st_value set to -1).
    m = fuzzer._restore().machine
    mods = m.kernel.modules
    mods.load(shipped_module("hello.ko").read_bytes(), filename="hello.ko")
    mod = mods.loaded["hello"]
    mod.struct.state = 0x5A5A
    assert mods.state(mod) == str(0x5A5A)
    assert mods.module_flags(mod) == ""
