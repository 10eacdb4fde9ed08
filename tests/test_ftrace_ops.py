"""ftrace_ops: registration errors, record flags, the trampoline each ops mix gets, redirects."""

from __future__ import annotations

import pytest
from machine_util import make_machine

from klpemu.errors import KlpemuError
from klpemu.kernel.ftrace.core import REC, REF_MASK
from klpemu.kernel.ftrace.ops import FL
from klpemu.kernel.text_poke import NOP5, call_insn
from klpemu.machine.console import Console
from klpemu.system import System

FUNC = "cmdline_proc_show"


@pytest.fixture
def m():
    machine = make_machine()
    return machine


def rec(m, name=FUNC):
    ft = m.kernel.ftrace
    return ft.records.flags(ft.records.find(m.image.addr(name)))


def target(m, name=FUNC):
    return m.kernel.ftrace.site_target(m.image.addr(name))


def snapshot(m):
    """Every site's bytes, every record, the guest ops list: what a failed call must not change."""
    ft = m.kernel.ftrace
    sites = [m.mem.read(ip, 5) for ip in ft.records.ips()]
    flags = [ft.records.flags(i) for i in range(len(ft.records))]
    return sites, flags, m.read_var_int("ftrace_ops_list"), list(ft.ops)


def test_one_ops_gets_a_private_trampoline(m):
    ft = m.kernel.ftrace
    ops = ft.ops_native("one", "ftrace_empty_func")
    ft.set_filter(ops, [FUNC])
    ft.register(ops)
    tramp = m.struct("ftrace_ops", ops.addr).trampoline
    assert tramp and m.heap.is_text(tramp)
    assert target(m) == tramp
    assert rec(m) == 1 | REC["ENABLED"] | REC["TRAMP"] | REC["TRAMP_EN"] | REC["TOUCHED"]
    assert ft.flags(ops) & (FL["ENABLED"] | FL["DYNAMIC"]) == FL["ENABLED"] | FL["DYNAMIC"]
    assert target(m, "meminfo_proc_show") is None  # filtered out: still a NOP
    ft.unregister(ops)
    assert m.mem.read(m.image.addr(FUNC), 5) == NOP5
    assert rec(m) == REC["TOUCHED"]  # count 0; TOUCHED stays, as Linux keeps it
    assert m.struct("ftrace_ops", ops.addr).trampoline == 0


def test_two_ops_share_ftrace_caller_and_the_list_function(m):
    ft = m.kernel.ftrace
    a, b = ft.ops_native("a", "ftrace_empty_func"), ft.ops_native("b", "ftrace_empty_func")
    for o in (a, b):
        ft.set_filter(o, [FUNC])
        ft.register(o)
    assert target(m) == m.image.addr("ftrace_caller")
    assert rec(m) & REF_MASK == 2 and not rec(m) & REC["TRAMP"] and rec(m) & REC["ENABLED"]
    slot = m.image.addr("ftrace_call")
    assert m.mem.read(slot, 5) == call_insn(slot, m.image.addr("ftrace_ops_list_func"))
    # The guest list is newest first and ends at ftrace_list_end.
    assert m.read_var_int("ftrace_ops_list") == b.addr
    assert m.struct("ftrace_ops", b.addr).next == a.addr
    assert m.struct("ftrace_ops", a.addr).next == m.var_addr("ftrace_list_end")
    ft.unregister(b)  # back to one user: its private trampoline again
    assert target(m) == m.struct("ftrace_ops", a.addr).trampoline
    assert rec(m) & REF_MASK == 1 and rec(m) & REC["TRAMP"]


def test_save_regs_ops_uses_ftrace_regs_caller(m):
    ft = m.kernel.ftrace
    plain = ft.ops_native("plain", "ftrace_empty_func")
    regs = ft.ops_native("regs", "ftrace_empty_func", FL["SAVE_REGS"])
    for o in (plain, regs):
        ft.set_filter(o, [FUNC])
        ft.register(o)
    assert target(m) == m.image.addr("ftrace_regs_caller")
    assert rec(m) & REC["REGS"] and rec(m) & REC["REGS_EN"]
    ft.unregister(regs)
    assert not rec(m) & (REC["REGS"] | REC["REGS_EN"])


def test_shared_trampolines_without_private_ones(m):
    ft = m.kernel.ftrace
    ft.private_trampolines = False
    ops = ft.ops_native("solo", "ftrace_empty_func")
    ft.set_filter(ops, [FUNC])
    ft.register(ops)
    assert target(m) == m.image.addr("ftrace_caller")
    # One DYNAMIC ops: the shared slot still goes through the list function, as Linux does.
    slot = m.image.addr("ftrace_call")
    assert m.mem.read(slot, 5) == call_insn(slot, m.image.addr("ftrace_ops_list_func"))


def test_ipmodify_flags_and_the_second_ipmodify_ops(m):
    ft = m.kernel.ftrace
    first = ft.ops_native("first", "ftrace_redirect_func", FL["IPMODIFY"])
    ft.set_filter(first, [FUNC])
    ft.register(first)
    assert rec(m) & REC["IPMODIFY"] and rec(m) & REC["MODIFIED"]
    second = ft.ops_native("second", "ftrace_redirect_func", FL["IPMODIFY"])
    ft.set_filter(second, [FUNC, "meminfo_proc_show"])
    before = snapshot(m)
    with pytest.raises(KlpemuError) as e:
        ft.register(second)
    assert e.value.errno == 16
    assert snapshot(m) == before
    ft.unregister(first)
    assert rec(m) & REC["MODIFIED"] and not rec(m) & REC["IPMODIFY"]  # MODIFIED is sticky
    ft.register(second)  # now it may


