"""An instruction budget for Unicorn without its per-instruction count hook.

Unicorn's emu_start(count=N) counts with a code hook: a helper call on every guest instruction,
which costs a third to a half of the emulation speed. The block counter hooks the start of each
translation block instead, with a dozen host instructions written here in x86-64 machine code:
they look up how many guest instructions the block holds (decoded once with capstone and kept
in a table keyed by the block's address and size), add them to the count and take them from the
budget; at a block entered with no budget left they call uc_emu_stop, which Unicorn obeys
before the block runs.

So a run stops at the first block boundary at or past its budget: up to one block later than
a counted run would. Where it stops depends on the guest's state alone, so runs stay
deterministic. The count is exact but for a block left early (a fault, a hypercall that stops
the machine), whose instructions all count.

The table must forget a block whose code changed under it. Everything that writes code tells
Unicorn to drop its translations (ctl_remove_cache, ctl_flush_tb); the counter hears the same
calls and drops its table with them.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
from collections.abc import Callable
from errno import ENOTSUP
from typing import TYPE_CHECKING, Any

from ..errors import KlpemuError

if TYPE_CHECKING:
    from unicorn import Uc

TABLE_BITS = 16  # 65,536 entries of 16 bytes: a few times the blocks a boot translates

# The hook, for the System V AMD64 calling convention of Unicorn's block callback
# (uc in rdi, address in rsi, size in edx, user data in rcx). The user data is a _State.
# keystone's parser reads bare numbers in odd radixes: every constant here is spelled 0x.
HOOK_ASM = """
    mov rax, rsi
    and rax, qword ptr [rcx + 0x18]
    shl rax, 0x4
    add rax, qword ptr [rcx + 0x20]
    cmp qword ptr [rax], rsi
    jne miss
    cmp dword ptr [rax + 0x8], edx
    jne miss
    mov eax, dword ptr [rax + 0xc]
account:
    cmp qword ptr [rcx], 0x0
    jle spent
    add qword ptr [rcx + 0x28], rax
    sub qword ptr [rcx], rax
    ret
spent:
    jmp qword ptr [rcx + 0x8]
miss:
    push rdi
    push rcx
    sub rsp, 0x8
    mov rdi, rsi
    mov esi, edx
    call qword ptr [rcx + 0x10]
    add rsp, 0x8
    pop rcx
    pop rdi
    jmp account
"""

FillFunc = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32)


class _State(ctypes.Structure):
    _fields_ = (
        ("budget", ctypes.c_int64),  # 0x00: instructions left; a block entered at <= 0 stops the run
        ("emu_stop", ctypes.c_void_p),  # 0x08: uc_emu_stop
        ("fill", ctypes.c_void_p),  # 0x10: the table's miss handler (a FillFunc)
        ("mask", ctypes.c_uint64),  # 0x18: table entries - 1
        ("table", ctypes.c_void_p),  # 0x20
        ("counted", ctypes.c_uint64),  # 0x28: instructions in the blocks entered, ever
    )


class _Entry(ctypes.Structure):
    _fields_ = (("addr", ctypes.c_uint64), ("size", ctypes.c_uint32), ("icount", ctypes.c_uint32))


def unavailable_reason() -> str | None:
    """Why this host cannot run the counter's machine code, or None if it can."""
    if platform.machine().lower() not in ("x86_64", "amd64") or os.name != "posix":
        return f"the block counter's hook is x86-64 System V code; this host is {platform.machine()} {os.name}"
    try:
        mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close()
    except OSError as e:
        return f"no executable memory: {e.strerror}"
    return None


def _hook_code() -> bytes:
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks

    encoding, _ = Ks(KS_ARCH_X86, KS_MODE_64).asm(HOOK_ASM)
    return bytes(encoding)


class BlockCounter:
    """Counts a Uc's guest instructions block by block, and stops its runs on a budget."""

    def __init__(self, uc: Uc, read_code: Callable[[int, int], bytes]):
        """read_code(address, size): the guest's bytes at a virtual address (Unicorn's own
        reads take physical ones)."""
        reason = unavailable_reason()
        if reason is not None:
            raise KlpemuError(f"uncounted slicing is not available: {reason}", ENOTSUP)
        from capstone import CS_ARCH_X86, CS_MODE_64, Cs
        from unicorn import UC_HOOK_BLOCK
        from unicorn.unicorn_py3.unicorn import uclib

        self._read_code = read_code
        self._cs = Cs(CS_ARCH_X86, CS_MODE_64)
        self.misses = 0
        code = _hook_code()
        self._text = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._text.write(code)
        self._table = (_Entry * (1 << TABLE_BITS))()
        self._fill = FillFunc(self._on_miss)  # kept referenced: the hook calls it
        self.state = _State(
            budget=0,
            emu_stop=ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value,
            fill=ctypes.cast(self._fill, ctypes.c_void_p).value,
            mask=(1 << TABLE_BITS) - 1,
            table=ctypes.addressof(self._table),
            counted=0,
        )
        hook = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(self._text)))
        handle = ctypes.c_size_t()
        err = uclib.uc_hook_add(uc._uch, ctypes.byref(handle), UC_HOOK_BLOCK, hook, ctypes.byref(self.state), 1, 0)
        if err:
            raise KlpemuError(f"uncounted slicing is not available: uc_hook_add failed ({err})", ENOTSUP)
        self._handle = handle.value
        self._hear_code_changes(uc)
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # blocks translated before lack the hook

    def __deepcopy__(self, memo: dict) -> None:
        # A counter belongs to one Unicorn instance: a copied machine makes its own when it is
        # put onto a new one (Machine.after_restore).
        return None

    @property
    def counted(self) -> int:
        """Guest instructions in the blocks entered since the counter was made."""
        return int(self.state.counted)

    def arm(self, budget: int) -> None:
        """The next runs stop at the first block boundary at or past budget more instructions."""
        self.state.budget = budget

    def forget(self) -> None:
        """Drop the table: some code changed."""
        ctypes.memset(self._table, 0, ctypes.sizeof(self._table))

    def _on_miss(self, addr: int, size: int) -> int:
        self.misses += 1
        try:
            code = self._read_code(addr, size)
        except Exception:  # noqa: BLE001  # an exception cannot cross the native hook
            code = b""
        icount = decoded = 0
        for _addr, length, _mnemonic, _ops in self._cs.disasm_lite(code, addr):
            icount += 1
            decoded += length
        if decoded < size:
            icount += 1  # an undecodable tail is the one instruction that faults
        entry = self._table[addr & self.state.mask]
        entry.addr, entry.size, entry.icount = addr, size, icount
        return icount

    def _hear_code_changes(self, uc: Uc) -> None:
        # Every writer of code already drops Unicorn's translations of it; the table follows them.
        def wrap(drop: Callable[..., Any]) -> Callable[..., Any]:
            def dropping(*args: Any) -> Any:
                self.forget()
                return drop(*args)

            return dropping

        uc.ctl_remove_cache = wrap(uc.ctl_remove_cache)  # type: ignore[method-assign]
        uc.ctl_flush_tb = wrap(uc.ctl_flush_tb)  # type: ignore[attr-defined]
