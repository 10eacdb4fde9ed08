"""The frame-pointer unwinder: /proc/<pid>/stack of real tasks, and every unreliability reason."""

from __future__ import annotations

import re

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from machine_util import MS, is_asleep, settle, task_by_comm
from machine_util import make_machine as new_machine

from klpemu.kernel.stacktrace import MAX_STACK_ENTRIES, Unwinder, unwind_task
from klpemu.kernel.tasks import TASK_RUNNING, Task

PROC_LINE = re.compile(r"^\[<0>\] \S+\+0x[0-9a-f]+/0x[0-9a-f]+$")
USER_TOP = 1 << 47
KERNEL_CS = 0x10
USER_CS = 0x33

_cs = Cs(CS_ARCH_X86, CS_MODE_64)


def symbols(trace) -> list[str]:
    return [f.symbol for f in trace.frames]


def names(trace) -> list[str]:
    return [f.symbol.split("+", 1)[0] for f in trace.frames]


def insn_after(m, func: str, mnemonic: str, op_str: str) -> tuple[int, int]:
    """(address of the first `mnemonic op_str` in func, address of the instruction after it)."""
    sym = m.image.lookup(func)
    for insn in _cs.disasm(m.mem.read(sym.addr, sym.size), sym.addr):
        if insn.mnemonic == mnemonic and insn.op_str == op_str:
            return insn.address, insn.address + insn.size
    raise AssertionError(f"no {mnemonic} {op_str} in {func}")


def inside(m, func: str, off: int) -> int:
    sym = m.image.lookup(func)
    assert off < sym.size
    return sym.addr + off


# --- sleeping tasks on a settled machine -------------------------------------------------------


def test_sleeping_kthread_proc_stack(machine):
    task = task_by_comm(machine, "khungtaskd")
    assert is_asleep(task)
    trace = unwind_task(machine, task)
    assert trace.reliable and trace.reason == ""
    lines = trace.proc_stack().splitlines()
    assert lines[0].startswith("[<0>] __schedule+")
    assert lines[-1].startswith("[<0>] ret_from_fork_asm+")
    assert lines[-2].startswith("[<0>] ret_from_fork+")
    for line in lines:
        assert PROC_LINE.match(line), line
    assert "schedule_timeout" in names(trace) and "watchdog" in names(trace)
    assert all(f.kind == "call" for f in trace.frames)


@pytest.mark.parametrize("comm", ["init", "sysmon"])
def test_sleeping_user_task_ends_in_the_syscall_entry_then_user_mode(machine, comm):
    task = task_by_comm(machine, comm)
    assert is_asleep(task) and not task.is_kthread
    trace = unwind_task(machine, task)
    assert trace.reliable, trace.reason
    assert trace.frames[0].symbol.startswith("__schedule+")
    assert trace.frames[-2].symbol.startswith("entry_INT80_64+")
    assert "do_syscall_64" in names(trace)
    user = trace.frames[-1]
    assert user.kind == "user" and user.symbol == "(user mode)"
    assert 0 < user.addr < USER_TOP
    assert user.addr == machine.struct("pt_regs", task.pt_regs).ip
    # /proc/<pid>/stack shows only kernel frames.
    lines = trace.proc_stack().splitlines()
    assert len(lines) == len(trace.frames) - 1
    assert lines[-1].startswith("[<0>] entry_INT80_64+")
    assert all(PROC_LINE.match(line) for line in lines)


def test_krecurse_default_depth_is_reliable_with_8_recursions(machine):
    task = task_by_comm(machine, "krecurse")
    assert is_asleep(task)
    trace = unwind_task(machine, task)
    assert trace.reliable, trace.reason
    assert names(trace).count("recurse_descend") == 8
    assert names(trace)[-3:] == ["recurse_thread", "ret_from_fork", "ret_from_fork_asm"]
    assert len(trace.frames) <= MAX_STACK_ENTRIES


def test_idle_tasks_unwind_from_their_cpu_registers(machine):
    for cpu in machine.cpus:
        assert cpu.halted
        idle = machine.struct("task_struct", machine.pcpu(cpu.index).idle)
        task = Task(machine, idle.addr_of())
        assert task.running_on == cpu.index
        trace = unwind_task(machine, task)
        assert trace.reliable, trace.reason
        assert trace.frames[0].kind == "ip"
        assert trace.frames[0].symbol.startswith("arch_cpu_idle+")
        assert "cpu_startup_entry" in names(trace)
        assert names(trace)[-1] == ("startup_64" if cpu.index == 0 else "secondary_startup_64")