def test_ipmodify_with_an_empty_filter_is_einval(m):
    ft = m.kernel.ftrace
    ops = ft.ops_native("all", "ftrace_redirect_func", FL["IPMODIFY"])
    with pytest.raises(KlpemuError) as e:
        ft.register(ops)
    assert e.value.errno == 22


@pytest.mark.parametrize("patterns, errno", [([0x1234], 22), (["no_such_fn"], 22), (["__switch_to"], 22)])
def test_filter_errors(m, patterns, errno):
    ft = m.kernel.ftrace
    ops = ft.ops_native("f", "ftrace_empty_func")
    with pytest.raises(KlpemuError) as e:
        ft.set_filter(ops, patterns)
    assert e.value.errno == errno


def test_filter_by_glob_and_removing_an_absent_ip(m):
    ft = m.kernel.ftrace
    ops = ft.ops_native("g", "ftrace_empty_func")
    ft.set_filter(ops, ["*_proc_show"])
    names = {ft.symbol_of(ip) for ip in ops.filter}
    assert {"cmdline_proc_show", "meminfo_proc_show", "version_proc_show", "uptime_proc_show"} <= names
    with pytest.raises(KlpemuError) as e:
        ft.set_filter(ops, ["schedule_timeout"], remove=True)
    assert e.value.errno == 2


def test_registering_twice_and_unregistering_an_unknown_ops(m):
    ft = m.kernel.ftrace
    ops = ft.ops_native("twice", "ftrace_empty_func")
    ft.set_filter(ops, [FUNC])
    ft.register(ops)
    with pytest.raises(KlpemuError) as e:
        ft.register(ops)
    assert e.value.errno == 16
    other = ft.ops_native("never", "ftrace_empty_func")
    with pytest.raises(KlpemuError) as e:
        ft.unregister(other)
    assert e.value.errno == 16


def test_ftrace_enabled_and_permanent_ops(m):
    ft = m.kernel.ftrace
    perm = ft.ops_native("perm", "ftrace_empty_func", FL["PERMANENT"])
    ft.set_filter(perm, [FUNC])
    ft.register(perm)
    with pytest.raises(KlpemuError) as e:
        ft.set_sysctl_enabled(False)
    assert e.value.errno == 16
    ft.unregister(perm)
    ft.set_sysctl_enabled(False)
    with pytest.raises(KlpemuError) as e:
        ft.register(perm)
    assert e.value.errno == 16
    plain = ft.ops_native("plain", "ftrace_empty_func")
    ft.set_filter(plain, [FUNC])
    ft.register(plain)  # allowed, but sites stay NOPs while ftrace_enabled is 0
    assert m.mem.read(m.image.addr(FUNC), 5) == NOP5
    ft.set_sysctl_enabled(True)
    assert target(m) is not None


def test_disabled_ftrace_refuses_with_enodev():
    m = System().machine
    m.mem.write(m.image.addr("meminfo_proc_show"), b"\x90" * 5)
    m.boot()
    ft = m.kernel.ftrace
    ops = ft.ops_native("late", "ftrace_empty_func")
    with pytest.raises(KlpemuError) as e:
        ft.register(ops)
    assert e.value.errno == 19


def test_native_redirect_through_a_private_trampoline(m):
    ft = m.kernel.ftrace
    con = Console(m)
    original, version = con.read_file("/proc/cmdline"), con.read_file("/proc/version")
    ops = ft.ops_native("redirect", "ftrace_redirect_func", FL["IPMODIFY"])
    m.struct("ftrace_ops", ops.addr).private = m.image.addr("version_proc_show")
    ft.set_filter(ops, [FUNC])
    calls = []
    cb = m.types.enum("HC_FTRACE_CALLBACK")
    with m.hypercalls.override(cb, lambda *a: calls.append(a) or 0):
        ft.register(ops)
        assert con.read_file("/proc/cmdline") == version
        assert calls == []  # no Python on a path only native ops handle
        ft.unregister(ops)
        assert con.read_file("/proc/cmdline") == original


def test_python_callback_ops_sees_the_call_and_can_redirect(m):
    ft = m.kernel.ftrace
    con = Console(m)
    seen = []
    version = m.image.addr("version_proc_show")

    def handler(ip, parent_ip, regs):
        seen.append((ip, m.image.function_at(parent_ip).name))
        regs.ip = version

    ops = ft.ops_python("py", handler, FL["IPMODIFY"] | FL["SAVE_REGS"])
    ft.set_filter(ops, [FUNC])
    ft.register(ops)
    assert con.read_file("/proc/cmdline") == con.read_file("/proc/version")
    assert seen and seen[0][0] == m.image.addr(FUNC)
    assert seen[0][1] == "seq_read_iter"


def test_a_python_handler_that_raises_stops_the_machine_with_an_oops(m):
    ft = m.kernel.ftrace

    def broken(ip, parent_ip, regs):
        raise ValueError("handler bug")

    ops = ft.ops_python("broken", broken)
    ft.set_filter(ops, [FUNC])
    ft.register(ops)
    with pytest.raises(KlpemuError):
        Console(m).read_file("/proc/cmdline")
    assert m.oops is not None
    assert m.oops.lines[0] == "hypercall 7 failed in the host: ValueError: handler bug"
    assert "ftrace_host_func" in "\n".join(m.oops.lines)
