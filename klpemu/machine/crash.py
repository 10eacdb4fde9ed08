"""Turning a guest crash into an oops report, written to the kernel log like Linux's die()."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from unicorn import UcError
from unicorn import x86_const as x

from .oops import Oops, format_registers, page_fault_headline

if TYPE_CHECKING:
    from capstone import Cs

    from .cpu import CPU
    from .machine import Machine

TRAP_NAMES = {0: "divide error", 3: "int3", 6: "invalid opcode", 13: "general protection fault"}


@cache
def _cs() -> Cs:
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.detail = True
    return cs


def _writes_memory(machine: Machine, rip: int) -> bool:
    from capstone import CS_AC_WRITE
    from capstone.x86 import X86_OP_MEM

    try:
        insn = next(_cs().disasm(machine.mem.read(rip, 16), rip), None)
    except Exception:
        return False
    if insn is None:
        return False
    return any(op.type == X86_OP_MEM and op.access & CS_AC_WRITE for op in insn.operands)


def build_oops(
    machine: Machine, cpu: CPU, error: UcError | None, fault: tuple[int, int] | None, reason: str | None
) -> Oops:
    from ..kernel.printk import LogLevel, log_store
    from ..kernel.stacktrace import Unwinder
    from ..kernel.tasks import Task

    m = machine
    regs = cpu.regs()
    user = (regs["cs"] & 3) == 3
    cr = {
        "cr2": m.uc.reg_read(x.UC_X86_REG_CR2),
        "cr3": m.uc.reg_read(x.UC_X86_REG_CR3),
        "cr4": m.uc.reg_read(x.UC_X86_REG_CR4),
    }
    headline: list[str]
    code = 0
    if fault is not None and fault[0] in (8, 14):
        addr = cr["cr2"]
        code = (0x2 if _writes_memory(m, regs["rip"]) else 0) | (0x1 if m.mem.is_mapped(addr) else 0)
        code |= 0x4 if user else 0
        headline = page_fault_headline(addr, code)
        oops_line = f"Oops: {code:04x} [#1] PREEMPT SMP"
    elif fault is not None:
        name = TRAP_NAMES.get(fault[0], f"exception {fault[0]}")
        headline = []
        oops_line = f"Oops: {name}: 0000 [#1] PREEMPT SMP"
    elif error is not None:
        headline = [f"BUG: unable to handle fault at RIP {regs['rip']:016x} ({error})"]
        oops_line = "Oops: 0000 [#1] PREEMPT SMP"
    else:
        headline = [reason or "BUG: unknown stop"]
        oops_line = ""
    task_addr = m.pcpu(cpu.index).current_task
    task = Task(m, task_addr)
    pid, comm = task.pid, task.comm
    lines = list(headline)
    if oops_line:
        lines.append(oops_line)
    tainted = m._kernel.taint.print_tainted() if m._kernel is not None else "Not tainted"
    lines.append(f"CPU: {cpu.index} PID: {pid} Comm: {comm} {tainted} 1.0 #1")
    lines.append(f"RIP: {regs['cs']:04x}:{m.image.symbolize(regs['rip'])}")
    lines += format_registers(regs, cr)
    backtrace: list[str] = []
    if not user:
        lo, hi = task.stack_base, task.stack_top
        if not lo <= regs["rsp"] < hi:  # a host call runs on its own stack
            lo = m.var_addr("hostcall_stack")
            hi = m.var_addr("hostcall_stack_top")
        trace = Unwinder(m).from_regs(regs["rip"], regs["rsp"], regs["rbp"], lo, hi)
        sentinel = m.var_addr("hostcall_return")
        backtrace = [("<host call>" if f.addr == sentinel else f.symbol) for f in trace.frames[1:] if f.kind != "user"]
        lines.append("Call Trace:")
        lines.append(" <TASK>")
        lines += [f" {s}" for s in backtrace]
        lines.append(" </TASK>")
        if oops_line and m._kernel is not None:  # __die_body: after show_regs
            lines.append(m._kernel.modules.print_modules())
    lines.append("---[ end trace 0000000000000000 ]---")
    for i, line in enumerate(lines):
        log_store(m, line, LogLevel.ALERT if i == 0 else LogLevel.WARNING)
    return Oops(headline[0] if headline else oops_line, cpu.index, pid, comm, regs, backtrace, lines)
