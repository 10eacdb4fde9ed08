"""Changing live kernel text safely: the int3 protocol of Linux's text_poke_bp (smp_text_poke).

For a batch of sites, sorted by address: publish what each site will become (the guest's
text_poke_array), put an int3 on every first byte, sync, write the tails, sync, write the first
bytes, sync, then retire the descriptors once no CPU is inside the int3 handler. A CPU that runs
into a site meanwhile takes the int3 and the guest's handler emulates the new instruction, so
nothing ever executes a half-written instruction.

A sync is the emulator's sync_core on every CPU: all CPUs share one Unicorn translation cache,
so invalidating the written range once makes every CPU fetch the new bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from errno import EINVAL, ERANGE
from typing import TYPE_CHECKING

from ..abi import MCOUNT_INSN_SIZE
from ..errors import KlpemuError

if TYPE_CHECKING:
    from ..machine.machine import Machine

INT3 = 0xCC
CALL = 0xE8
JMP32 = 0xE9
JMP8 = 0xEB
RET = 0xC3
NOP5 = bytes.fromhex("0f1f440000")


def call_insn(ip: int, target: int) -> bytes:
    """`call target` at ip; rel32 must reach (keystone silently truncates, we do not)."""
    rel = target - (ip + MCOUNT_INSN_SIZE)
    if not -(1 << 31) <= rel < (1 << 31):
        raise KlpemuError(f"call from 0x{ip:x} to 0x{target:x} is out of rel32 range", ERANGE)
    return bytes([CALL]) + struct.pack("<i", rel)


def decode_target(ip: int, insn: bytes) -> int | None:
    """The target of a 5-byte call/jmp, or None for anything else."""
    if len(insn) == 5 and insn[0] in (CALL, JMP32):
        return ip + 5 + struct.unpack("<i", insn[1:5])[0]
    return None


def _descriptor(insn: bytes) -> tuple[int, int]:
    """(opcode, disp) the int3 handler emulates; a NOP is stored as a jump to the next instruction."""
    if insn == NOP5:
        return JMP32, 0
    if insn[0] in (CALL, JMP32) and len(insn) == 5:
        return insn[0], struct.unpack("<i", insn[1:5])[0]
    if insn[0] == JMP8 and len(insn) == 2:
        return JMP8, struct.unpack("<b", insn[1:2])[0]
    if insn[0] in (RET, INT3) and len(insn) == 1:
        return insn[0], 0
    raise KlpemuError(f"text_poke cannot emulate {insn.hex()}", EINVAL)


class TextPoke:
    """The only writer of live kernel text."""

    def __init__(self, machine: Machine):
        self.m = machine
        self.syncs = 0
        # Called after each step with its name; tests use it to run other CPUs mid-patch.
        self.between_steps: Callable[[str], None] | None = None

    def _sync(self, sites: list[tuple[int, bytes]], step: str) -> None:
        for addr, insn in sites:
            self.m.uc.ctl_remove_cache(addr, addr + len(insn))
        self.syncs += 1
        if self.m.timeline is not None:
            self.m.timeline.text_poke(step, sites)
        if self.between_steps is not None:
            self.between_steps(step)

    def write_early(self, addr: int, insn: bytes) -> None:
        """text_poke_early: a direct write, for code no CPU can be running (boot, a new module)."""
        self.m.mem.write(addr, insn)
        self.m.uc.ctl_remove_cache(addr, addr + len(insn))

    def poke(self, addr: int, data: bytes) -> None:
        """text_poke + text_poke_sync for a write no CPU can see half done (one byte: a kprobe's
        int3 going in, or the probed instruction's first byte coming back)."""
        self.m.mem.write(addr, data)
        self._sync([(addr, data)], "poke")

    def batch(self, updates: list[tuple[int, bytes]]) -> None:
        """Rewrite every (addr, new instruction) with the int3 protocol, as one batch."""
        if not updates:
            return
        sites = sorted(updates)
        m = self.m
        arr = m.var("text_poke_array")
        vec = arr.vec
        if len(sites) > len(vec):
            for i in range(0, len(sites), len(vec)):  # text_poke_queue flushes when full
                self.batch(sites[i : i + len(vec)])
            return
        for i, (addr, insn) in enumerate(sites):
            opcode, disp = _descriptor(insn)
            tp = vec[i]
            tp.addr = addr
            tp.disp = disp
            tp.len = len(insn)
            tp.opcode = opcode
        arr.nr_entries = len(sites)  # published before the first int3 goes in
        if m.timeline is not None:
            m.timeline.text_poke_batch(sites)
        for addr, _ in sites:
            m.mem.write(addr, bytes([INT3]))
        self._sync(sites, "int3")
        tails = [(a, i) for a, i in sites if len(i) > 1 and m.mem.read(a + 1, len(i) - 1) != i[1:]]
        for addr, insn in tails:
            m.mem.write(addr + 1, insn[1:])
        if tails:
            self._sync(sites, "tail")
        for addr, insn in sites:
            if insn[0] != INT3:
                m.mem.write(addr, insn[:1])
        self._sync(sites, "first byte")
        if arr.refs and not m.stopped:
            m.run_until(lambda: arr.refs == 0, 1_000_000_000)
        arr.nr_entries = 0
