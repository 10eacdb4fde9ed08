"""A snapshot restores into machines that run exactly as the original runs on, and that share
nothing with it or with each other."""

from __future__ import annotations

import hashlib

import pytest
from machine_util import MS, booted_system, make_machine, shell_run
from unicorn import UC_HOOK_CODE

from klpemu.kernel.printk import dmesg
from klpemu.machine.machine import Machine
from klpemu.snapshot import Snapshot, SnapshotError
from klpemu.system import System


def state(m: Machine) -> dict:
    """Everything a later run depends on or shows: memory, registers, time, the random stream."""
    ram = hashlib.sha256()
    for addr in range(0, m.mem.ram_size, 1 << 20):  # the whole of RAM, mapped or not
        ram.update(m.uc.mem_read(addr, 1 << 20))
    return {
        "ram": ram.hexdigest(),
        "regs": [(c.index, c.online, c.halted, sorted(c.pending), c.regs() if c.ctx else None) for c in m.cpus],
        "now": m.now,
        "insns": m.insns,
        "next_tick": m.next_tick,
        "rng": m.rng.getstate(),
        "dmesg": dmesg(m),
    }


def traced(m: Machine) -> list[tuple[int, int]]:
    """(address, CPU) of every instruction m executes from now on."""
    trace: list[tuple[int, int]] = []

    def hook(_uc, addr, _size, _ud):
        trace.append((addr, m.running_cpu.index if m.running_cpu is not None else -1))

    m.uc.hook_add(UC_HOOK_CODE, hook, None, 1, 0)
    m.uc.ctl_flush_tb()  # blocks translated before the hook would run uninstrumented
    return trace


@pytest.mark.parametrize(
    "extra, run_ns",
    [
        ("", 10 * MS),  # right after boot: tasks waking, sleeping, ticks, the idle loop
        ("kbusy=1", MS // 5),  # a CPU kept busy: slices end on their instruction budget
    ],
)
def test_a_restore_runs_exactly_as_the_original_runs_on(extra, run_ns):
    m = make_machine(extra)
    snap = Snapshot.take(m)
    copy = snap.restore_machine()
    assert copy is not m and copy.uc is not m.uc
    assert state(copy) == state(m)
    t_orig, t_copy = traced(m), traced(copy)
    m.run(run_ns)
    copy.run(run_ns)
    assert m.oops is None and copy.oops is None
    assert len(t_orig) > 20_000
    assert t_copy == t_orig
    assert state(copy) == state(m)


def test_two_restores_share_no_state():
    m = make_machine(settle_tasks=True)
    snap = Snapshot.take(m)
    before = state(m)
    a, b = snap.restore_machine(), snap.restore_machine()
    a.run(5 * MS)
    a.mem.write(a.var_addr("jiffies"), b"\xff" * 8)
    a.kernel.slab.objects[12345] = 1
    a.cpus[0].pending.add(0x42)
    a.call("kmalloc", 64, 0)
    assert state(b) == before == state(m)
    assert 12345 not in b.kernel.slab.objects and 0x42 not in b.cpus[0].pending
    # The restored control plane points at its own machine, all the way down.
    assert b.kernel.ftrace.m is b and b.mem.uc is b.uc and b.heap.mem is b.mem


def test_a_system_restores_with_its_console_and_files():
    system = System().boot()
    snap = Snapshot.take(system)
    copy = snap.restore()
    assert isinstance(copy, System) and copy.machine is not system.machine
    assert copy.console.m is copy.machine
    assert copy.vfs.read("/proc/cmdline") == system.vfs.read("/proc/cmdline")
    copy.vfs.write("/proc/sys/kernel/ftrace_enabled", "0")
    assert system.vfs.read("/proc/sys/kernel/ftrace_enabled") == "1\n"
    assert state(copy.machine) != state(system.machine)
    system.vfs.write("/proc/sys/kernel/ftrace_enabled", "0")
    assert state(copy.machine) == state(system.machine)


def test_a_system_in_the_middle_of_things_restores_too():
    """A livepatch in transition (its retry queued as host work), a kretprobe and the function
    tracer: the restore goes on as the original does."""
    system = booted_system()
    cmds = "insmod livepatch-sample.ko; kprobe -r version_proc_show; echo function > /sys/kernel/tracing/current_tracer"
    assert shell_run(system, cmds)[0] == 0
    assert system.machine.kernel.livepatch.transition.patch is not None
    copy = Snapshot.take(system).restore_system()
    cmds = "sleep 1100ms; cat /proc/cmdline /proc/version; kprobe -l; lsmod; conflicts; rmmod livepatch_sample"
    assert shell_run(copy, cmds) == shell_run(system, cmds)
    assert copy.machine.kernel.livepatch.transition.patch is None
    assert state(copy.machine) == state(system.machine)


def test_a_closure_over_machine_state_is_refused():
    m = make_machine()
    objects = m.kernel.slab.objects
    m.schedule_host_work(MS, lambda: objects.clear())
    with pytest.raises(SnapshotError, match="closure over mutable state"):
        Snapshot.take(m)


def test_a_bound_builtin_method_is_refused_too():
    m = make_machine()
    m.schedule_host_work(MS, m.kernel.slab.objects.clear)
    with pytest.raises(SnapshotError, match="shares its object"):
        Snapshot.take(m)


def test_a_bound_method_in_host_work_is_copied_with_its_object():
    m = make_machine()
    m.schedule_host_work(MS, m.kernel.livepatch.transition._retry)
    copy = Snapshot.take(m).restore_machine()
    assert copy._host_work[0][2].__self__ is copy.kernel.livepatch.transition
