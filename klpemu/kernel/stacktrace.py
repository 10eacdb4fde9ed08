"""Frame-pointer unwinding of any task, with Linux's reliability verdict and its reason.

The conventions are the firmware's, which are Linux's: a sleeping task's walk starts at the
inactive_task_frame its thread.sp points to; an entry from an interrupt leaves rbp pointing at
the saved pt_regs with bit 0 set; every task's walk ends at the frame two words below its
top-of-stack pt_regs, after which a user task has only its user-mode registers. The verdict
follows arch_stack_walk_reliable: a kernel-mode interrupt frame, a frame pointer leaving the
stack or going backwards, a return address outside kernel text, or more than 100 entries make
the stack unreliable, and the reason is kept so a person can see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from .ftrace.fgraph import ftrace_graph_ret_addr
from .kprobes.kretprobe import kretprobe_find_ret_addr

if TYPE_CHECKING:
    from capstone import Cs

    from ..machine.image import KernelImage
    from ..machine.machine import Machine
    from .tasks import Task

MAX_STACK_ENTRIES = 100  # klp_check_stack's buffer: a stack needing more is unreliable
WALK_LIMIT = 1000  # keep showing frames past the verdict, up to here


@dataclass(frozen=True)
class Frame:
    addr: int
    kind: str = "call"  # call (a return address), ip (an exact instruction), regs, user
    # What symbolizes addr when the symbol is asked for: a stack check reads addresses only.
    image: KernelImage | None = field(default=None, compare=False, repr=False)

    @property
    def symbol(self) -> str:
        if self.kind == "user":
            return "(user mode)"
        assert self.image is not None, "a kernel frame is made with its image"
        if self.kind == "call":
            return self.image.symbolize_return(self.addr)
        return self.image.symbolize(self.addr)


@dataclass
class StackTrace:
    frames: list[Frame] = field(default_factory=list)
    reliable: bool = True
    reason: str = ""
    user_mode: bool = False  # the task is running in user mode: its kernel stack is empty

    def unreliable(self, reason: str) -> None:
        if self.reliable:
            self.reliable = False
            self.reason = reason

    @property
    def kernel_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.kind != "user"]

    def proc_stack(self) -> str:
        """/proc/<pid>/stack: one `[<0>] func+0xoff/0xsize` line per kernel frame."""
        return "".join(f"[<0>] {f.symbol}\n" for f in self.kernel_frames)


@cache
def _cs() -> Cs:
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    return Cs(CS_ARCH_X86, CS_MODE_64)


@lru_cache(maxsize=4096)
def _prologue(code: bytes, start: int) -> tuple[int | None, int | None]:
    """Addresses of `push %rbp` and `mov %rsp,%rbp` in a function's first instructions."""
    push = mov = None
    for insn in _cs().disasm(code, start):
        if insn.mnemonic == "push" and insn.op_str == "rbp" and push is None:
            push = insn.address
        elif insn.mnemonic == "mov" and insn.op_str == "rbp, rsp":
            mov = insn.address
            break
        elif insn.mnemonic in ("ret", "jmp", "call") and insn.address != start:
            break
    return push, mov


