"""A gdb unwinder for ftrace's trampolines, to `source` in gdb: `bt` from a handler then goes
on through the trampoline to the traced function's site and its caller.

Private trampolines are copies made at run time, so gdb has no symbols or CFI for them and its
own heuristics stop there. The trampoline does build frame-pointer frames, as Linux's do: rbp
points at a fake frame whose return address is the site's (function+5), and above it lies the
site call's real return slot. The script is text for gdb's Python, which this package does not
import; `write_unwinder` puts it in a file.
"""

from __future__ import annotations

from pathlib import Path

UNWINDER = """\
import gdb
from gdb.unwinder import Unwinder, register_unwinder


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class FtraceTrampolineUnwinder(Unwinder):
    def __init__(self):
        super().__init__("klpemu ftrace trampolines")

    def __call__(self, pending):
        pc = int(pending.read_register("rip")) & (2**64 - 1)
        if pc >> 63 == 0 or gdb.block_for_pc(pc) is not None:
            return None  # user space, or code gdb knows
        u64 = gdb.lookup_type("unsigned long").pointer()

        def read(addr):
            return int(gdb.Value(addr).cast(u64).dereference()) & (2**64 - 1)

        rbp = int(pending.read_register("rbp")) & (2**64 - 1)
        try:
            site_ret = read(rbp + 8)
            if gdb.block_for_pc(site_ret - 1) is None:
                return None
            orig_rbp = read(read(rbp))
            slot = next((rbp + 8 * i for i in range(2, 64) if read(rbp + 8 * i) == site_ret), None)
        except gdb.MemoryError:
            return None
        if slot is None:
            return None
        info = pending.create_unwind_info(_FrameId(gdb.Value(slot + 8), gdb.Value(pc)))
        info.add_saved_register("rip", gdb.Value(site_ret))
        info.add_saved_register("rsp", gdb.Value(slot + 8))
        info.add_saved_register("rbp", gdb.Value(orig_rbp))
        return info


register_unwinder(None, FtraceTrampolineUnwinder(), replace=True)
"""


def write_unwinder(path: str | Path) -> Path:
    """Write the unwinder where gdb can `source` it (a .py name, which gdb reads as Python)."""
    p = Path(path)
    p.write_text(UNWINDER)
    return p
