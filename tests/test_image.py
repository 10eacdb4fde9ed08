"""The kernel image: fentry sites against __mcount_loc, symbols with sympos, symbolization."""

from __future__ import annotations

import re
import struct

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from klpemu.errors import KlpemuError

# C functions built notrace (no fentry site), across the firmware.
NOTRACE_C = [
    "__switch_to",
    "copy_thread",
    "cpu_init",
    "printk",
    "vsnprintf",
    "local_clock",
    "klp_update_patch_state",
    "scheduler_tick",
    "update_process_times",
    "run_timers",
    "irq_enter",
    "irq_exit",
]
# Functions written in assembly: never compiled with -pg.
ASM_FUNCS = [
    "__fentry__",
    "arch_cpu_idle",
    "__switch_to_asm",
    "entry_INT80_64",
    "ret_from_fork_asm",
    "asm_sysvec_apic_timer_interrupt",
]
TRACEABLE = [
    "cmdline_proc_show",
    "meminfo_proc_show",
    "schedule_timeout",
    "recurse_descend",
    "busy_thread",
    "do_syscall_64",
    "wake_up_process",
    "msleep_interruptible",
]

SYMBOLIZED = re.compile(r"^(\S+)\+0x([0-9a-f]+)/0x([0-9a-f]+)$")


def calls_fentry(image, addr: int) -> bool:
    """Whether the image, as built, has `call __fentry__` (e8 rel32) at addr."""
    code = image.read_static(addr, 5)
    if code[0] != 0xE8:
        return False
    return addr + 5 + struct.unpack("<i", code[1:])[0] == image.addr("__fentry__")


def test_mcount_loc_is_a_sorted_set_of_text_addresses(image):
    sites = image.mcount_loc
    assert len(sites) > 50
    assert sites == sorted(set(sites))
    assert all(image.is_kernel_text(a) for a in sites)


def test_every_function_starting_with_an_fentry_call_is_listed_and_nothing_else(image):
    starting = {f.addr for f in image.functions() if f.size >= 5 and calls_fentry(image, f.addr)}
    assert starting, "no function starts with call __fentry__"
    assert starting == set(image.mcount_loc)


def test_every_mcount_loc_entry_is_offset_0_of_a_function_calling_fentry(image):
    func_starts = {f.addr: f for f in image.functions()}
    for site in image.mcount_loc:
        assert site in func_starts, f"{image.symbolize(site)} is not the start of a func symbol"
        assert calls_fentry(image, site), f"{image.symbolize(site)}: no call __fentry__ there"
        assert image.symbolize(site).startswith(func_starts[site].name + "+0x0/")


def test_no_call_to_fentry_anywhere_but_a_function_entry(image):
    """Disassemble every function: the only calls to __fentry__ are the listed sites."""
    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    fentry = image.addr("__fentry__")
    calls = []
    for f in image.functions():
        if not image.is_kernel_text(f.addr) or f.size == 0:
            continue
        for insn in cs.disasm(image.read_static(f.addr, f.size), f.addr):
            if insn.mnemonic == "call" and insn.op_str == hex(fentry):
                calls.append(insn.address)
    assert sorted(calls) == image.mcount_loc


@pytest.mark.parametrize("name", NOTRACE_C)
def test_notrace_c_functions_have_no_fentry_site(image, name):
    sym = image.lookup(name)
    assert sym.kind == "func" and sym.size > 0
    assert not calls_fentry(image, sym.addr)
    assert not any(sym.contains(site) for site in image.mcount_loc)


@pytest.mark.parametrize("name", ASM_FUNCS)
def test_asm_functions_have_no_fentry_site(image, name):
    sym = image.lookup(name)
    assert image.is_kernel_text(sym.addr)
    assert sym.addr not in image.mcount_loc
    assert not any(sym.contains(site) for site in image.mcount_loc)
    if sym.size >= 5:
        assert not calls_fentry(image, sym.addr)


