"""klp_ops and their func stacks (kernel/livepatch/patch.c): attaching a klp_func to its
function's ftrace ops, newest first, and taking it off again.

The klp_ops and every klp_func live in guest memory, where klp_ftrace_handler reads them; the
host keeps only a map from the old function to its klp_ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ...machine.types import Pointer
from ..ftrace.ops import FL, FtraceOps
from ..guestlist import GuestList
from ..printk import LogLevel, log_store

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..ftrace import Ftrace

KLP_FOPS_FLAGS = FL["DYNAMIC"] | FL["IPMODIFY"] | FL["PERMANENT"]  # WITH_ARGS: no SAVE_REGS


@dataclass(eq=False)
class KlpOps:
    addr: int  # the guest struct klp_ops
    old_func: int
    fops: FtraceOps


class KlpPatchLayer:
    def __init__(self, machine: Machine, ftrace: Ftrace):
        self.m = machine
        self.ftrace = ftrace
        self.list = GuestList(machine.mem)
        self.ops: dict[int, KlpOps] = {}  # old_func -> klp_ops (klp_find_ops)
        self._stack_off = machine.types.offsetof("klp_ops", "func_stack")
        self._node_off = machine.types.offsetof("klp_func", "stack_node")
        self.generation = 0  # counts changes to any func_stack, for what is derived from them

    def check_consistency(self) -> list[str]:
        """Where the klp_ops the host keeps disagree with guest memory: each must have funcs on
        its func_stack, each of them patched and for its function, and its fops registered."""
        problems = []
        registered = {ops.addr for ops in self.ftrace.ops}
        for old_func, ops in self.ops.items():
            stack = self.func_stack(old_func)
            if not stack:
                problems.append(f"klp_ops of {old_func:#x}: empty func_stack")
            for func in stack:
                if func.old_func != old_func or not func.patched:
                    problems.append(f"klp_ops of {old_func:#x}: func {func:#x} is not a patched func of it")
            if ops.fops.addr not in registered:
                problems.append(f"klp_ops of {old_func:#x}: its ftrace_ops is not registered")
        return problems

    def func_stack(self, old_func: int) -> list[Pointer]:
        """The klp_funcs stacked on old_func, newest (the active one) first."""
        ops = self.ops.get(old_func)
        if ops is None:
            return []
        return list(self.m.list_for_each_entry("klp_func", ops.addr + self._stack_off, "stack_node"))

    def patch_func(self, func: Pointer) -> None:
        """klp_patch_func: put the func on top of its function's stack, making the ops if needed."""
        m = self.m
        func_addr = int(func)
        if not func.old_func or func.patched:
            raise KlpemuError("klp_patch_func: function not set up or already patched", EINVAL)
        old = func.old_func
        ops = self.ops.get(old)
        if ops is None:
            ft = self.ftrace
            name = m.mem.read_cstr(func.old_name, 512)
            if ft.records.find(old) is None:
                log_store(m, f"livepatch: failed to find location for function '{name}'", LogLevel.ERR)
                raise KlpemuError(f"failed to find location for function '{m.image.symbolize(old)}'", EINVAL)
            addr = m.heap.kzalloc(m.types.sizeof("klp_ops"))
            self.list.init(addr + self._stack_off)
            fops = ft.ops_at(
                f"livepatch:{name}",
                addr + m.types.offsetof("klp_ops", "fops"),
                m.image.addr("klp_ftrace_handler"),
                KLP_FOPS_FLAGS,
            )
            self.list.add(func_addr + self._node_off, addr + self._stack_off)
            try:
                try:
                    ft.set_filter(fops, [old])
                except KlpemuError as e:
                    log_store(
                        m, f"livepatch: failed to set ftrace filter for function '{name}' ({-e.errno})", LogLevel.ERR
                    )
                    raise
                try:
                    ft.register(fops)
                except KlpemuError as e:
                    log_store(
                        m,
                        f"livepatch: failed to register ftrace handler for function '{name}' ({-e.errno})",
                        LogLevel.ERR,
                    )
                    raise
            except KlpemuError:
                self.list.delete(func_addr + self._node_off)
                ft.forget(fops)
                m.heap.free(addr)
                raise
            self.ops[old] = KlpOps(addr, old, fops)
        else:
            self.list.add(func_addr + self._node_off, ops.addr + self._stack_off)  # newest wins
        func.patched = 1
        self.generation += 1

    def unpatch_func(self, func: Pointer) -> None:
        """klp_unpatch_func: the last func takes the ftrace ops with it."""
        m = self.m
        func_addr = int(func)
        if not func.patched:
            raise KlpemuError("klp_unpatch_func: function not patched", EINVAL)
        ops = self.ops[func.old_func]
        if self.func_stack(ops.old_func) == [func_addr]:
            ft = self.ftrace
            ft.unregister(ops.fops)
            ft.forget(ops.fops)
            self.list.delete(func_addr + self._node_off)
            del self.ops[ops.old_func]
            m.heap.free(ops.addr)
        else:
            self.list.delete(func_addr + self._node_off)
        func.patched = 0
        self.generation += 1