def test_task_running_in_user_mode_has_an_empty_kernel_stack(make_machine):
    m = make_machine(cpus=1)
    assert m.run_until(lambda: m.cpus[0].user_mode, 50 * MS)
    _pid, comm = m.task_on(0)
    task = task_by_comm(m, comm)
    trace = unwind_task(m, task)
    assert trace.user_mode and trace.reliable
    assert [f.kind for f in trace.frames] == ["user"]
    assert trace.proc_stack() == ""


# --- (a) an interrupt frame: kbusy preempted in kernel mode ------------------------------------


def _kbusy_machine(make_machine):
    m = make_machine("kbusy=1", cpus=1)
    task = task_by_comm(m, "kbusy")
    busy = m.image.lookup("busy_thread")
    assert m.run_until(lambda: task.running_on == 0 and busy.contains(m.cpus[0].reg("rip")), 50 * MS)
    return m, task


def test_kbusy_is_preempted_in_kernel_mode(make_machine):
    m, task = _kbusy_machine(make_machine)
    # Runnable tasks are queued and kbusy's 3-tick slice ends within 16 ms: it must be preempted.
    assert m.run_until(lambda: task.running_on is None, 30 * MS)
    assert task.view.nivcsw >= 1


def test_preempt_count_is_balanced_across_switches(machine):
    # Idle tasks run with preemption disabled (a count of one), as Linux's do; every task
    # enters __schedule with one and new tasks drop it in schedule_tail, so after many
    # switches a halted CPU is still at exactly one.
    assert sum(machine.pcpu(cpu.index).nr_switches for cpu in machine.cpus) > len(machine.cpus)
    for cpu in machine.cpus:
        assert cpu.halted
        assert machine.pcpu(cpu.index).preempt_count == 1, f"cpu{cpu.index}"


def test_interrupt_frame_makes_the_stack_unreliable(make_machine):
    m, task = _kbusy_machine(make_machine)
    assert m.run_until(lambda: task.running_on is None, 40 * MS)
    assert task.state == TASK_RUNNING  # preempted, not asleep
    trace = unwind_task(m, task)
    assert not trace.reliable
    assert "interrupt frame" in trace.reason
    assert re.search(r"interrupted at busy_(thread|step)\+", trace.reason)
    kinds = [f.kind for f in trace.frames]
    assert kinds.count("regs") == 1
    i = kinds.index("regs")
    regs_frame = trace.frames[i]
    assert regs_frame.symbol.startswith(("busy_thread+", "busy_step+"))
    # Above the regs: the scheduler entered from the interrupt return path.
    assert names(trace)[:2] == ["__schedule", "preempt_schedule_irq"]
    assert names(trace)[i - 1] in ("common_interrupt_return", "asm_sysvec_apic_timer_interrupt")
    # Below them the walk goes on to the end of the kthread's stack.
    assert names(trace)[-2:] == ["ret_from_fork", "ret_from_fork_asm"]
    assert trace.frames[-1].kind == "call"


# --- (b) more than 100 frames -------------------------------------------------------------------


def test_more_than_100_frames_is_unreliable(make_machine):
    m = make_machine("krecurse.depth=120")
    settle(m, comms=("krecurse",))
    trace = unwind_task(m, task_by_comm(m, "krecurse"))
    assert not trace.reliable
    assert trace.reason == f"more than {MAX_STACK_ENTRIES} frames"
    # The verdict does not cut the walk short: every frame is still listed.
    assert names(trace).count("recurse_descend") == 120
    assert names(trace)[-1] == "ret_from_fork_asm"


def test_exactly_100_frames_is_still_reliable(make_machine):
    # __schedule, schedule, schedule_timeout, msleep_interruptible + N recurse_descend +
    # recurse_thread, ret_from_fork, ret_from_fork_asm
    m = make_machine("krecurse.depth=93")
    settle(m, comms=("krecurse",))
    trace = unwind_task(m, task_by_comm(m, "krecurse"))
    assert len(trace.frames) == MAX_STACK_ENTRIES
    assert trace.reliable, trace.reason


# --- corrupting a sleeping kthread's stack -----------------------------------------------------


@pytest.fixture(scope="module")
def scratch_machine():
    return new_machine(settle_tasks=True)


@pytest.fixture
def victim(scratch_machine):
    """khungtaskd asleep; its whole stack is restored after the test."""
    m = scratch_machine
    task = task_by_comm(m, "khungtaskd")
    assert is_asleep(task)
    saved = m.mem.read(task.stack_base, m.thread_size)
    before = unwind_task(m, task)
    assert before.reliable
    yield m, task
    m.mem.write(task.stack_base, saved)
    assert symbols(unwind_task(m, task)) == symbols(before)


