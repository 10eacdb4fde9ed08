"""Trampolines: which one a site calls, and private per-ops copies made from the templates.

The shared trampolines are ftrace_caller (argument registers, cs = 0) and ftrace_regs_caller
(full pt_regs). A private trampoline, as x86's create_trampoline makes, is a copy of one of
them whose ops load reads a pointer stored right after the copy and whose call slot calls the
ops' handler directly: no list walk for a site that has exactly one user.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..text_poke import call_insn, decode_target
from .ops import FL, FtraceOps

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..text_poke import TextPoke

OP_PTR_INSN = bytes.fromhex("488b15")  # movq disp32(%rip), %rdx


class Trampolines:
    def __init__(self, machine: Machine, text_poke: TextPoke):
        self.m = machine
        self.text_poke = text_poke
        sym = machine.image.addr
        self.caller = sym("ftrace_caller")
        self.regs_caller = sym("ftrace_regs_caller")
        self.templates = {
            False: (self.caller, sym("ftrace_caller_end"), sym("ftrace_caller_op_ptr"), sym("ftrace_call")),
            True: (
                self.regs_caller,
                sym("ftrace_regs_caller_end"),
                sym("ftrace_regs_caller_op_ptr"),
                sym("ftrace_regs_call"),
            ),
        }
        self.slots = [sym("ftrace_call"), sym("ftrace_regs_call")]

    def slot_target(self, slot: int) -> int:
        """What a shared trampoline's call slot calls now."""
        target = decode_target(slot, self.m.mem.read(slot, 5))
        assert target is not None, "a call slot is a call rel32 (the template contract of ftrace_64.S)"
        return target

    def owner_name(self, addr: int) -> str:
        """How enabled_functions names a trampoline: the shared ones by symbol."""
        if addr == self.caller:
            return "ftrace_caller"
        if addr == self.regs_caller:
            return "ftrace_regs_caller"
        return f"0x{addr:x}"

    def handler_of(self, ops: FtraceOps, flags: int) -> int:
        """ftrace_ops_get_func: an ops that asks for recursion protection (RECURSION) or RCU
        gets the assist around its handler; any other is called directly."""
        if flags & (FL["RECURSION"] | FL["RCU"]):
            return self.m.image.addr("ftrace_ops_assist_func")
        return ops.struct.func

    def create(self, ops: FtraceOps, flags: int) -> tuple[int, int]:
        """A private trampoline for ops: (address, size). Written before any site calls it."""
        m = self.m
        start, end, op_ptr, call_slot = self.templates[bool(flags & FL["SAVE_REGS"])]
        size = end - start
        code = bytearray(m.mem.read(start, size))
        tramp = m.heap.alloc_text(size + 8)
        ptr_slot = tramp + size  # the ops pointer, right after the code
        at = op_ptr - start
        assert code[at : at + 3] == OP_PTR_INSN, "ftrace_caller_op_ptr is not a movq rip-relative"
        code[at + 3 : at + 7] = struct.pack("<i", ptr_slot - (tramp + at + 7))
        at = call_slot - start
        code[at : at + 5] = call_insn(tramp + at, self.handler_of(ops, flags))
        self.text_poke.write_early(tramp, bytes(code) + struct.pack("<Q", ops.addr))
        return tramp, size + 8
