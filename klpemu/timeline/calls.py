"""Calls of chosen functions on the timeline, entry and exit, as function_graph shows them.

From the host and only while recording: a Unicorn code hook at each chosen function's first
instruction sees the call come in, reads the return address on the stack and hooks that address
too; the call has returned when the same task executes there with the stack pointer back above
it. Since nothing is written into the guest (function_graph swaps the return address for
return_to_handler; the livepatch stack check would then see it), the guest runs the same
instructions with or without the hooks. A livepatched function's call ends where the new
function returns. Stopping deletes every hook and drops the translations that called them, so a
machine that has recorded runs as one that never did.
"""

from __future__ import annotations

import fnmatch
from errno import EINVAL
from typing import TYPE_CHECKING

from unicorn import UC_HOOK_CODE, Uc
from unicorn import x86_const as x

from ..errors import KlpemuError

if TYPE_CHECKING:
    from ..machine.machine import Machine
    from .recorder import Recorder


def functions_matching(machine: Machine, glob: str) -> dict[int, str]:
    """Kernel and module functions whose name matches glob (as set_ftrace_filter matches), by
    address; EINVAL when none does."""
    image = machine.image
    syms = [s for s in image.functions() if machine.is_kernel_text(s.addr)]
    syms += [s for k in image.module_kallsyms for s in k.symbols if s.kind == "func"]
    found = {s.addr: s.name for s in syms if s.size and fnmatch.fnmatchcase(s.name, glob)}
    if not found:
        raise KlpemuError(f"no kernel function matches '{glob}'", EINVAL)
    return found


class CallRecorder:
    def __init__(self, recorder: Recorder, functions: dict[int, str]):
        self.rec = recorder
        self.m = recorder.m
        self.functions = functions
        self._current_off = self.m.types.offsetof("pcpu_hot", "current_task")
        self._entry_hooks: list[int] = []
        self._return_hooks: dict[int, int] = {}  # return address -> hook
        # per task: the calls under way, innermost last, as (function, return address, sp after it)
        self.stacks: dict[int, list[tuple[str, int, int]]] = {}

    def attach(self) -> None:
        uc = self.m.uc
        for addr in self.functions:
            self._entry_hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_entry, None, addr, addr))
            uc.ctl_remove_cache(addr, addr + 1)  # blocks translated before would run past the hook

    def detach(self) -> None:
        uc = self.m.uc
        for hook in self._entry_hooks:
            uc.hook_del(hook)
        for hook in self._return_hooks.values():
            uc.hook_del(hook)
        for addr in [*self.functions, *self._return_hooks]:
            uc.ctl_remove_cache(addr, addr + 1)
        self._entry_hooks.clear()
        self._return_hooks.clear()

    def _current(self, uc: Uc) -> int:
        """The task running this code: %gs points at the CPU's pcpu_hot, in a slice or a host call."""
        return self.m.mem.read_u64(uc.reg_read(x.UC_X86_REG_GS_BASE) + self._current_off)

    def _on_entry(self, uc: Uc, addr: int, _size: int, _ud: object) -> None:
        name = self.functions.get(addr)
        if name is None:
            return
        task = self._current(uc)
        sp = uc.reg_read(x.UC_X86_REG_RSP)
        ret = self.m.mem.read_u64(sp)
        self.stacks.setdefault(task, []).append((name, ret, sp + 8))
        if ret not in self._return_hooks:
            self._return_hooks[ret] = uc.hook_add(UC_HOOK_CODE, self._on_return, None, ret, ret)
            uc.ctl_remove_cache(ret, ret + 1)
        self.rec.call_begin(task, name)

    def _on_return(self, uc: Uc, addr: int, _size: int, _ud: object) -> None:
        task = self._current(uc)
        stack = self.stacks.get(task)
        if not stack:
            return
        sp = uc.reg_read(x.UC_X86_REG_RSP)
        for i in range(len(stack) - 1, -1, -1):
            _, ret, after = stack[i]
            if ret == addr and after == sp:
                # calls above it that never came back this way (none in straight code) end with it
                for name, _, _ in reversed(stack[i:]):
                    self.rec.call_end(task, name)
                del stack[i:]
                return
