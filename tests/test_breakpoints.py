"""The breakpoint engine: stops in guest tasks without int3 in the text, steps, watchpoints, interrupts."""

from __future__ import annotations

from errno import EINVAL

import pytest
from machine_util import booted_system, shell_run

from klpemu.debug.breakpoints import Debugger, StopReport
from klpemu.errors import Interrupted, KlpemuError

LP = "/sys/kernel/livepatch/livepatch_sample"


def patched_system():
    system = booted_system()
    status, _, err = shell_run(system, f"insmod livepatch-sample.ko; wait {LP}/transition 0")
    assert status == 0, err
    return system


def test_a_breakpoint_stops_sh_at_the_site_and_steps_through_the_redirect():
    system = patched_system()
    m = system.machine
    site = m.image.addr("cmdline_proc_show")
    text_before = m.mem.read(site, 5)
    stops: list[StopReport] = []
    roles: list[str] = []

    def on_stop(r: StopReport) -> None:
        stops.append(r)
        assert m.mem.read(site, 5) == text_before  # no int3: memory shows what ftrace wrote
        others = [c.regs() for c in m.cpus if c.index != r.cpu]
        step = r
        while not step.role.startswith("new function"):
            step = dbg.step(r.cpu)
            if not roles or roles[-1] != step.role:
                roles.append(step.role)
            assert len(roles) < 10
        assert [c.regs() for c in m.cpus if c.index != r.cpu] == others  # frozen meanwhile

    dbg = Debugger(m, on_stop)
    dbg.attach()
    dbg.insert_breakpoint(site)
    status, out, _ = shell_run(system, "cat /proc/cmdline")
    assert (status, out) == (0, "this has been live patched\n")
    [hit] = stops
    assert hit.format() == (
        f"cpu1 [sh:7] breakpoint at {site:x} cmdline_proc_show+0x0/0x2e: "
        "callq   0xffffffffa0000060 <ftrace_trampoline [livepatch:cmdline_proc_show]>  <site>"
    )
    assert roles == [
        "trampoline",
        "handler: klp_ftrace_handler",
        "trampoline",
        "new function: livepatch_cmdline_proc_show",
    ]
    dbg.detach()
    assert m.stop_handler is None and dbg.breakpoints == {}


def test_a_breakpoint_for_another_cpu_does_not_stop_this_one():
    hits = {}
    for cpu in (0, 1):
        system = patched_system()
        got: list[int] = []
        dbg = Debugger(system.machine, lambda r, got=got: got.append(r.cpu))
        dbg.attach()
        dbg.insert_breakpoint(system.machine.image.addr("cmdline_proc_show"), cpu=cpu)
        dbg.insert_breakpoint(system.machine.image.addr("cmdline_proc_show"), cpu=cpu)  # idempotent
        assert shell_run(system, "cat /proc/cmdline")[0] == 0
        hits[cpu] = got
    # sh runs on exactly one CPU in this (seeded) run: only that CPU's breakpoint stops it.
    assert sorted([hits[0], hits[1]]) == [[], [1]] or sorted([hits[0], hits[1]]) == [[], [0]]
    assert hits[0] == [] or hits[0] == [0]


def test_a_write_watchpoint_stops_the_timer_tick_after_it_writes_jiffies():
    system = booted_system()
    m = system.machine
    jiffies = m.image.addr("jiffies")
    before = m.mem.read_u64(jiffies)
    stops: list[StopReport] = []
    dbg = Debugger(m, stops.append)
    dbg.attach()
    dbg.insert_watchpoint(jiffies, 8, "write")
    m.run(100_000_000, until=lambda: bool(stops))
    [hit] = stops
    assert hit.reason == "watchpoint" and hit.watch == ("write", jiffies)
    assert m.mem.read_u64(jiffies) == before + 1
    dbg.remove_watchpoint("write", jiffies, 8)
    assert "stop" not in str(m.run(20_000_000))


def test_an_access_watchpoint_also_stops_on_a_write():
    m = booted_system().machine
    jiffies = m.image.addr("jiffies")
    stops: list[StopReport] = []
    dbg = Debugger(m, stops.append)
    dbg.attach()
    dbg.insert_watchpoint(jiffies, 4, "access")
    m.run(100_000_000, until=lambda: bool(stops))
    assert stops[0].reason == "watchpoint" and stops[0].watch == ("access", jiffies)
    assert stops[0].format().startswith(f"cpu{stops[0].cpu} [") and f"(access 0x{jiffies:x})" in stops[0].format()


def test_a_stop_request_interrupts_a_run_or_is_reported_to_the_debugger():
    system = booted_system()
    m = system.machine
    m.request_stop()
    with pytest.raises(Interrupted):
        m.run(10_000_000)
    stops: list[StopReport] = []
    dbg = Debugger(m, stops.append)
    dbg.attach()
    m.request_stop()
    assert m.run(1_000_000)
    assert [s.reason for s in stops] == ["interrupt"]


def test_bad_watchpoints_are_refused_and_nothing_is_left_hooked():
    m = booted_system().machine
    dbg = Debugger(m)
    for args in ((0x1000, 3, "write"), (0x1000, 8, "execute"), (2**64 - 4, 8, "read")):
        with pytest.raises(KlpemuError) as e:
            dbg.insert_watchpoint(*args)
        assert e.value.errno == EINVAL
    with pytest.raises(KlpemuError, match="no CPU 9"):
        dbg.insert_breakpoint(0x1000, cpu=9)
    assert dbg.breakpoints == {} and dbg._watches == {}


def test_a_removed_breakpoint_leaves_the_run_exactly_as_without_one():
    plain = booted_system().machine
    debugged = booted_system().machine
    dbg = Debugger(debugged)
    dbg.attach()
    dbg.insert_breakpoint(debugged.image.addr("cmdline_proc_show"))
    dbg.detach()
    for m in (plain, debugged):
        m.run(30_000_000)
    assert debugged.insns == plain.insns
    assert [c.regs() for c in debugged.cpus] == [c.regs() for c in plain.cpus]
