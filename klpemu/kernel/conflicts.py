"""The conflict record: every meeting of two users of one function, the rule that decided it,
and what came of it.

The kernel decides these meetings in several places (ftrace's IPMODIFY check, kprobes' choice
of ftrace ops, livepatch's redirection of a whole function body) and says little about them: a
-EBUSY, perhaps one log line. Here each meeting leaves a record: the emulated time, the site,
the user that was there and the one that arrived, the rule, the errno and the outcome. ftrace
reports ops meeting at a site (attached, or refused by the IPMODIFY rule); kprobes reports a
probe arriving in the body of a redirected function; the records name the owners behind the
ops (which livepatch, which probe of which module).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from errno import EBUSY, errorcode
from typing import TYPE_CHECKING

from ..abi import KPROBE_FLAG

if TYPE_CHECKING:
    from ..machine.machine import Machine
    from .ftrace.ops import FtraceOps
    from .kprobes.core import Kprobes
    from .kprobes.probe import Probe
    from .livepatch.core import Livepatch


RULES = {
    "livepatch-kprobe-post": "a kprobe with a post handler needs kprobe_ipmodify_ops; a livepatch's ops is "
    "IPMODIFY too, and ftrace allows one IPMODIFY ops per function",
    "livepatch-kretprobe": "a kretprobe rewrites the return address on the stack, not regs->ip: mainline "
    "(5.4+) arms it on kprobe_ftrace_ops, beside the livepatch",
    "livepatch-kretprobe-legacy": "before 5.4 every kprobe at a fentry site was IPMODIFY, so a kretprobe and "
    "a livepatch excluded each other (what livepatch.rst still says)",
    "livepatch-kprobe": "a kprobe without a post handler leaves regs->ip alone: kprobe_ftrace_ops is not "
    "IPMODIFY and shares the site with the livepatch",
    "livepatch-function-tracer": "the function tracer only records: both handlers run from the list function, "
    "the trace shows the old function and the call goes to the new one",
    "ipmodify": "ftrace allows one IPMODIFY ops per function (__ftrace_hash_update_ipmodify)",
    "kprobe-in-redirected-body": "an int3 kprobe inside a function a livepatch redirects stops firing for the "
    "tasks that run the new function (livepatch.rst, limitations)",
    "shared-site": "ops that do not change regs->ip share a site: both handlers run from the list function",
}


@dataclass
class Conflict:
    time_ns: int
    site: int
    function: str
    present: str  # the user that was there first
    arriving: str
    rule: str
    errno: int  # 0, or the negative errno the arriving user got
    outcome: str
    policy: str  # kprobes' policy when it happened

    def format(self) -> str:
        sec, ns = divmod(self.time_ns, 1_000_000_000)
        err = f"{self.errno} ({_errname(self.errno)})" if self.errno else "0"
        return (
            f"[{sec:5d}.{ns // 1000:06d}] {self.function} (0x{self.site:x}): {self.arriving} "
            f"meets {self.present}\n"
            f"    rule {self.rule} ({self.policy}): {RULES[self.rule]}\n"
            f"    errno {err}: {self.outcome}\n"
        )


def _errname(errno: int) -> str:
    return errorcode.get(-errno, "E?")


class Conflicts:
    def __init__(self, machine: Machine):
        self.m = machine
        self.records: list[Conflict] = []
        self._kprobes_peer: Kprobes | None = None
        self._livepatch: Livepatch | None = None

    def connect(self, kprobes: Kprobes, livepatch: Livepatch) -> None:
        """The users the record names. They report to the record, so they are built after it
        and connected to it once they exist."""
        self._kprobes_peer, self._livepatch = kprobes, livepatch

    # --- who is behind an ops --------------------------------------------------------------------

    def _kprobes(self) -> Kprobes:
        assert self._kprobes_peer is not None, "Conflicts.connect was not called"
        return self._kprobes_peer

    def _lp(self) -> Livepatch:
        assert self._livepatch is not None, "Conflicts.connect was not called"
        return self._livepatch

    def _patch_name(self, ops: FtraceOps, ip: int) -> str:
        return self._patch_of(ops, ip) or "livepatch"

    def _is_klp_fops(self, ops: FtraceOps, ip: int) -> bool:
        """Whether ops is the fops of the klp_ops of the function at ip."""
        klp = self._lp().patch_layer.ops.get(ip)
        return (klp is not None and klp.fops is ops) or ops.name.startswith("livepatch:")

    def _patch_of(self, ops: FtraceOps, ip: int) -> str | None:
        """The livepatch behind a klp_ops' fops: the newest patch with a func for ip (the one
        being enabled counts: its ops registers before the patch is in effect)."""
        lp = self._lp()
        if not any(klp.fops is ops for klp in lp.patch_layer.ops.values()) and not ops.name.startswith("livepatch:"):
            return None
        patches = list(lp.patches)
        if lp.transition.patch is not None and lp.transition.patch not in patches:
            patches.append(lp.transition.patch)
        sym = self.m.image.function_at(ip)
        for patch in reversed(patches):
            for func in lp.all_funcs(patch):
                if sym is not None and self.m.struct("klp_func", func).old_func == sym.addr:
                    return f"livepatch '{lp.name(patch)}'"
        return "livepatch"

    def _where(self, addr: int) -> str:
        sym = self.m.image.function_at(addr)
        if sym is None:
            return f"0x{addr:x}"
        return f"{sym.name}+0x{addr - sym.addr:x}"

    def describe_probe(self, kp: int) -> str:
        kprobes = self._kprobes()
        probe = kprobes.probes.get(kp)
        v = kprobes.view(kp)
        where = self._where(v.addr)
        owner = probe.owner if probe is not None else "?"
        if probe is not None and probe.kind == "r":
            return f"kretprobe at {where} [{owner}]"
        post = ", post_handler" if v.post_handler else ""
        return f"kprobe at {where}{post} [{owner}]"

    def owners(self, ops: FtraceOps, ip: int) -> list[tuple[str, str]]:
        """(kind, description) of each user behind ops at ip."""
        name = self._patch_of(ops, ip)
        if name is not None:
            return [("livepatch", name)]
        if ops.name in ("kprobe_ftrace_ops", "kprobe_ipmodify_ops"):
            kprobes = self._kprobes()
            out = []
            for kp in kprobes.probes_on(ops, ip):
                v = kprobes.view(kp)
                if v.pre_handler == kprobes.pre_handler_kretprobe:
                    kind = "kretprobe"
                else:
                    kind = "kprobe-post" if v.post_handler else "kprobe"
                out.append((kind, self.describe_probe(kp)))
            return out or [("kprobe", ops.name)]
        if ops.name == "function":
            return [("function tracer", "the function tracer")]
        return [("ops", f"ftrace ops '{ops.name}'")]

    # --- recording -------------------------------------------------------------------------------

    def _record(self, ip: int, present: str, arriving: str, rule: str, errno: int, outcome: str) -> None:
        m = self.m
        sym = m.image.function_at(ip)
        self.records.append(
            Conflict(
                m.now,
                ip,
                sym.name if sym is not None else f"0x{ip:x}",
                present,
                arriving,
                rule,
                errno,
                outcome,
                self._kprobes().policy,
            )
        )

    @staticmethod
    def _rule(kinds: set[str], policy: str, refused: bool) -> str:
        if "livepatch" in kinds:
            if "kprobe-post" in kinds:
                return "livepatch-kprobe-post"
            if "kretprobe" in kinds:
                return "livepatch-kretprobe-legacy" if refused and policy == "legacy" else "livepatch-kretprobe"
            if "kprobe" in kinds:
                return "livepatch-kprobe"
            if "function tracer" in kinds:
                return "livepatch-function-tracer"
        return "ipmodify" if refused else "shared-site"

    def ipmodify_refused(self, ip: int, present: FtraceOps, arriving: FtraceOps) -> None:
        """ftrace refused arriving at ip: present already holds its IPMODIFY flag."""
        policy = self._kprobes().policy
        for pk, pd in self.owners(present, ip):
            for ak, ad in self.owners(arriving, ip):
                rule = self._rule({pk, ak}, policy, True)
                self._record(ip, pd, ad, rule, -EBUSY, f"{ad} is refused; {pd} stays in effect")

    def ops_attached(self, ops: FtraceOps, ips: set[int], others: dict[int, list[FtraceOps]]) -> None:
        """ops now traces ips; others lists, per ip, the ops that were tracing it already."""
        policy = self._kprobes().policy
        for ip, present in sorted(others.items()):
            for other in present:
                for pk, pd in self.owners(other, ip):
                    for ak, ad in self.owners(ops, ip):
                        rule = self._rule({pk, ak}, policy, False)
                        self._record(ip, pd, ad, rule, 0, self._coexist(pk, ak))
        for ip in sorted(ips):
            if self._is_klp_fops(ops, ip):
                self._redirected_body(ip, functools.partial(self._patch_name, ops, ip))

    @staticmethod
    def _coexist(a: str, b: str) -> str:
        kinds = {a, b}
        if kinds == {"livepatch", "kretprobe"}:
            return "both stay: the kretprobe's handler runs when the new function returns"
        if kinds == {"livepatch", "kprobe"}:
            return "both stay: the probe fires at the old function's entry, then the call is redirected"
        if kinds == {"livepatch", "function tracer"}:
            return "both stay: the trace shows the old function, the new one runs"
        return "both stay: both handlers run"

    def _redirected_body(self, ip: int, patch_name: Callable[[], str]) -> None:
        """A livepatch now redirects the function at ip: warn of int3 probes inside its body.
        The patch is named only when there is something to record: finding it reads every
        func of every patch, which a registration per patched function must not pay."""
        sym = self.m.image.function_at(ip)
        if sym is None:
            return
        kprobes = self._kprobes()
        for p in kprobes.table():
            v = kprobes.view(p)
            if sym.addr < v.addr < sym.addr + sym.size and not v.flags & KPROBE_FLAG["FTRACE"]:
                patch = patch_name()
                for kp in kprobes.probes_at(v.addr):
                    probe = self.describe_probe(kp)
                    self._record(
                        v.addr,
                        probe,
                        patch,
                        "kprobe-in-redirected-body",
                        0,
                        f"warning: {probe} will not fire while {patch} redirects {sym.name}",
                    )

    def kprobe_arrived(self, probe: Probe) -> None:
        """A probe was registered: warn if it sits inside a body a livepatch redirects."""
        kprobes = self._kprobes()
        v = kprobes.view(probe.kp)
        if v.flags & KPROBE_FLAG["FTRACE"]:  # at the fentry site: ftrace reported the meeting
            return
        sym = self.m.image.function_at(v.addr)
        if sym is None or sym.addr == v.addr:
            return
        klp = self._lp().patch_layer.ops.get(sym.addr)
        if klp is None or not self._lp().patch_layer.func_stack(sym.addr):
            return
        patch = self._patch_of(klp.fops, sym.addr) or "livepatch"
        desc = self.describe_probe(probe.kp)
        self._record(
            v.addr,
            patch,
            desc,
            "kprobe-in-redirected-body",
            0,
            f"warning: {desc} will not fire while {patch} redirects {sym.name}",
        )

    # --- output ----------------------------------------------------------------------------------

    def text(self) -> str:
        return "".join(c.format() for c in self.records) if self.records else "no conflicts recorded\n"

    def to_json(self) -> str:
        return json.dumps([asdict(c) for c in self.records], indent=2) + "\n"