def chain(m, task) -> list[int]:
    """The frame pointers of a sleeping task, from its inactive_task_frame up."""
    bp = m.struct("inactive_task_frame", task.view.thread.sp).bp
    out = []
    while bp and not bp & 1 and len(out) < 50:
        out.append(bp)
        bp = m.mem.read_u64(bp)
    return out


def test_frame_pointer_outside_the_stack(victim):
    m, task = victim
    frame = m.struct("inactive_task_frame", task.view.thread.sp)
    m.mem.write_u64(frame.addr_of("bp"), 0xDEAD0000)
    trace = unwind_task(m, task)
    assert not trace.reliable
    assert "outside the task's stack" in trace.reason
    assert trace.reason == "frame pointer 0xdead0000 outside the task's stack"
    assert names(trace) == ["__schedule"]


def test_frame_pointer_below_the_stack_base(victim):
    m, task = victim
    frame = m.struct("inactive_task_frame", task.view.thread.sp)
    m.mem.write_u64(frame.addr_of("bp"), task.stack_base - 0x100)
    trace = unwind_task(m, task)
    assert trace.reason == f"frame pointer 0x{task.stack_base - 0x100:x} outside the task's stack"


def test_return_address_outside_kernel_text(victim):
    m, task = victim
    bps = chain(m, task)
    assert len(bps) >= 3
    m.mem.write_u64(bps[1] + 8, 0x1234)
    trace = unwind_task(m, task)
    assert not trace.reliable
    assert "outside kernel text" in trace.reason
    assert trace.reason == "return address 0x1234 outside kernel text"
    assert trace.frames[-1].symbol == "0x1234"
    assert len(trace.frames) == 3  # __schedule, its caller, then the bad address ends the walk


def test_frame_pointer_that_does_not_move_up(victim):
    m, task = victim
    bps = chain(m, task)
    m.mem.write_u64(bps[1], bps[0])  # a loop back down the stack
    trace = unwind_task(m, task)
    assert trace.reason == f"frame pointer 0x{bps[0]:x} does not move up the stack"


def test_stack_ending_early(victim):
    m, task = victim
    bps = chain(m, task)
    m.mem.write_u64(bps[1], 0)
    trace = unwind_task(m, task)
    assert trace.reason == "the stack ends before the task's last frame"


def test_encoded_regs_pointer_outside_the_stack(victim):
    m, task = victim
    bps = chain(m, task)
    m.mem.write_u64(bps[0], 0xDEAD0000 | 1)
    trace = unwind_task(m, task)
    assert "outside the task's stack" in trace.reason
    assert trace.reason == "interrupt frame pointer 0xdead0000 outside the task's stack"


def _plant_regs(m, task, *, cs: int, ip: int, bp: int) -> int:
    """Write a pt_regs low in the (unused part of the) task's stack; returns its address."""
    regs_addr = task.stack_base + 0x200
    assert regs_addr + m.types.sizeof("pt_regs") < task.view.thread.sp
    regs = m.struct("pt_regs", regs_addr)
    regs.cs = cs
    regs.ip = ip
    regs.bp = bp
    regs.sp = regs_addr + m.types.sizeof("pt_regs")
    regs.flags = 0x202
    return regs_addr


def test_kernel_interrupt_frame_on_the_stack(victim):
    m, task = victim
    bps = chain(m, task)
    _push, after_mov = insn_after(m, "schedule_timeout", "mov", "rbp, rsp")
    ip = after_mov  # inside schedule_timeout, its frame set up
    regs_addr = _plant_regs(m, task, cs=KERNEL_CS, ip=ip, bp=bps[1])
    m.mem.write_u64(bps[0], regs_addr | 1)
    trace = unwind_task(m, task)
    assert not trace.reliable
    assert trace.reason == f"interrupt frame on the stack (interrupted at {m.image.symbolize(ip)})"
    regs = [f for f in trace.frames if f.kind == "regs"]
    assert len(regs) == 1 and regs[0].addr == ip
    # The walk resumes from the interrupted bp and reaches the end of the stack.
    assert names(trace)[-1] == "ret_from_fork_asm"


def test_user_registers_inside_the_kernel_stack(victim):
    m, task = victim
    bps = chain(m, task)
    regs_addr = _plant_regs(m, task, cs=USER_CS, ip=0x401000, bp=bps[1])
    m.mem.write_u64(bps[0], regs_addr | 1)
    trace = unwind_task(m, task)
    assert trace.reason == "user-mode registers inside the kernel stack"


