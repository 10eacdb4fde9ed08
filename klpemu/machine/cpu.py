"""One emulated CPU: its saved register context, halt state and pending interrupts.

All CPUs share one Unicorn instance (one memory, one translation cache); each keeps a saved
context that the machine restores to run it. Interrupt delivery is done here the way the
hardware does it: look up the IDT gate, switch to the TSS stack when leaving user mode, push
the interrupt frame, and enter the handler with interrupts off.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from unicorn import Uc
from unicorn import x86_const as x

if TYPE_CHECKING:
    from .memory import GuestMemory

EFLAGS_TF = 1 << 8
EFLAGS_IF = 1 << 9
EFLAGS_NT = 1 << 14
EFLAGS_RF = 1 << 16

GPRS = [
    ("rax", x.UC_X86_REG_RAX),
    ("rbx", x.UC_X86_REG_RBX),
    ("rcx", x.UC_X86_REG_RCX),
    ("rdx", x.UC_X86_REG_RDX),
    ("rsi", x.UC_X86_REG_RSI),
    ("rdi", x.UC_X86_REG_RDI),
    ("rbp", x.UC_X86_REG_RBP),
    ("rsp", x.UC_X86_REG_RSP),
    ("r8", x.UC_X86_REG_R8),
    ("r9", x.UC_X86_REG_R9),
    ("r10", x.UC_X86_REG_R10),
    ("r11", x.UC_X86_REG_R11),
    ("r12", x.UC_X86_REG_R12),
    ("r13", x.UC_X86_REG_R13),
    ("r14", x.UC_X86_REG_R14),
    ("r15", x.UC_X86_REG_R15),
    ("rip", x.UC_X86_REG_RIP),
    ("eflags", x.UC_X86_REG_EFLAGS),
    ("cs", x.UC_X86_REG_CS),
    ("ss", x.UC_X86_REG_SS),
]
REG_IDS = dict(GPRS)


class InterruptError(Exception):
    """The CPU could not deliver an interrupt (no gate, privilege violation)."""


@dataclass
class CPU:
    index: int
    ctx: Any = None  # UcContext
    online: bool = False
    halted: bool = False
    pending: set[int] = field(default_factory=set)
    kernel_ctx: Any = None  # a ring-0 context of this CPU, the base for entries from user mode
    undelivered_since: int | None = None  # emulated ns since when an interrupt waits on IF=0
    last_switches: int = 0
    last_progress_ns: int = 0

    def reg(self, name: str) -> int:
        return self.ctx.reg_read(REG_IDS[name])

    def regs(self) -> dict[str, int]:
        return {name: self.ctx.reg_read(rid) for name, rid in GPRS}

    @property
    def user_mode(self) -> bool:
        return (self.reg("cs") & 3) == 3


def live_regs(uc: Uc) -> dict[str, int]:
    return {name: uc.reg_read(rid) for name, rid in GPRS}


def deliver_interrupt(uc: Uc, mem: GuestMemory, vector: int, *, software: bool = False, kernel_ctx=None) -> int:
    """Enter the guest's handler for vector on the live CPU state; returns the handler address.

    For a software interrupt (int n) the live RIP is already the next instruction, which is what
    the frame must hold; for an external interrupt it is the interrupted instruction.

    Unicorn keeps the privilege level in hidden CPU flags that segment-register writes do not
    update, so an entry from user mode rebuilds the state on `kernel_ctx`, a saved ring-0
    context of the same CPU (same GDT and TSS), and copies the general registers into it.
    """
    _, idt_base, idt_limit, _ = uc.reg_read(x.UC_X86_REG_IDTR)
    if vector * 16 + 15 > idt_limit:
        raise InterruptError(f"vector 0x{vector:x} beyond the IDT limit")
    lo, hi = struct.unpack("<QQ", mem.read(idt_base + vector * 16, 16))
    bits = (lo >> 32) & 0xFFFF
    if not bits & 0x8000:
        raise InterruptError(f"no handler for vector 0x{vector:x}")
    handler = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000) | ((hi & 0xFFFFFFFF) << 32)
    gate_dpl = (bits >> 13) & 3
    cs = uc.reg_read(x.UC_X86_REG_CS)
    cpl = cs & 3
    if software and gate_dpl < cpl:
        raise InterruptError(f"int 0x{vector:x} from ring {cpl} through a ring-{gate_dpl} gate (#GP)")
    ss = uc.reg_read(x.UC_X86_REG_SS)
    rsp = uc.reg_read(x.UC_X86_REG_RSP)
    rflags = uc.reg_read(x.UC_X86_REG_EFLAGS)
    rip = uc.reg_read(x.UC_X86_REG_RIP)
    if cpl != 0:
        if kernel_ctx is None:
            raise InterruptError("entry from user mode before the CPU has a kernel context")
        _, tss_base, _, _ = uc.reg_read(x.UC_X86_REG_TR)
        new_rsp = mem.read_u64(tss_base + 4)  # tss.sp0
        saved = [(rid, uc.reg_read(rid)) for name, rid in GPRS[:16] if name != "rsp"]
        uc.context_restore(kernel_ctx)  # its CS and SS are the gate's kernel selectors
        for rid, value in saved:
            uc.reg_write(rid, value)
    else:
        new_rsp = rsp
    new_rsp = (new_rsp & ~0xF) - 5 * 8
    mem.write(new_rsp, struct.pack("<5Q", rip, cs, rflags, rsp, ss))
    uc.reg_write(x.UC_X86_REG_RSP, new_rsp)
    cleared = EFLAGS_TF | EFLAGS_NT | EFLAGS_RF
    if (bits >> 8) & 0xF == 0xE:  # interrupt gate, not trap gate
        cleared |= EFLAGS_IF
    uc.reg_write(x.UC_X86_REG_EFLAGS, rflags & ~cleared)
    uc.reg_write(x.UC_X86_REG_RIP, handler)
    return handler
