"""A probe at a fentry site, armed through ftrace (kernel/kprobes.c, arch/x86/kernel/kprobes/ftrace.c)."""

from __future__ import annotations

from errno import EBUSY, EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.types import View
    from ..ftrace import Ftrace
    from ..ftrace.ops import FtraceOps

POLICIES = ("mainline", "legacy")


class KprobeFtrace:
    """kprobe_ftrace_ops and kprobe_ipmodify_ops: each registered with ftrace while a probe
    uses it (kprobe_ftrace_enabled, kprobe_ipmodify_enabled)."""

    def __init__(self, ftrace: Ftrace):
        self.ftrace = ftrace
        self._policy = "mainline"
        self._ops: dict[bool, FtraceOps] = {}  # by IPMODIFY, made on first use
        self._users: dict[FtraceOps, int] = {}

    @property
    def policy(self) -> str:
        """Which ops a probe takes: "mainline" (the IPMODIFY one only with a post handler, since
        5.4) or "legacy" (always the IPMODIFY one: a kretprobe and a livepatch on one function
        then exclude each other, as livepatch.rst still says)."""
        return self._policy

    @policy.setter
    def policy(self, name: str) -> None:
        if name not in POLICIES:
            raise KlpemuError(f"kprobes policy must be one of {', '.join(POLICIES)}", EINVAL)
        if any(self._users.values()):
            raise KlpemuError("kprobes policy cannot change while probes are armed through ftrace", EBUSY)
        self._policy = name

    @staticmethod
    def prepare(v: View) -> None:
        """arch_prepare_kprobe_ftrace: nothing is stepped; the site's 5 bytes are the instruction."""
        v.ainsn.insn = 0
        v.ainsn.size = 5

    def _ops_for(self, ipmodify: bool) -> FtraceOps:
        if ipmodify not in self._ops:
            name = "kprobe_ipmodify_ops" if ipmodify else "kprobe_ftrace_ops"
            self._ops[ipmodify] = self.ftrace.static_ops(name, name)
        return self._ops[ipmodify]

    def users(self) -> dict[FtraceOps, int]:
        """Each ops' count of armed probes (kprobe_ftrace_enabled, kprobe_ipmodify_enabled)."""
        return dict(self._users)

    def arm(self, addr: int, post_handler: bool) -> FtraceOps:
        """arm_kprobe_ftrace: addr joins the filter of the ops the probe takes, which registers
        with its first user. Returns that ops."""
        ops = self._ops_for(post_handler or self._policy == "legacy")
        ft = self.ftrace
        ft.set_filter(ops, [addr], reset=False)
        if not self._users.get(ops):
            try:
                ft.register(ops)
            except KlpemuError:
                ft.set_filter(ops, [addr], remove=True)
                raise
        self._users[ops] = self._users.get(ops, 0) + 1
        return ops

    def disarm(self, ops: FtraceOps, addr: int) -> None:
        """disarm_kprobe_ftrace: the ops unregisters with its last user, then addr leaves its filter."""
        ft = self.ftrace
        if self._users[ops] == 1:
            ft.unregister(ops)
        self._users[ops] -= 1
        ft.set_filter(ops, [addr], remove=True)