# --- (e) stopped at a function's first instruction: from_regs on the host-call stack ----------


@pytest.fixture
def hostcall_stack(scratch_machine):
    m = scratch_machine
    lo, hi = m.var_addr("hostcall_stack"), m.var_addr("hostcall_stack_top")
    assert hi - lo >= 0x2000
    saved = m.mem.read(lo, hi - lo)
    yield m, lo, hi
    m.mem.write(lo, saved)


def _craft_caller_chain(m, lo, hi, callers: list[int]) -> int:
    """Frames for callers[0], callers[1], ... ending at the last frame below the top pt_regs;
    the top pt_regs are kernel-mode. Returns the first frame pointer."""
    top_regs = hi - m.types.sizeof("pt_regs")
    last_bp = top_regs - 16
    m.struct("pt_regs", top_regs).cs = KERNEL_CS
    bps = [lo + 0x1100 + 0x40 * i for i in range(len(callers) - 1)] + [last_bp]
    for i, (bp, ret) in enumerate(zip(bps, callers, strict=True)):
        m.mem.write_u64(bp, bps[i + 1] if i + 1 < len(bps) else 0)
        m.mem.write_u64(bp + 8, ret)
    return bps[0]


def test_stopped_at_first_instruction_reads_the_caller_from_the_stack_top(hostcall_stack):
    m, lo, hi = hostcall_stack
    ip = m.image.addr("schedule_timeout")  # the fentry call: nothing of the frame built yet
    caller = inside(m, "msleep_interruptible", 0x10)
    grand = inside(m, "recurse_descend", 0x8)
    last = inside(m, "ret_from_fork", 0x8)
    sp = lo + 0x1000
    m.mem.write_u64(sp, caller)
    bp = _craft_caller_chain(m, lo, hi, [grand, last])
    trace = Unwinder(m).from_regs(ip, sp, bp, lo, hi)
    assert trace.reliable, trace.reason
    assert [f.kind for f in trace.frames] == ["ip", "call", "call", "call"]
    assert trace.frames[0].symbol == m.image.symbolize(ip) and trace.frames[0].symbol.startswith(
        "schedule_timeout+0x0/"
    )
    assert trace.frames[1].addr == caller  # frame 2: the caller, read from the stack top
    assert trace.frames[1].symbol == m.image.symbolize_return(caller)
    assert names(trace) == ["schedule_timeout", "msleep_interruptible", "recurse_descend", "ret_from_fork"]


def test_stopped_between_push_and_mov_reads_the_caller_above_the_saved_bp(hostcall_stack):
    m, lo, hi = hostcall_stack
    _push, mov = insn_after(m, "schedule_timeout", "push", "rbp")  # ip at the mov: rbp pushed
    caller = inside(m, "msleep_interruptible", 0x10)
    bp = _craft_caller_chain(m, lo, hi, [inside(m, "ret_from_fork", 0x8)])
    sp = lo + 0x1000
    m.mem.write_u64(sp, bp)  # the pushed rbp
    m.mem.write_u64(sp + 8, caller)
    trace = Unwinder(m).from_regs(mov, sp, bp, lo, hi)
    assert trace.reliable, trace.reason
    assert names(trace) == ["schedule_timeout", "msleep_interruptible", "ret_from_fork"]


def test_stopped_at_ret_reads_the_caller_from_the_stack_top(hostcall_stack):
    m, lo, hi = hostcall_stack
    sym = m.image.lookup("schedule_timeout")
    ret = next(i.address for i in _cs.disasm(m.mem.read(sym.addr, sym.size), sym.addr) if i.mnemonic == "ret")
    caller = inside(m, "msleep_interruptible", 0x10)
    bp = _craft_caller_chain(m, lo, hi, [inside(m, "ret_from_fork", 0x8)])
    sp = lo + 0x1000
    m.mem.write_u64(sp, caller)
    trace = Unwinder(m).from_regs(ret, sp, bp, lo, hi)
    assert names(trace) == ["schedule_timeout", "msleep_interruptible", "ret_from_fork"]


def test_stopped_at_first_instruction_with_a_bad_caller(hostcall_stack):
    m, lo, hi = hostcall_stack
    sp = lo + 0x1000
    m.mem.write_u64(sp, 0x4242)
    bp = _craft_caller_chain(m, lo, hi, [inside(m, "ret_from_fork", 0x8)])
    trace = Unwinder(m).from_regs(m.image.addr("schedule_timeout"), sp, bp, lo, hi)
    assert not trace.reliable
    assert trace.reason == "return address 0x4242 outside kernel text"
