"""Boot-time conversion of the fentry sites (ftrace_init) and its failure report (ftrace_bug)."""

from __future__ import annotations

import pytest

from klpemu.kernel.printk import records as log_records
from klpemu.kernel.text_poke import NOP5, call_insn
from klpemu.system import System


@pytest.fixture(scope="module")
def booted():
    m = System().machine
    m.boot()
    return m


def log_texts(m):
    return [r.text for r in log_records(m)]


def test_every_site_is_a_nop_with_a_record(booted):
    m = booted
    sites = m.image.mcount_loc
    ft = m.kernel.ftrace
    assert len(ft.records) == len(sites) > 50
    assert ft.records.ips() == sites
    for i, ip in enumerate(sites):
        assert m.mem.read(ip, 5) == NOP5
        assert m.image.read_static(ip, 5) == call_insn(ip, m.image.addr("__fentry__"))
        assert ft.records.ip(i) == ip and ft.records.flags(i) == 0
    assert not ft.disabled


def test_boot_log_lines(booted):
    n = len(booted.image.mcount_loc)
    texts = log_texts(booted)
    i = texts.index(f"ftrace: allocating {n} entries in 1 pages")
    assert texts[i + 1] == "ftrace: allocated 1 pages with 1 groups"


def test_ftrace_location_lookup(booted):
    ft = booted.kernel.ftrace
    ip = booted.image.addr("cmdline_proc_show")
    assert ft.records.find(ip) is not None
    assert ft.records.find(ip + 1) is None
    assert ft.records.find(booted.image.addr("__switch_to")) is None  # notrace: no site


def test_a_site_that_does_not_match_is_an_ftrace_bug():
    m = System().machine
    bad = m.image.addr("cmdline_proc_show")
    m.mem.write(bad, b"\x90" * 5)  # a site someone else changed before ftrace_init
    m.boot()
    texts = log_texts(m)
    start = texts.index("------------[ ftrace bug ]------------")
    expected = call_insn(bad, m.image.addr("__fentry__"))
    assert texts[start : start + 9] == [
        "------------[ ftrace bug ]------------",
        "ftrace failed to modify ",
        f"[<{bad:016x}>] cmdline_proc_show+0x0/0x{m.image.lookup('cmdline_proc_show').size:x}",
        " actual:   90:90:90:90:90",
        " expected: " + ":".join(f"{b:02x}" for b in expected),
        "Initializing ftrace call sites",
        "ftrace record flags: 0",
        " (0)   ",
        f" expected tramp: {bad:x}",
    ]
    ft = m.kernel.ftrace
    assert ft.disabled
    # Conversion stopped at the bad site: the sites before it are NOPs, those after untouched.
    sites = m.image.mcount_loc
    k = sites.index(bad)
    assert len(ft.records) == k
    assert all(m.mem.read(ip, 5) == NOP5 for ip in sites[:k])
    assert all(m.mem.read(ip, 5) == m.image.read_static(ip, 5) for ip in sites[k + 1 :])
    assert m.oops is None  # ftrace is dead, the kernel runs on
