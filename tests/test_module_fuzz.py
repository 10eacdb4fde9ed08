"""The module fuzzer (klpemu/fuzz.py), and the bugs it found, each kept as a regression test."""

from __future__ import annotations

from machine_util import booted_system

from klpemu.kernel.module import shipped_module


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
