"""The workloads a campaign patches under each consistency model: what runs on the machine, the
livepatch module that changes it, and the (old, new) function pairs the oracle watches."""

from __future__ import annotations

from dataclasses import dataclass
from errno import EINVAL

from ..errors import KlpemuError


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    setup: str  # shell commands run once, before the snapshot every run starts from
    patch: str  # the livepatch module and its parameters
    pairs: tuple[tuple[str, str], ...]  # (old, new) function names, for the oracle
    counter: str = ""  # a module parameter counting what a mixed execution broke, if any

    @property
    def patch_name(self) -> str:
        return self.patch.split()[0].replace("-", "_")


CALLER_CALLEE_PAIRS = (("cc_caller", "livepatch_cc_caller"), ("cc_callee", "livepatch_cc_callee"))

WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "caller-callee",
            "two kernel threads in a loop through cc_caller, which calls cc_callee, sleeps 20 ms, calls "
            "it again; the patch changes both",
            "insmod klp_caller_callee threads=2 inside_ms=20 outside_ms=5",
            "klp_caller_callee_patch",
            CALLER_CALLEE_PAIRS,
            "/sys/module/klp_caller_callee/parameters/mixed",
        ),
        Workload(
            "relay",
            "caller-callee with the threads passing a token: cc_caller is always on some stack, though "
            "each thread leaves it at every turn",
            "insmod klp_caller_callee threads=2 relay=1 inside_ms=20",
            "klp_caller_callee_patch",
            CALLER_CALLEE_PAIRS,
            "/sys/module/klp_caller_callee/parameters/mixed",
        ),
        Workload(
            "sleeper",
            "a kernel thread asleep inside the patched function (klab_sleeper), never leaving it",
            "insmod klab_sleeper func=klab_commit",
            "klab_sleeper_patch target=klab_commit",
            (("klab_commit", "livepatch_klab_step"),),
        ),
        Workload(
            "syscall",
            "test-syscall.sh's test_klp_syscall: a user task per CPU calling getpid in a loop",
            "spawn test_klp-call_getpid; spawn test_klp-call_getpid",
            "test_klp_syscall",
            (("sys_getpid", "lp_sys_getpid"),),
        ),
    )
}


def workload(name: str) -> Workload:
    if name not in WORKLOADS:
        raise KlpemuError(f"unknown workload '{name}' (one of {', '.join(WORKLOADS)})", EINVAL)
    return WORKLOADS[name]
