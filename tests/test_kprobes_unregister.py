"""Unregistering a kprobe or kretprobe while a CPU is inside it: nothing it uses is freed until
no CPU is (synchronize_rcu in unregister_kprobes), from the host and from a module's exit."""

from __future__ import annotations

from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from machine_util import MS, booted_system, task_by_comm

from klpemu.machine.machine import DEFAULT_CMDLINE
from klpemu.system import System


def busy_system() -> System:
    return booted_system(cmdline=DEFAULT_CMDLINE + " kbusy=1")


def stepped_copy_probe(m):
    """A probe on busy_step whose instruction is stepped out of line, and the CPU kbusy runs on."""
    sym = m.image.lookup("busy_step")
    insns = list(Cs(CS_ARCH_X86, CS_MODE_64).disasm(m.mem.read(sym.addr, sym.size), sym.addr))
    target = next(i for i in insns[1:] if i.mnemonic in ("imul", "mov", "movabs", "lea"))
    kp = m.kernel.kprobes
    probe = kp.add_kprobe("busy_step", target.address - sym.addr, pre_handler=lambda p, r: 0)
    assert kp.view(probe).ainsn.emulate_op == 0
    task = task_by_comm(m, "kbusy")
    assert m.run_until(lambda: task.running_on is not None, 100 * MS)
    return probe, task.running_on


def test_unregister_waits_for_a_cpu_stepping_the_copy():
    system = busy_system()
    m = system.machine
    kp = m.kernel.kprobes
    probe, cpu = stepped_copy_probe(m)
    slot = kp.view(probe).ainsn.insn
    for _ in m.step(cpu, 20_000):
        if m.cpus[cpu].reg("rip") == slot:
            break
    assert m.cpus[cpu].reg("rip") == slot and not kp.quiescent()
    kp.unregister(probe)
    assert kp.quiescent() and slot not in m.heap._sizes
    m.run(20 * MS)
    assert m.oops is None
    assert m.read_var_int("busy_rounds") > 0


def test_a_module_exit_unregistering_waits_too():
    """A guest unregister that finds a CPU inside the probe gets -EAGAIN until it left."""
    system = busy_system()
    m = system.machine
    kp = m.kernel.kprobes
    probe, cpu = stepped_copy_probe(m)
    slot = kp.view(probe).ainsn.insn
    for _ in m.step(cpu, 20_000):
        if m.cpus[cpu].reg("rip") == slot:
            break
    other = next(c for c in m.cpus if c.index != cpu)
    from klpemu.kernel.kprobes.core import EAGAIN

    # The hypercall as the other CPU makes it: the top half, then a wait.
    unregister = m.hypercalls[m.hypercalls.number("HC_KPROBE_UNREGISTER")]
    m._running = other
    try:
        assert unregister(probe) == -EAGAIN
        assert kp.get_kprobe(kp.view(probe).addr) == 0 and slot in m.heap._sizes
        assert unregister(probe) == -EAGAIN
    finally:
        m._running = None
    for _ in m.step(cpu, 5_000):
        if not kp.inside(m.cpus[cpu]):
            break
    m._running = other
    try:
        assert unregister(probe) == 0
    finally:
        m._running = None
    assert slot not in m.heap._sizes
    m.run(20 * MS)
    assert m.oops is None


def test_unregistering_a_kretprobe_waits_for_its_return_handler():
    system = busy_system()
    m = system.machine
    rps = m.kernel.kprobes.kretprobes
    hits = []
    rp = rps.add("busy_step", handler=lambda ri, regs: hits.append(ri.ret_addr) or 0)
    task = task_by_comm(m, "kbusy")
    assert m.run_until(lambda: task.running_on is not None and bool(hits), 100 * MS)
    cpu = task.running_on
    handler = m.image.lookup("kretprobe_trampoline_handler")
    for _ in m.step(cpu, 20_000):
        if handler.addr <= m.cpus[cpu].reg("rip") < handler.addr + handler.size:
            break
    assert not m.kernel.kprobes.quiescent()
    instances = list(rps.registered[rp].instances)
    rps.unregister(rp)
    assert m.kernel.kprobes.quiescent()
    m.run(20 * MS)
    rps.reap_orphans()
    assert m.oops is None
    assert not any(ri in m.heap._sizes for ri in instances) and rp not in m.heap._sizes
