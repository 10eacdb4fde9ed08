"""Oops reports: what a guest crash looks like, in the kernel's words."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Oops:
    """A stopped machine's crash report. `lines` is what the kernel log shows."""

    reason: str
    cpu: int
    pid: int
    comm: str
    regs: dict[str, int]
    backtrace: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.lines)


PF_WRITE = 0x2
PF_USER = 0x4
PF_PRESENT = 0x1


def page_fault_headline(cr2: int, error_code: int) -> list[str]:
    if cr2 < 0x1000:
        first = f"BUG: kernel NULL pointer dereference, address: {cr2:016x}"
    else:
        first = f"BUG: unable to handle page fault for address: {cr2:016x}"
    who = "user" if error_code & PF_USER else "supervisor"
    what = "write" if error_code & PF_WRITE else "read"
    mode = "user" if error_code & PF_USER else "kernel"
    page = "protection violation" if error_code & PF_PRESENT else "not-present page"
    return [
        first,
        f"#PF: {who} {what} access in {mode} mode",
        f"#PF: error_code(0x{error_code:04x}) - {page}",
    ]


def format_registers(r: dict[str, int], cr: dict[str, int]) -> list[str]:
    def q(name: str) -> str:
        return f"{r[name]:016x}"

    return [
        f"RSP: {r['ss']:04x}:{q('rsp')} EFLAGS: {r['eflags']:08x}",
        f"RAX: {q('rax')} RBX: {q('rbx')} RCX: {q('rcx')}",
        f"RDX: {q('rdx')} RSI: {q('rsi')} RDI: {q('rdi')}",
        f"RBP: {q('rbp')} R08: {q('r8')} R09: {q('r9')}",
        f"R10: {q('r10')} R11: {q('r11')} R12: {q('r12')}",
        f"R13: {q('r13')} R14: {q('r14')} R15: {q('r15')}",
        f"CR2: {cr['cr2']:016x} CR3: {cr['cr3']:016x} CR4: {cr['cr4']:016x}",
    ]
