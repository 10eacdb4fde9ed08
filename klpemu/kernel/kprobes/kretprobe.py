"""Kretprobes (kernel/kprobes.c, register_kretprobe and friends): an entry probe whose pre
handler (pre_handler_kretprobe, machine code) swaps the caller's return address for
__kretprobe_trampoline, keeping the real one in a kretprobe_instance on the task's list.

The host preallocates `maxactive` instances (Linux's default when it is not set: max(10,
2 * CPUs)); a call that finds none free is counted in `nmissed`. Unregistering frees the free
instances once no CPU is inside a probe; those still waiting on a task's stack are disowned
(rp = NULL), so their return still works, and the guest hands them back on kretprobe_orphans
for the host to free.

kretprobe_find_ret_addr is there for the unwinder: the real return address of a frame whose
return address is the trampoline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from errno import E2BIG, EINVAL, ENOENT
from typing import TYPE_CHECKING

from ...abi import KRETPROBE_MAX_DATA_SIZE
from ...errors import KlpemuError
from ...machine.kstr import kbytes

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import View
    from ..tasks import Task
    from .core import Kprobes
    from .probe import PyHandler


@dataclass(eq=False)
class KretprobeRecord:
    rp: int
    instances: list[int]


class Kretprobes:
    def __init__(self, machine: Machine, kprobes: Kprobes):
        self.m = machine
        self.kp = kprobes
        self.registered: dict[int, KretprobeRecord] = {}
        self.trampoline = machine.image.addr("__kretprobe_trampoline")
        self._kp_off = machine.types.offsetof("kretprobe", "kp")

    def view(self, rp: int):
        return self.m.struct("kretprobe", rp)

    def kprobe_of(self, rp: int) -> int:
        return rp + self._kp_off

    def maxactive_default(self) -> int:
        return max(10, 2 * len(self.m.cpus))

    # --- register / unregister -----------------------------------------------------------------

    def register(self, rp: int, owner: str = "host", py: dict[str, PyHandler] | None = None) -> None:
        m = self.m
        kp = self.kprobe_of(rp)
        addr = self.kp.kprobe_addr(kp)
        func = m.image.function_at(addr)
        if func is None and not m.is_kernel_text(addr):
            # A data symbol: kprobe_on_func_entry accepts it, check_kprobe_address_safe does not.
            raise KlpemuError(f"0x{addr:x} is not kernel text", EINVAL)
        if func is None:
            raise KlpemuError(f"0x{addr:x} is in no function", ENOENT)
        if addr != func.addr:
            raise KlpemuError(f"a kretprobe must be at a function's entry, not {m.image.symbolize(addr)}", EINVAL)
        if kp in self.kp.probes:
            raise KlpemuError("this kretprobe is already registered", EINVAL)
        v = self.view(rp)
        if v.data_size > KRETPROBE_MAX_DATA_SIZE:
            raise KlpemuError(f"data_size {v.data_size} is over {KRETPROBE_MAX_DATA_SIZE}", E2BIG)
        v.kp.pre_handler = self.kp.pre_handler_kretprobe
        v.kp.post_handler = 0
        if v.maxactive <= 0:
            v.maxactive = self.maxactive_default()
        size = m.types.sizeof("kretprobe_instance") + v.data_size
        instances: list[int] = []
        try:
            for _ in range(v.maxactive):
                instances.append(m.heap.kzalloc(size))
        except KlpemuError:  # out of memory part way: what was taken goes back
            for ri in instances:
                m.heap.free(ri)
            raise
        for ri, nxt in zip(instances, instances[1:] + [0], strict=True):
            inst = m.struct("kretprobe_instance", ri)
            inst.rp = rp
            inst.llist.next = nxt
        v.freelist.first = instances[0] if instances else 0
        v.lock.locked = 0
        v.nmissed = 0
        try:
            self.kp.register(kp, owner, kind="r", rp=rp, py=py)
        except KlpemuError:
            v.freelist.first = 0
            for ri in instances:
                m.heap.free(ri)
            raise
        self.registered[rp] = KretprobeRecord(rp, instances)

    def unregister(self, rp: int) -> None:
        bottom = self.unregister_top(rp)
        self.kp.synchronize()
        bottom()

    def unregister_top(self, rp: int) -> Callable[[], None]:
        """unregister_kretprobe's part under kprobe_mutex; returns the part after the wait: the
        free instances are freed, those out on a task's stack disowned (rp = NULL: their return
        still works, and the guest hands them back on kretprobe_orphans)."""
        rec = self.registered.get(rp)
        if rec is None:
            raise KlpemuError("this kretprobe is not registered", EINVAL)
        kp_bottom = self.kp.unregister_top(self.kprobe_of(rp))
        del self.registered[rp]
        m = self.m

        def bottom() -> None:
            v = self.view(rp)
            free = set()
            node = v.freelist.first
            while node:
                free.add(node)
                node = m.struct("kretprobe_instance", node).llist.next
            v.freelist.first = 0
            for ri in rec.instances:
                if ri in free:
                    m.heap.free(ri)
                else:
                    m.struct("kretprobe_instance", ri).rp = 0
            kp_bottom()  # frees a host-made rp: nothing reads it after
            self.reap_orphans()

        return bottom

    def reap_orphans(self) -> None:
        """Free the disowned instances the guest has finished with."""
        m = self.m
        if m.read_var_int("kretprobe_orphans_lock"):
            return
        head = m.var("kretprobe_orphans")
        node = head.first
        head.first = 0
        while node:
            nxt = m.struct("kretprobe_instance", node).llist.next
            m.heap.free(node)
            node = nxt

    def add(
        self,
        symbol: str,
        *,
        handler=None,
        entry_handler=None,
        maxactive: int = 0,
        data_size: int = 0,
        owner: str = "host",
    ) -> int:
        """A struct kretprobe made and registered by the host; handlers are guest functions (a
        name or an address) or Python callables (ri view, regs view) -> int. Returns its address."""
        m = self.m
        rp = m.heap.kzalloc(m.types.sizeof("kretprobe"))
        raw = kbytes(symbol) + b"\0"
        name = m.heap.kzalloc(len(raw))
        m.mem.write(name, raw)
        v = self.view(rp)
        v.kp.symbol_name = name
        py: dict[str, PyHandler] = {}
        try:
            v.handler = self.kp.handler_addr("ret", handler, py)
            v.entry_handler = self.kp.handler_addr("entry", entry_handler, py)
            v.maxactive = maxactive  # a value out of the int's range is refused here
            v.data_size = data_size
            self.register(rp, owner, py)
        except KlpemuError:
            m.heap.free(name)
            m.heap.free(rp)
            raise
        self.kp.probes[self.kprobe_of(rp)].allocations = [name, rp]
        return rp

    def nmissed(self, rp: int) -> int:
        return self.view(rp).nmissed

    # --- the unwinder's view -------------------------------------------------------------------

    def instances_of(self, task: Task) -> list[View]:
        """The kretprobe instances a task's calls wait on, newest first."""
        return kretprobe_instances(self.m, task.addr)


# Guest data only, so the unwinder reads them without a peer (kernel/kprobes.c keeps them with
# the kretprobe code; arch/x86's unwinder calls kretprobe_find_ret_addr).


def kretprobe_instances(m: Machine, task_addr: int) -> list[View]:
    """The kretprobe instances on a task's current->kretprobe_instances, newest first."""
    out: list[View] = []
    node = m.struct("task_struct", task_addr).kretprobe_instances.first
    while node and len(out) < 4096:
        out.append(m.struct("kretprobe_instance", node))
        node = out[-1].llist.next
    return out


def kretprobe_find_ret_addr(m: Machine, task_addr: int, slot: int) -> int | None:
    """kretprobe_find_ret_addr: the real return address of the call whose return address, at
    stack address slot, is the trampoline; None if no instance of the task has it."""
    trampoline = m.image.addr("__kretprobe_trampoline")
    for ri in kretprobe_instances(m, task_addr):
        if ri.fp == slot and ri.ret_addr != trampoline:
            return int(ri.ret_addr)
    return None
