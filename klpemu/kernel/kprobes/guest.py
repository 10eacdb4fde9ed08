"""The kprobes API a module calls, served for the firmware's stubs by hypercalls (kernel/kprobes.c's exports)."""

from __future__ import annotations

from collections.abc import Callable
from errno import EAGAIN, EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ..printk import LogLevel, log_store
from .probe import pr_err

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..module import Modules
    from .core import Kprobes
    from .kretprobe import Kretprobes

ROLES = ("pre", "post", "ret", "entry")  # HC_KPROBE_CALLBACK's first argument


class KprobesGuest:
    """register_kprobe, unregister_kprobe, enable_kprobe/disable_kprobe, dump_kprobe,
    register_kretprobe and unregister_kretprobe from the guest, and the call a host-made
    probe's stub handler makes to reach its Python handler."""

    def __init__(self, machine: Machine, kprobes: Kprobes, kretprobes: Kretprobes, modules: Modules):
        self.m = machine
        self.kprobes = kprobes
        self.kretprobes = kretprobes
        self.modules = modules
        self._unregistering: dict[int, Callable[[], None]] = {}  # unregisters waiting to free
        hc = machine.hypercalls
        hc.register("HC_KPROBE_REGISTER", self._hc_register)
        hc.register("HC_KPROBE_UNREGISTER", self._hc_unregister)
        hc.register("HC_KPROBE_CALLBACK", self._hc_callback)
        hc.register("HC_KPROBE_ENABLE", self._hc_enable)
        hc.register("HC_KPROBE_DUMP", self._hc_dump)
        hc.register("HC_KRETPROBE_REGISTER", self._hc_kretprobe_register)
        hc.register("HC_KRETPROBE_UNREGISTER", self._hc_kretprobe_unregister)

    def _caller(self, struct_addr: int) -> str:
        mod = self.modules.module_at(struct_addr)
        return mod.name if mod is not None else "vmlinux"

    def _unregister(self, struct: int, top: Callable[[], Callable[[], None]]) -> int:
        """The top half at once, then -EAGAIN while a CPU is inside a probe (the guest sleeps
        and asks again: the host cannot wait for the CPUs from inside a hypercall), then the
        bottom half and 0."""
        bottom = self._unregistering.pop(struct, None)
        if bottom is None:
            bottom = top()
        if not self.kprobes.quiescent():
            self._unregistering[struct] = bottom
            return -EAGAIN
        bottom()
        return 0

    # --- kprobes -------------------------------------------------------------------------------

    def _hc_register(self, kp: int, *_args) -> int:
        try:
            self.kprobes.register(kp, self._caller(kp))
        except KlpemuError as e:
            return -(e.errno or EINVAL)
        return 0

    def _hc_unregister(self, kp: int, *_args) -> int:
        try:
            return self._unregister(kp, lambda: self.kprobes.unregister_top(kp))
        except KlpemuError:
            self.kprobes.view(kp).addr = 0  # as unregister_kprobes marks a probe it could not find
        return 0

    def _hc_enable(self, kp: int, enable: int, *_args) -> int:
        try:
            self.kprobes.set_enabled(kp, bool(enable))
        except KlpemuError as e:
            return -(e.errno or EINVAL)
        return 0

    def _hc_dump(self, kp: int, *_args) -> int:
        """dump_kprobe: pr_err("Dump kprobe:\n.symbol_name = %s, .offset = %x, .addr = %pS\n")."""
        m = self.m
        v = self.kprobes.view(kp)
        name = m.mem.read_cstr(v.symbol_name, 512) if v.symbol_name else "(null)"
        pr_err(m, "Dump kprobe:")
        log_store(
            m, f".symbol_name = {name}, .offset = {v.offset:x}, .addr = {m.image.symbolize(v.addr)}", LogLevel.ERR
        )
        return 0

    def _hc_callback(self, which: int, probe: int, regs: int, arg: int) -> int:
        """From kprobe_host_pre/post_handler and kretprobe_host_handler/entry_handler: a Python
        handler's turn."""
        role = ROLES[which]
        m = self.m
        kretprobe = role in ("ret", "entry")
        kp = probe + m.types.offsetof("kretprobe", "kp") if kretprobe else probe
        rec = self.kprobes.probes.get(kp)
        fn = rec.py.get(role) if rec is not None else None
        if rec is None or fn is None:
            return 0
        rec.hits[role] = rec.hits.get(role, 0) + 1
        if kretprobe:
            return int(fn(m.struct("kretprobe_instance", arg), m.struct("pt_regs", regs)) or 0)
        if role == "pre":
            return int(fn(self.kprobes.view(probe), m.struct("pt_regs", regs)) or 0)
        fn(self.kprobes.view(probe), m.struct("pt_regs", regs), arg)
        return 0

    # --- kretprobes ----------------------------------------------------------------------------

    def _hc_kretprobe_register(self, rp: int, *_args) -> int:
        try:
            self.kretprobes.register(rp, self._caller(rp))
        except KlpemuError as e:
            return -(e.errno or EINVAL)
        return 0

    def _hc_kretprobe_unregister(self, rp: int, *_args) -> int:
        try:
            return self._unregister(rp, lambda: self.kretprobes.unregister_top(rp))
        except KlpemuError:
            self.kretprobes.view(rp).kp.addr = 0  # as unregister_kretprobes marks one it could not find
        return 0