@pytest.mark.parametrize("name", TRACEABLE)
def test_traceable_functions_have_the_site_at_their_first_byte(image, name):
    sym = image.lookup(name)
    assert sym.kind == "func"
    assert sym.addr in image.mcount_loc
    assert calls_fentry(image, sym.addr)


def test_fentry_itself_is_a_bare_return(image):
    sym = image.lookup("__fentry__")
    assert image.read_static(sym.addr, 1) == b"\xc3"


def test_duplicate_static_function_has_sympos_in_address_order(image):
    dups = image.by_name["get_idle_time"]
    assert len(dups) == 2
    assert [s.sympos for s in dups] == [1, 2]
    assert dups[0].addr < dups[1].addr
    assert all(s.kind == "func" and s.local for s in dups)
    assert image.lookup("get_idle_time", 1) == dups[0]
    assert image.lookup("get_idle_time", 2) == dups[1]
    assert image.addr("get_idle_time", 2) == dups[1].addr
    # Both copies are ordinary traceable functions.
    assert all(s.addr in image.mcount_loc for s in dups)


def test_ambiguous_lookup_with_sympos_0_is_einval(image):
    with pytest.raises(KlpemuError) as e:
        image.lookup("get_idle_time", 0)
    assert e.value.errno == 22
    assert "ambiguity" in str(e.value) and "2 matches" in str(e.value)
    with pytest.raises(KlpemuError) as e:
        image.addr("get_idle_time")
    assert e.value.errno == 22


def test_lookup_of_a_missing_symbol_or_position_is_einval(image):
    with pytest.raises(KlpemuError) as e:
        image.lookup("no_such_function_anywhere")
    assert e.value.errno == 22
    with pytest.raises(KlpemuError) as e:
        image.lookup("get_idle_time", 3)
    assert e.value.errno == 22
    # A unique name resolves at sympos 0 and 1 alike.
    assert image.lookup("schedule_timeout", 0) == image.lookup("schedule_timeout", 1)


def test_symbols_count_sympos_per_name(image):
    for name, syms in image.by_name.items():
        assert [s.sympos for s in syms] == list(range(1, len(syms) + 1)), name
        assert [s.addr for s in syms] == sorted(s.addr for s in syms), name


def test_symbolize_formats_func_offset_size(image):
    sym = image.lookup("schedule_timeout")
    assert image.symbolize(sym.addr) == f"schedule_timeout+0x0/0x{sym.size:x}"
    assert image.symbolize(sym.addr + 0x1B) == f"schedule_timeout+0x1b/0x{sym.size:x}"
    assert image.symbolize(sym.addr + sym.size - 1) == f"schedule_timeout+0x{sym.size - 1:x}/0x{sym.size:x}"
    for site in image.mcount_loc[:20]:
        m = SYMBOLIZED.match(image.symbolize(site + 5))
        assert m and m.group(2) == "5"
    dup = image.lookup("get_idle_time", 2)
    assert image.symbolize(dup.addr + 4) == f"get_idle_time+0x4/0x{dup.size:x}"


def test_symbolize_outside_text_is_a_bare_address(image):
    assert image.symbolize(0x1234) == "0x1234"
    assert image.symbolize(0xDEAD0000) == "0xdead0000"


def test_symbolize_return_looks_one_byte_back(image):
    """%pB: a return address right after a noreturn call at a function's end stays in that function."""
    sym = image.lookup("schedule_timeout")
    end = sym.addr + sym.size
    assert image.symbolize_return(end) == f"schedule_timeout+0x{sym.size:x}/0x{sym.size:x}"
    assert image.symbolize_return(sym.addr + 7) == f"schedule_timeout+0x7/0x{sym.size:x}"


def test_read_static_refuses_addresses_outside_the_image(image):
    with pytest.raises(KlpemuError) as e:
        image.read_static(0x10, 4)
    assert e.value.errno == 14