class Unwinder:
    def __init__(self, machine: Machine):
        self.m = machine
        self._task = 0  # the task being walked: whose kretprobe instances recover return addresses
        self._kretprobe_trampoline = machine.image.addr("__kretprobe_trampoline")
        self._ret_from_fork_asm = machine.image.addr("ret_from_fork_asm")
        self._frame_bp = machine.types.offsetof("inactive_task_frame", "bp")
        self._frame_ret = machine.types.offsetof("inactive_task_frame", "ret_addr")
        self._return_to_handler = machine.image.addr("return_to_handler")

    # --- entry points --------------------------------------------------------------------------

    def task(self, task: Task) -> StackTrace:
        """Walk a task, from its CPU's registers if it is running, else from its saved context."""
        m = self.m
        cpu = task.running_on
        if cpu is None:
            return self.sleeping(task)
        lo = task.stack_base
        hi = lo + m.thread_size
        self._task = task.addr
        c = m.cpus[cpu]
        if c.user_mode:
            trace = StackTrace(user_mode=True)
            trace.frames.append(Frame(c.reg("rip"), "user"))
            return trace
        return self.from_regs(c.reg("rip"), c.reg("rsp"), c.reg("rbp"), lo, hi)

    def sleeping(self, task: Task) -> StackTrace:
        """Walk a task known not to be on a CPU, from the context __switch_to_asm saved."""
        m = self.m
        view = task.view
        lo = view.stack
        hi = lo + m.thread_size
        sp = view.thread.sp
        self._task = task.addr
        if lo <= sp < hi:  # the inactive_task_frame and every frame above it, in one read
            window = m.mem.read(sp, hi - sp)
            bp = int.from_bytes(window[self._frame_bp : self._frame_bp + 8], "little")
            ret = int.from_bytes(window[self._frame_ret : self._frame_ret + 8], "little")
        else:
            frame = m.struct("inactive_task_frame", sp)
            window, bp, ret = b"", frame.bp, frame.ret_addr
        trace = StackTrace()
        # A task that never ran "returns" to the start of ret_from_fork_asm, not after a call.
        first_kind = "ip" if ret == self._ret_from_fork_asm else "call"
        self._walk(trace, ret, bp, sp, lo, hi, exact=False, sp=None, first_kind=first_kind, window=window)
        return trace

    def from_regs(self, ip: int, sp: int, bp: int, lo: int, hi: int) -> StackTrace:
        """Walk from live registers (a running CPU, or a crash) on the stack [lo, hi)."""
        trace = StackTrace()
        if not self._task:
            from .tasks import all_tasks

            self._task = next((t.addr for t in all_tasks(self.m) if t.stack_base == lo), 0)
        self._walk(trace, ip, bp, sp, lo, hi, exact=True, sp=sp)
        return trace

    def _recover(self, trace: StackTrace, ret: int, slot: int) -> int | None:
        """A return address a kretprobe or function_graph replaced by its trampoline: the real
        one, from the task's kretprobe instances (kretprobe_find_ret_addr) or its ret_stack
        (ftrace_graph_ret_addr). None if nothing recovers it: unreliable."""
        if ret == self._return_to_handler:
            real = ftrace_graph_ret_addr(self.m, self._task, slot) if self._task else None
            if real is None:
                trace.unreliable(f"return_to_handler at 0x{slot:x} with no ret_stack entry to recover it")
                return None
            ret = real
        if ret != self._kretprobe_trampoline:
            return ret
        real = kretprobe_find_ret_addr(self.m, self._task, slot) if self._task else None
        if real is None:
            trace.unreliable(f"kretprobe trampoline at 0x{slot:x} with no instance to recover it")
        return real

    # --- the walk ------------------------------------------------------------------------------

    def _sym(self, addr: int, kind: str = "ip") -> str:
        if kind == "call":
            return self.m.image.symbolize_return(addr)
        return self.m.image.symbolize(addr)

    def _is_text(self, addr: int) -> bool:
        return self.m.is_kernel_text(addr)

    def _caller_before_frame(self, ip: int, sp: int) -> int | None:
        """Where a function has not set up (or has torn down) its frame, its return address
        is still at the stack top: read it from there so the caller is not lost."""
        m = self.m
        fn = m.image.function_at(ip)
        if fn is None:
            return None
        code = m.mem.read(fn.addr, min(fn.size, 64))
        push, mov = _prologue(code, fn.addr)
        insn = next(_cs().disasm(m.mem.read(ip, 16), ip), None)
        if (insn is not None and insn.mnemonic == "ret") or push is None or ip <= push:
            slot = sp  # at entry, after a frameless leaf's pushes or before the ret: on top
        elif mov is not None and ip <= mov:
            slot = sp + 8
        else:
            return None
        ret = m.mem.try_read_u64(slot)
        if ret is not None and ret == self._return_to_handler and self._task:
            ret = ftrace_graph_ret_addr(m, self._task, slot) or ret
        if ret is None or ret != self._kretprobe_trampoline:
            return ret
        real = kretprobe_find_ret_addr(m, self._task, slot) if self._task else None
        return real if real is not None else ret

    def _walk(
        self,
        trace: StackTrace,
        ip: int,
        bp: int,
        floor: int,
        lo: int,
        hi: int,
        *,
        exact: bool,
        sp: int | None,
        first_kind: str = "call",
        window: bytes | None = None,
    ) -> None:
        m = self.m
        image = m.image
        regs_size = m.types.sizeof("pt_regs")
        top_regs = hi - regs_size
        last_bp = top_regs - 16
        kernel_entries = 0

        def add(addr: int, kind: str = "call") -> None:
            nonlocal kernel_entries
            trace.frames.append(Frame(addr, kind, image))
            if kind != "user":
                kernel_entries += 1
                if kernel_entries > MAX_STACK_ENTRIES:
                    trace.unreliable(f"more than {MAX_STACK_ENTRIES} frames")

        add(ip, "ip" if exact else first_kind)
        if exact and sp is not None:
            caller = self._caller_before_frame(ip, sp)
            if caller is not None:
                if not self._is_text(caller):
                    trace.unreliable(f"return address 0x{caller:x} outside kernel text")
                    return
                add(caller)
        prev = floor - 1
        # Every frame record lies between floor and the stack's top: read that once (or use the
        # caller's read of it), not a record at a time (a transition's attempt walks every task).
        if window is None:
            window = m.mem.read(floor, hi - floor) if lo <= floor < hi else b""
        while len(trace.frames) < WALK_LIMIT:
            if bp & 1:
                # An encoded pt_regs pointer: an entry from an interrupt, or a new task's regs.
                regs_addr = bp - 1
                if not (lo <= regs_addr and regs_addr + regs_size <= hi):
                    trace.unreliable(f"interrupt frame pointer 0x{regs_addr:x} outside the task's stack")
                    return
                regs = m.struct("pt_regs", regs_addr)
                if regs_addr == top_regs:
                    if regs.cs & 3 == 3:
                        trace.frames.append(Frame(regs.ip, "user"))
                    return
                if regs.cs & 3 == 3:
                    trace.unreliable("user-mode registers inside the kernel stack")
                    return
                trace.unreliable(f"interrupt frame on the stack (interrupted at {self._sym(regs.ip)})")
                add(regs.ip, "regs")
                caller = self._caller_before_frame(regs.ip, regs.sp)
                if caller is not None:
                    add(caller)
                prev = regs_addr
                bp = regs.bp
                continue
            if bp == 0:
                trace.unreliable("the stack ends before the task's last frame")
                return
            if not (lo <= bp and bp + 16 <= hi):
                trace.unreliable(f"frame pointer 0x{bp:x} outside the task's stack")
                return
            if bp <= prev:
                trace.unreliable(f"frame pointer 0x{bp:x} does not move up the stack")
                return
            at = bp - floor
            # the saved rbp and the return address
            record = window[at : at + 16] if 0 <= at <= len(window) - 16 else m.mem.read(bp, 16)
            next_bp = int.from_bytes(record[:8], "little")
            raw_ret = int.from_bytes(record[8:], "little")
            ret = self._recover(trace, raw_ret, bp + 8)
            if ret is None:
                add(raw_ret)
                return
            add(ret)
            if not self._is_text(ret):
                trace.unreliable(f"return address 0x{ret:x} outside kernel text")
                return
            if bp == last_bp:
                regs = m.struct("pt_regs", top_regs)
                if regs.cs & 3 == 3:
                    trace.frames.append(Frame(regs.ip, "user"))
                return
            prev = bp
            bp = next_bp


def unwind_task(machine: Machine, task: Task) -> StackTrace:
    return Unwinder(machine).task(task)


def unwind_sleeping_task(machine: Machine, task: Task) -> StackTrace:
    """unwind_task for a task the caller knows is not on a CPU."""
    return Unwinder(machine).sleeping(task)
