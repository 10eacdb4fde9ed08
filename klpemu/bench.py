"""Benchmarks of the machine beside bare Unicorn, shared by benchmarks/*.py and `klpemu bench`.

BareGuest runs guest code on a fresh Unicorn with no hooks at all: either the kernel image mapped
as the machine maps it (never booted), or a byte copy of a running machine's memory. The rest is
the handler-overhead benchmark (benchmarks/handler_overhead.py and `klpemu bench`): what one
traced call costs under each ftrace, livepatch and kprobe configuration, along the axes of
Linux's samples/ftrace/ftrace-ops.c.

The workload is bench_call_loop(n) (firmware/kernel/bench.c): a notrace loop calling the
traceable bench_leaf(x) = x + 1 n times. Each configuration is applied to one booted machine
through the ftrace control plane, measured, and undone:

  (a) the loop's `call bench_leaf` retargeted to bench_leaf+5, past the site (notrace)
  (b) the fentry site as boot left it: a 5-byte NOP, no ops
  (c) one ops (ftrace_empty_func) on its own trampoline, a copy of ftrace_caller
  (d) the same ops with private trampolines off: the shared ftrace_caller, whose slot calls
      the list function, since a single DYNAMIC ops is not called straight from a shared
      slot (as Linux's update_ftrace_function)
  (e) one SAVE_REGS ops on its own trampoline, a copy of ftrace_regs_caller
  (f) R relevant + I irrelevant ops: ftrace_caller and the list function
  (g) ftrace_redirect_func (IPMODIFY) sending bench_leaf to ftrace_selftest_leaf
  (h) a Python ops (ft.ops_python) doing the same redirect, via HC_FTRACE_CALLBACK
  (i) no ftrace: a Python UC_HOOK_CODE bounded to bench_leaf's entry writes RIP

and, set up through the livepatch core (KlpBuilder patches, bench_livepatch.py) and the kprobes
API, with native handlers from bench.c that count their calls:

  (j) a livepatch sending bench_leaf to ftrace_selftest_leaf, no transition
  (k) a second patch (to livepatch_bench_leaf) in transition, the calling task unpatched: the
      handler takes the func below, the first patch's
  (l) the first patch in transition, the calling task unpatched: nothing below, the original runs
  (m) an atomic-replace patch of another function in transition, the calling task switched:
      its nop func is on top of bench_leaf's func_stack, and the original runs
  (n) the two patches stacked, no transition: the top one's function runs
  (o) a kprobe at the fentry site (kprobe_ftrace_ops), a pre handler only
  (p) the same with a post handler: kprobe_ipmodify_ops
  (q) a kprobe on the body's lea: an int3, the instruction stepped in its insn slot
  (r) a kretprobe at the fentry site
  (s) that kretprobe and the livepatch of (j) on the same site, through the list function
  (t) the livepatch of (j) while a timeline records the leaf's calls (host hooks, no guest code)

and through the trace arrays (klpemu/kernel/ftrace/trace_array.py):

  (u) function_graph with set_graph_function naming another function: the entry hook alone
      (ftrace_graph_func, prepare_ftrace_return, trace_graph_entry's filter), nothing recorded
      and the return not hooked
  (v) function_graph recording the call: its TRACE_GRAPH_ENT record at entry, the return through
      return_to_handler and its TRACE_GRAPH_RET record. Counted in runs of 16 and 32 calls after
      emptying the ring, so both begin one page; no bare run (the ring's page changes are not
      per call, and the bare copy could not empty its ring between runs)

The knobs of ftrace-ops.c, and why each one moves the cost:
  nr_ops_relevant    one ops on a site gets a trampoline of its own whose call slot calls its
                     handler directly; a second ops on the same site sends the site to the
                     shared ftrace_caller, whose slot calls the list function, which tests and
                     calls every ops on ftrace_ops_list in turn.
  nr_ops_irrelevant  ops filtered to other functions still sit on ftrace_ops_list. A site that
                     goes through the list function tests each of them (a filter hash lookup)
                     on every call; a site on its own trampoline never looks at them.
  save_regs          FTRACE_OPS_FL_SAVE_REGS picks ftrace_regs_caller, which saves a full
                     pt_regs (flags, callee-saved registers, cs, ss) instead of the argument
                     registers alone, and restores them afterwards.

What is measured, per configuration:
  1. Guest instructions per call, exactly: a UC_HOOK_CODE counter on the machine's Uc (with
     ctl_flush_tb, since a hook applies only to blocks translated after it), around m.call of
     the loop for n and 2n calls; the difference over n. Counted apart from any timing. The
     hypercalls made per call are counted the same way, by wrapping m.hypercalls, and the
     interrupts the host delivers (a kprobe's int3) by a UC_HOOK_INTR counter. Each instruction
     is also put in one of three parts: the loop's, the body (whichever function ran for the
     leaf) or the path (the site and everything it leads to).
  2. Wall time per call: m.call(bench_call_loop, N), the machine's own Uc with its hooks, one
     emu_start, no slicing; best of R runs after a warm-up run.
  3. Bare Unicorn in the same run: a fresh Uc holding a byte copy of the machine's RAM taken
     after the configuration was applied (page tables, patched sites, private trampolines,
     ops and hashes), with CPU 0's control registers and %gs base, no hooks, the same
     emu_start(count=...) call. For (a)-(g) and (j)-(s) but (q) it runs exactly the machine's
     instruction stream.
     What the host does cannot be copied: in (h) the hypercall's `out` reaches no handler, so
     nothing redirects and the call returns into bench_leaf's body (one instruction fewer,
     the replacement's own NOP5 site); in (i) there is no hook, so bare runs (b); (q) has no
     bare run, since bare Unicorn cannot deliver the int3. The ratio is machine calls/s over
     bare calls/s.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from errno import EBUSY, EINVAL, EIO
from pathlib import Path

import unicorn
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INTR, UC_MODE_64, Uc
from unicorn import x86_const as x
from unicorn.unicorn import UcContext

from .bench_livepatch import BenchLivepatches
from .errors import KlpemuError
from .kernel.ftrace.ops import FL, FtraceOps
from .kernel.kprobes.core import FLAG as KPROBE_FLAG
from .kernel.kprobes.insn import MAX_INSN_SIZE
from .kernel.text_poke import MCOUNT_INSN_SIZE, NOP5, call_insn
from .machine.image import KernelImage
from .machine.machine import FOREVER, Machine, MachineConfig
from .machine.memory import PTE_RW, PTE_USER, GuestMemory
from .system import System

ARG_REGS = (x.UC_X86_REG_RDI, x.UC_X86_REG_RSI, x.UC_X86_REG_RDX)
# Written in this order: paging goes on (CR0.PG) only once CR3 and CR4.PAE hold.
CPU_STATE_REGS = (x.UC_X86_REG_CR3, x.UC_X86_REG_CR4, x.UC_X86_REG_CR0, x.UC_X86_REG_GS_BASE, x.UC_X86_REG_FS_BASE)
# What enters the host during a count: a hypercall (its number) or an interrupt the host
# delivers, as ("intr", vector), so that one counter holds both.
Event = int | tuple[str, int]


def _enable_paging(uc: Uc, pml4: int) -> None:
    uc.reg_write(x.UC_X86_REG_CR3, pml4)
    uc.reg_write(x.UC_X86_REG_CR4, uc.reg_read(x.UC_X86_REG_CR4) | (1 << 5))  # PAE
    uc.reg_write(x.UC_X86_REG_CR0, uc.reg_read(x.UC_X86_REG_CR0) | (1 << 31) | (1 << 16))  # PG, WP


class BareGuest:
    """Guest code on a fresh Uc with no hooks: the image alone (mapped and paged as
    Machine._load does, never booted), or a copy of a machine's memory (copy_of).

    Good for functions that touch nothing but their stack and guest memory.
    """

    mem: GuestMemory | None  # None for a copy: its virtual-to-physical map is the machine's

    def __init__(self, image: KernelImage, mem_mb: int = MachineConfig.mem_mb):
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        mem = GuestMemory(uc, mem_mb << 20)
        for seg in image.segments:
            flags = (PTE_RW if seg.writable else 0) | (PTE_USER if seg.user else 0)
            mem.map_range(seg.vaddr, seg.memsz, flags, seg.data)
        for ip in image.mcount_loc:  # as ftrace_init does at boot, so both run the same code
            mem.write(ip, NOP5)
        _enable_paging(uc, mem.pml4)
        self.mem = mem
        self._setup(image, uc, mem.phys)

    @classmethod
    def copy_of(cls, machine: Machine, cpu: int = 0) -> BareGuest:
        """A byte copy of the machine's RAM (so its page tables, live text, heap and data) on a
        fresh Uc, with the control registers and %fs/%gs bases of that CPU in kernel mode."""
        self = cls.__new__(cls)
        size = machine.config.mem_mb << 20
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(0, size)
        uc.mem_write(0, bytes(machine.uc.mem_read(0, size)))
        c = machine.cpus[cpu]
        ctx = c.kernel_ctx if c.kernel_ctx is not None else c.ctx
        assert isinstance(ctx, UcContext)  # a booted CPU has a saved context; Cpu types it as object
        for reg in CPU_STATE_REGS:
            uc.reg_write(reg, ctx.reg_read(reg))
        self.mem = None
        self._setup(machine.image, uc, machine.mem.phys)
        return self

    def _setup(self, image: KernelImage, uc: Uc, phys: Callable[[int], int]) -> None:
        self.image = image
        self.uc = uc
        uc.reg_write(x.UC_X86_REG_EFLAGS, 0x2)
        self.ctx = uc.context_save()
        self.sp = image.addr("hostcall_stack_top") - 8
        self.sentinel = image.addr("hostcall_return")
        self._ret_slot = phys(self.sp)
        self._flushed = False

    def call(self, func: str | int, *args: int, count: int = FOREVER) -> int:
        """func(*args) to its return; count=0 runs it as Unicorn runs by default, uncounted
        (on a guest of its own: Unicorn drops its count hook and flushes each time it changes)."""
        uc = self.uc
        uc.context_restore(self.ctx)
        uc.mem_write(self._ret_slot, struct.pack("<Q", self.sentinel))
        uc.reg_write(x.UC_X86_REG_RSP, self.sp)
        uc.reg_write(x.UC_X86_REG_RBP, 0)
        for reg, value in zip(ARG_REGS, args, strict=False):
            uc.reg_write(reg, value)
        start = self.image.addr(func) if isinstance(func, str) else func
        uc.emu_start(start, self.sentinel, count=count)
        if count and not self._flushed:  # as the machine does: blocks translated before count= ignore it
            uc.ctl_flush_tb()  # type: ignore[attr-defined]  # mypy follows unicorn's py2 module, whose Uc lacks it
            self._flushed = True
        rip = uc.reg_read(x.UC_X86_REG_RIP)
        if rip != self.sentinel:
            raise RuntimeError(f"{self.image.symbolize(start)} stopped at {self.image.symbolize(rip)}")
        return uc.reg_read(x.UC_X86_REG_RAX)


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The shortest wall time of repeat calls of fn, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def format_table(head: tuple[str, ...], body: Sequence[tuple[str, ...]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line) -> str:
        cells = enumerate(zip(line, widths, strict=False))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in cells)

    return "\n".join([fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, body)])


# --- the handler-overhead benchmark --------------------------------------------------------------

LOOP, LEAF = "bench_call_loop", "bench_leaf"
# Where the redirecting configurations send bench_leaf: a traced function with the same code
# (x + 1, byte for byte) and, like a livepatch's replacement, its own fentry site (a NOP5).
REPLACEMENT = "ftrace_selftest_leaf"
# What the irrelevant ops trace (ftrace-ops.c's tracee_irrelevant): never called by the loop.
IRRELEVANT = "cmdline_proc_show"
# The newer patch's replacement where two livepatches stack on the leaf: the same code again.
LIVEPATCH_LEAF = "livepatch_bench_leaf"
# What an atomic-replace patch changes itself: none of the leaf's business, so the leaf gets a nop.
REPLACE_TARGET, REPLACE_NEW = "cmdline_proc_show", "version_proc_show"
# The kprobe and kretprobe handlers (firmware/kernel/bench.c): native, each counting its calls.
KPROBE_PRE, KPROBE_POST, KRETPROBE_HANDLER = (
    "bench_kprobe_pre_handler",
    "bench_kprobe_post_handler",
    "bench_kretprobe_handler",
)
HANDLER_CALLS = {
    KPROBE_PRE: "bench_kprobe_pre_calls",
    KPROBE_POST: "bench_kprobe_post_calls",
    KRETPROBE_HANDLER: "bench_kretprobe_calls",
}
VECTOR_NAMES = {3: "int3"}
COUNT_N = 100  # the counting runs make COUNT_N and 2 * COUNT_N calls
GRAPH_COUNT_N = 16  # (v)'s runs: 16 and 32 calls, 104 bytes of records each, fit one 4080-byte page
WARM_UP_CALLS = 1000
HOST_CALLS_DIVISOR = 20  # (h), (i) and (q) enter Python on every call: time N / 20 calls
DEFAULT_CALLS = 200_000
DEFAULT_REPEAT = 5

# Real hardware beside the emulator's instruction counts: Linux's samples/ftrace/ftrace-ops.c
# (Mark Rutland) on x86, a 2 GHz Xeon E5-2660 under QEMU+KVM, 100k calls of an empty function.
# Keyed by the configuration that takes the same path; (f)'s figure is for 2 relevant ops.
REAL_HARDWARE_NS = {"c": 16, "e": 44, "f": 119}
REAL_HARDWARE = "samples/ftrace/ftrace-ops.c on x86 KVM"
REAL_HARDWARE_RELEVANT = 2
ANCHORS_NS = {
    "one ops, own trampoline (c)": REAL_HARDWARE_NS["c"],
    "one ops, own trampoline, 5 irrelevant ops": REAL_HARDWARE_NS["c"],
    "2 relevant ops, list function (f)": REAL_HARDWARE_NS["f"],
    "one ops, save_regs (e)": REAL_HARDWARE_NS["e"],
}
# Said wherever emulated nanoseconds stand beside real ones.
WHAT_NS_MEASURE = (
    "The ns/call measured here are the emulator's (Unicorn and Python on this host), not ftrace's: "
    f"compare instructions per call, and take ftrace's own cost from the real-hardware column ({REAL_HARDWARE})."
)


@dataclass
class Applied:
    """A configuration in place: how the traced call goes, and what the host does on it."""

    path: str
    skipped: frozenset[int] = frozenset()  # hooked addresses whose instruction a PC write skips
    handlers: tuple[str, ...] = ()  # guest handlers that must run once per call (HANDLER_CALLS)
    host_hooks: int = 0  # host code hooks run per call that change nothing in the guest (a timeline's)
    # A configuration writing the trace ring begins a page every few dozen calls, not on every
    # call: it is counted in runs short enough for one page, each after prepare() empties the ring.
    prepare: Callable[[], None] | None = None
    count_n: int = 0  # the calls of the shorter counting run, when not COUNT_N
    slack_per_call: int = 0  # instructions a timed call may take beyond the counted ones


@dataclass(frozen=True)
class Config:
    key: str
    name: str
    apply: Callable[[HandlerBench], AbstractContextManager[Applied]]
    host: bool = False  # the host runs on every call: fewer calls are timed
    bare: bool = True  # bare Unicorn can run it: no int3 (it has no interrupt delivery)

    def label(self, relevant: int = 2, irrelevant: int = 5) -> str:
        """The name with (f)'s numbers filled in."""
        return self.name.format(relevant=relevant, irrelevant=irrelevant)


@dataclass
class Count:
    """Exact counts for one call (one loop iteration)."""

    insns: int  # guest instructions executed
    counted: int  # what Unicorn counts: also a hooked instruction a PC write skipped
    by_function: dict[str, int]
    hypercalls: dict[str, int] = field(default_factory=dict)
    fixed: int = 0  # instructions of one bench_call_loop call outside its iterations
    interrupts: dict[str, int] = field(default_factory=dict)  # delivered by the host (int3)
    parts: dict[str, int] = field(default_factory=dict)  # loop, path, body (HandlerBench._part)
    hooks: int = 0  # code hooks the host runs per call besides redirecting ones (Applied.host_hooks)

    @property
    def host_entries(self) -> int:
        """Times per call the host runs: hypercalls, interrupts it delivers and code hooks."""
        return sum(self.hypercalls.values()) + sum(self.interrupts.values()) + self.counted - self.insns + self.hooks


class HandlerBench:
    """The configurations, applied one at a time to one booted machine."""

    def __init__(self, machine: Machine, relevant: int = 2, irrelevant: int = 5):
        if relevant < 0 or irrelevant < 0:
            raise KlpemuError("the numbers of relevant and irrelevant ops must not be negative", EINVAL)
        self.m = machine
        self.ft = machine.kernel.ftrace
        self.relevant, self.irrelevant = relevant, irrelevant
        sym = machine.image.addr
        self.loop, self.leaf, self.replacement = sym(LOOP), sym(LEAF), sym(REPLACEMENT)
        # Whichever of these runs for the leaf is its body; the loop is the loop; the rest is path.
        self.bodies = {sym(name): name for name in (LEAF, REPLACEMENT, LIVEPATCH_LEAF)}
        self.loop_call = self._call_site()
        if machine.mem.read(self.leaf, 5) != NOP5:
            raise KlpemuError(f"{LEAF}'s fentry site is not a NOP5: is something tracing it?", EBUSY)

    def _call_site(self) -> int:
        """The address of the loop's `call bench_leaf`."""
        sym = self.m.image.lookup(LOOP)
        cs = Cs(CS_ARCH_X86, CS_MODE_64)
        calls = [
            i.address
            for i in cs.disasm(self.m.mem.read(sym.addr, sym.size), sym.addr)
            if i.mnemonic == "call" and i.op_str == f"0x{self.leaf:x}"
        ]
        if len(calls) != 1:
            raise KlpemuError(f"expected one call of {LEAF} in {LOOP}, found {len(calls)}", EINVAL)
        return calls[0]

    # --- describing a path ---------------------------------------------------------------------

    def _name(self, addr: int) -> str:
        sym = self.m.image.function_at(addr)
        return sym.name if sym is not None else f"0x{addr:x}"

    def path(self) -> str:
        """Where bench_leaf's site goes now, as `site -> trampoline -> handler`."""
        ft = self.ft
        target = ft.site_target(self.leaf)
        if target is None:
            return "NOP5 site"
        hit = ft.trampoline_at(target)
        if hit is not None:
            ops = hit[0]
            flags = ft.flags(ops)
            template = "ftrace_regs_caller" if flags & FL["SAVE_REGS"] else "ftrace_caller"
            handler = self._name(ft.tramps.handler_of(ops, flags))
            return f"own trampoline (copy of {template}) -> {handler}" + self._host_note(handler)
        slot = ft.tramps.slots[0 if target == ft.tramps.caller else 1]
        handler = self._name(ft.tramps.slot_target(slot))
        note = f" (tests {len(ft.ops)} ops)" if handler == "ftrace_ops_list_func" else self._host_note(handler)
        return f"{ft.tramps.owner_name(target)} -> {handler}{note}"

    @staticmethod
    def _host_note(handler: str) -> str:
        return " -> HC_FTRACE_CALLBACK (Python)" if handler == "ftrace_host_func" else ""

    # --- the configurations --------------------------------------------------------------------

    def _ops(self, name: str, func: str = "ftrace_empty_func", flags: int = 0, tracee: str = LEAF) -> FtraceOps:
        ops = self.ft.ops_native(name, func, flags)
        self.ft.set_filter(ops, [tracee])
        return ops

    def _redirect_ops(self, ops: FtraceOps) -> FtraceOps:
        ops.struct.private = self.replacement
        self.ft.set_filter(ops, [LEAF])
        return ops

    @contextmanager
    def _registered(self, ops_list: list[FtraceOps], private: bool = True) -> Iterator[Applied]:
        ft = self.ft
        saved = ft.private_trampolines
        ft.private_trampolines = private  # the policy applies when an ops registers
        done: list[FtraceOps] = []
        try:
            for ops in ops_list:
                ft.register(ops)
                done.append(ops)
            yield Applied(self.path())
        finally:
            for ops in reversed(done):
                ft.unregister(ops)
            ft.private_trampolines = saved

    @contextmanager
    def notrace(self) -> Iterator[Applied]:
        # The loop calls the leaf past its site: the same function, byte for byte, without
        # the NOP5, so (b) - (a) is exactly what a disabled site costs. Calling a notrace leaf
        # instead would change more than the site: gcc gives notrace leaves no frame at all.
        tp = self.m.kernel.text_poke
        old = self.m.mem.read(self.loop_call, 5)
        tp.batch([(self.loop_call, call_insn(self.loop_call, self.leaf + MCOUNT_INSN_SIZE))])
        try:
            yield Applied(f"{LOOP} calls {LEAF}+{MCOUNT_INSN_SIZE}: the leaf without its site")
        finally:
            tp.batch([(self.loop_call, old)])

    @contextmanager
    def nop5(self) -> Iterator[Applied]:
        yield Applied(self.path())

    def own_trampoline(self) -> AbstractContextManager[Applied]:
        return self._registered([self._ops("bench-own")])

    def ftrace_caller(self) -> AbstractContextManager[Applied]:
        return self._registered([self._ops("bench-shared")], private=False)

    def save_regs(self) -> AbstractContextManager[Applied]:
        return self._registered([self._ops("bench-regs", flags=FL["SAVE_REGS"])])

    def list_func(self, relevant: int | None = None, irrelevant: int | None = None) -> AbstractContextManager[Applied]:
        # As ftrace-ops.c: the relevant ops first, then the irrelevant ones (the list is
        # newest first, so the list function meets the irrelevant ones first).
        r = self.relevant if relevant is None else relevant
        i = self.irrelevant if irrelevant is None else irrelevant
        ops = [self._ops(f"bench-relevant{k}") for k in range(r)]
        ops += [self._ops(f"bench-irrelevant{k}", tracee=IRRELEVANT) for k in range(i)]
        return self._registered(ops)

    def redirect(self) -> AbstractContextManager[Applied]:
        return self._registered(
            [self._redirect_ops(self.ft.ops_native("bench-redirect", "ftrace_redirect_func", FL["IPMODIFY"]))]
        )

    def python(self) -> AbstractContextManager[Applied]:
        target = self.replacement

        def redirect(_ip: int, _parent_ip: int, regs) -> None:
            regs.ip = target

        return self._registered([self._redirect_ops(self.ft.ops_python("bench-python", redirect, FL["IPMODIFY"]))])

    # --- livepatch: klp_ftrace_handler on the leaf's site ---------------------------------------

    def _klp_applied(self, patches: BenchLivepatches) -> Applied:
        stack = ", ".join(patches.func_stack(LEAF))
        return Applied(f"{self.path()}; func_stack [{stack}]; {patches.state()}")

    @contextmanager
    def livepatch(self) -> Iterator[Applied]:
        with BenchLivepatches(self.m).session() as patches:
            patches.enable("bench_klp", LEAF, REPLACEMENT)
            yield self._klp_applied(patches)

    @contextmanager
    def livepatch_timeline(self) -> Iterator[Applied]:
        # (j) while a timeline records the leaf's calls: a hook at its entry and one at the
        # return address, in Python on the host; the guest runs the same instructions as in (j).
        from .timeline import start, stop

        with self.livepatch() as applied:
            start(self.m, LEAF)
            try:
                yield Applied(f"{applied.path}; timeline start --functions {LEAF}", host_hooks=2)
            finally:
                stop(self.m)

    @contextmanager
    def livepatch_transition_previous(self) -> Iterator[Applied]:
        # The calling task has not switched: the handler takes the func below the top one.
        with BenchLivepatches(self.m).session() as patches:
            patches.enable("bench_klp", LEAF, REPLACEMENT)
            patches.enable("bench_klp2", LEAF, LIVEPATCH_LEAF, settle=False)
            yield self._klp_applied(patches)

    @contextmanager
    def livepatch_transition_original(self) -> Iterator[Applied]:
        # Nothing below: the handler returns without touching regs->ip, the original body runs.
        with BenchLivepatches(self.m).session() as patches:
            patches.enable("bench_klp", LEAF, REPLACEMENT, settle=False)
            yield self._klp_applied(patches)

    @contextmanager
    def livepatch_nop(self) -> Iterator[Applied]:
        # A nop func lives only while its replacing patch is in transition, and a task that has
        # not switched would still take the replaced patch's func: so the calling task is let
        # switch first (in the idle loop), while the transition stays open.
        with BenchLivepatches(self.m).session() as patches:
            patches.enable("bench_klp", LEAF, REPLACEMENT)
            patches.enable("bench_klp_replace", REPLACE_TARGET, REPLACE_NEW, replace=True, settle=False)
            patches.switch_current()
            yield self._klp_applied(patches)

    @contextmanager
    def livepatch_stacked(self) -> Iterator[Applied]:
        with BenchLivepatches(self.m).session() as patches:
            patches.enable("bench_klp", LEAF, REPLACEMENT)
            patches.enable("bench_klp2", LEAF, LIVEPATCH_LEAF)
            yield self._klp_applied(patches)

    # --- kprobes and kretprobes ------------------------------------------------------------------

    @contextmanager
    def _kprobe(self, offset: int = 0, post: bool = False) -> Iterator[Applied]:
        kprobes = self.m.kernel.kprobes
        kp = kprobes.add_kprobe(LEAF, offset, pre_handler=KPROBE_PRE, post_handler=KPROBE_POST if post else None)
        try:
            handlers = (KPROBE_PRE, KPROBE_POST) if post else (KPROBE_PRE,)
            if offset:
                size = kprobes.view(kp).ainsn.size
                path = (
                    f"int3 at {LEAF}+{offset} -> kprobe_int3_handler -> {KPROBE_PRE}; the probed "
                    f"instruction ({size} bytes) stepped in its insn slot, whose int3 -> kprobe_int3_handler "
                    f"-> {KPROBE_POST if post else 'back to the next instruction'}"
                )
            else:
                ops = kprobes.ops_of(kprobes.get_kprobe(self.leaf))
                assert ops is not None  # a probe on the fentry site is armed on an ftrace ops
                path = f"{self.path()} ({ops.name}) -> {' + '.join(handlers)}"
            yield Applied(path, handlers=handlers)
        finally:
            kprobes.unregister(kp)

    def kprobe(self) -> AbstractContextManager[Applied]:
        return self._kprobe()

    def kprobe_post(self) -> AbstractContextManager[Applied]:
        return self._kprobe(post=True)

    def kprobe_int3(self) -> AbstractContextManager[Applied]:
        return self._kprobe(self._body_offset())

    def _body_offset(self) -> int:
        """Where the int3 probe goes: the leaf's `lea`, a plain instruction, stepped out of line."""
        sym = self.m.image.lookup(LEAF)
        cs = Cs(CS_ARCH_X86, CS_MODE_64)
        for i in cs.disasm(self.m.mem.read(sym.addr, sym.size), sym.addr):
            if i.mnemonic == "lea":
                return i.address - sym.addr
        raise KlpemuError(f"no lea in {LEAF}", EINVAL)

    @contextmanager
    def _kretprobe(self) -> Iterator[Applied]:
        kretprobes = self.m.kernel.kprobes.kretprobes
        rp = kretprobes.add(LEAF, handler=KRETPROBE_HANDLER)
        try:
            yield Applied(
                f"{self.path()} (kprobe_ftrace_ops) -> pre_handler_kretprobe; returns through "
                f"__kretprobe_trampoline "
                f"-> {KRETPROBE_HANDLER}",
                handlers=(KRETPROBE_HANDLER,),
            )
        finally:
            kretprobes.unregister(rp)

    def kretprobe(self) -> AbstractContextManager[Applied]:
        return self._kretprobe()

    @contextmanager
    def kretprobe_livepatch(self) -> Iterator[Applied]:
        # Since 5.4 the kretprobe's ops is not IPMODIFY: the two share the site, through the list
        # function; the return address the kretprobe swapped is the loop's, wherever the call went.
        with self._kretprobe() as applied, BenchLivepatches(self.m).session() as patches:
            patches.enable("bench_klp", LEAF, REPLACEMENT)
            yield Applied(
                f"{self._klp_applied(patches).path}; returns through __kretprobe_trampoline -> {KRETPROBE_HANDLER}",
                handlers=applied.handlers,
            )

    @contextmanager
    def _function_graph(self, graphed: bool) -> Iterator[Applied]:
        tracing = self.m.kernel.tracing
        top, graph = tracing.top, tracing.graph
        top.function.set_filter(LEAF, append=False)
        if not graphed:
            graph.set_graph(IRRELEVANT, append=False, notrace=False)
        top.set_tracer("function_graph")
        try:
            if graphed:
                path = f"{self.path()}; returns through return_to_handler -> ftrace_return_to_handler"
                yield Applied(path, prepare=top.buffer.reset, count_n=GRAPH_COUNT_N, slack_per_call=1)
            else:
                yield Applied(f"{self.path()}: set_graph_function names another function")
        finally:
            top.set_tracer("nop")
            top.function.set_filter("", append=False)
            graph.set_graph("", append=False, notrace=False)
            top.buffer.resize(1)  # back to the minimum: the next configurations find a small ring
            top.buffer.expanded = False

    @contextmanager
    def function_graph_entry(self) -> Iterator[Applied]:
        with self._function_graph(graphed=False) as applied:
            yield applied

    @contextmanager
    def function_graph(self) -> Iterator[Applied]:
        with self._function_graph(graphed=True) as applied:
            yield applied

    @contextmanager
    def code_hook(self) -> Iterator[Applied]:
        # What one would write without ftrace. Unicorn 2.1.4 honours a RIP write made inside a
        # code hook at once: the hooked instruction (bench_leaf's NOP5) does not execute and
        # emulation goes on at the new RIP within the same emu_start, so no emu_stop and
        # restart is needed. Unicorn still counts the skipped instruction (count= budgets,
        # UC_HOOK_CODE counters); the counts below take it out again.
        uc, target, leaf = self.m.uc, self.replacement, self.leaf

        def redirect(uc: Uc, _addr: int, _size: int, _ud) -> None:
            uc.reg_write(x.UC_X86_REG_RIP, target)

        h = uc.hook_add(UC_HOOK_CODE, redirect, None, leaf, leaf)
        uc.ctl_remove_cache(leaf, leaf + 1)  # the leaf's block was translated without the hook
        try:
            yield Applied(f"UC_HOOK_CODE at {LEAF} (Python) writes RIP = {REPLACEMENT}", frozenset({leaf}))
        finally:
            uc.hook_del(h)
            uc.ctl_remove_cache(leaf, leaf + 1)

    # --- counting ------------------------------------------------------------------------------

    @contextmanager
    def _counting_hypercalls(self) -> Iterator[Counter[Event]]:
        seen: Counter[Event] = Counter()
        with self.m.hypercalls.observe(lambda nr: seen.update((nr,))):
            yield seen

    @contextmanager
    def _counting_interrupts(self, seen: Counter[Event]) -> Iterator[None]:
        """Interrupts the host delivers (the int3 of a kprobe), counted into seen as ("intr", vector)."""

        def hook(_uc, intno: int, _ud) -> None:
            seen[("intr", intno)] += 1

        h = self.m.uc.hook_add(UC_HOOK_INTR, hook)
        try:
            yield
        finally:
            self.m.uc.hook_del(h)

    def _slots(self) -> dict[int, int]:
        """The out-of-line slot of each armed int3 kprobe -> the probed address."""
        kprobes = self.m.kernel.kprobes
        out = {}
        for p in kprobes.table():
            insn = kprobes.view(p).ainsn
            if insn.insn:
                out[insn.insn] = kprobes.view(p).addr
        return out

    def _int3_probes(self) -> set[int]:
        """Addresses where a kprobe's int3 replaces the first byte of an instruction."""
        kprobes = self.m.kernel.kprobes
        return {
            kprobes.view(p).addr
            for p in kprobes.table()
            if kprobes.armed(p) and not kprobes.view(p).flags & KPROBE_FLAG["FTRACE"]
        }

    def _part(self, addr: int, slots: dict[int, int], int3s: set[int]) -> str:
        """loop, body or path. The body is whichever function ran for the leaf: the leaf past its
        site, or a replacement whole (its own NOP5 included), with a probed instruction counted
        where it ran (its out-of-line copy, not the int3 that took its place). The path is the
        rest: the leaf's site, trampolines, handlers, the int3 path, the kretprobe trampoline."""
        if slots.get(addr) is not None:
            return "body"  # the copy of the probed instruction; the int3 after it is path
        sym = self.m.image.function_at(addr)
        if sym is None:
            return "path"
        if sym.name == LOOP:
            return "loop"
        if sym.addr in self.bodies and not (addr == self.leaf or addr in int3s):
            return "body"
        return "path"

    def _label(self, addr: int, slots: dict[int, int] | None = None) -> str:
        sym = self.m.image.function_at(addr)
        if sym is not None:
            return sym.name
        for slot in slots or {}:
            if slot <= addr <= slot + MAX_INSN_SIZE:
                return "kprobe insn slot"
        hit = self.ft.trampoline_at(addr)
        if hit is not None:
            template = "ftrace_regs_caller" if self.ft.flags(hit[0]) & FL["SAVE_REGS"] else "ftrace_caller"
            return f"{template} (own copy)"
        return f"0x{addr:x}"

    def count(self, applied: Applied, n: int = COUNT_N) -> Count:
        """Exact per-call counts on the machine, for the configuration in place."""
        m = self.m
        hc_names = {v: k for k, v in m.types.enums.items() if k.startswith("HC_")}
        before = self.handler_calls()
        n = applied.count_n or n
        prepare = applied.prepare or (lambda: None)

        def run(k: int) -> int:
            prepare()
            return m.call(LOOP, k)

        with self._counting_hypercalls() as seen, self._counting_interrupts(seen):
            runs = _count_runs(m.uc, run, n, seen)
        for name, calls in self.handler_calls().items():
            expected = 3 * n if name in applied.handlers else 0  # the runs make n and 2n calls
            if calls - before[name] != expected:
                raise KlpemuError(f"{name} ran {calls - before[name]} times in {3 * n} calls, not {expected}", EIO)
        per_addr, events, fixed = _per_call(runs, n)
        skipped = sum(per_addr.get(a, 0) for a in applied.skipped)
        slots, int3s = self._slots(), self._int3_probes()
        by_function: dict[str, int] = {}
        parts = {"loop": 0, "path": 0, "body": 0}
        for addr, c in per_addr.items():
            if addr not in applied.skipped:
                label = self._label(addr, slots)
                by_function[label] = by_function.get(label, 0) + c
                parts[self._part(addr, slots, int3s)] += c
        counted = sum(per_addr.values())
        hypercalls = {hc_names.get(nr, str(nr)): c for nr, c in events.items() if c and not isinstance(nr, tuple)}
        interrupts = {
            VECTOR_NAMES.get(nr[1], f"vector {nr[1]}"): c for nr, c in events.items() if c and isinstance(nr, tuple)
        }
        return Count(counted - skipped, counted, by_function, hypercalls, fixed, interrupts, parts, applied.host_hooks)

    def handler_calls(self) -> dict[str, int]:
        """How many times each benchmark kprobe handler has run so far."""
        return {name: self.m.read_var_int(var) for name, var in HANDLER_CALLS.items()}

    # --- one configuration, counted and timed --------------------------------------------------

    def measure(self, config: Config, calls: int, repeat: int, tick: Callable[[], None] = lambda: None) -> dict:
        m = self.m
        with config.apply(self) as applied:
            count = self.count(applied)
            tick()
            budget = max(calls, WARM_UP_CALLS) * (count.counted + applied.slack_per_call) + 10 * count.fixed + 10_000
            runs = [lambda n: m.call(LOOP, n, budget=budget)]
            if config.bare:
                bare = BareGuest.copy_of(m)
                bare_count = count_bare(bare)  # deletes its hook and flushes: the timed runs have none
                runs.append(lambda n: bare.call(LOOP, n))
            tick()
            times = _time_runs(runs, calls, repeat, tick)
        self.check_undone(config.key)
        machine_s = min(times[0])  # the best run: the least host noise
        row = {
            "key": config.key,
            "config": config.label(self.relevant, self.irrelevant),
            "path": applied.path,
            "calls": calls,
            "insns_per_call": count.insns,
            "unicorn_counted_per_call": count.counted,
            "path_insns_per_call": count.parts["path"],
            "body_insns_per_call": count.parts["body"],
            "by_function": count.by_function,
            "hypercalls_per_call": count.hypercalls,
            "interrupts_per_call": count.interrupts,
            "host_entries_per_call": count.host_entries,
            "fixed_insns": count.fixed,
            "real_hardware_ns": self.real_hardware_ns(config.key),
            "seconds": machine_s,
            "seconds_per_run": times[0],
            "ns_per_call": machine_s * 1e9 / calls,
            "ns_per_call_spread": spread(times[0], calls),
            "calls_per_sec": calls / machine_s,
            "insns_per_sec": calls * count.insns / machine_s,
            "bare": None,
            "ratio": None,
        }
        if config.bare:
            bare_s = min(times[1])
            row["bare"] = {
                "insns_per_call": bare_count,
                "seconds": bare_s,
                "seconds_per_run": times[1],
                "ns_per_call": bare_s * 1e9 / calls,
                "ns_per_call_spread": spread(times[1], calls),
                "calls_per_sec": calls / bare_s,
            }
            row["ratio"] = bare_s / machine_s  # machine calls/s over bare calls/s
        return row

    def real_hardware_ns(self, key: str) -> int | None:
        """ftrace-ops.c's figure for the same path, if it measured one ((f) only with its 2 relevant ops)."""
        if key == "f" and self.relevant != REAL_HARDWARE_RELEVANT:
            return None
        return REAL_HARDWARE_NS.get(key)

    def check_undone(self, key: str) -> None:
        """Nothing of a configuration left: the site, the loop's call, ops, patches and probes."""
        m = self.m
        if (
            m.mem.read(self.leaf, 5) != NOP5
            or m.mem.read(self.loop_call, 5) != call_insn(self.loop_call, self.leaf)
            or self.ft.ops
            or m.kernel.livepatch.patches
            or m.kernel.kprobes.probes
        ):
            raise KlpemuError(f"configuration {key} was not undone", EIO)

    def list_scaling(self) -> dict:
        """Instructions each more relevant, and each more irrelevant, ops adds on the list path."""
        r = max(self.relevant, 2)  # at least two, or the site has its own trampoline
        i = self.irrelevant

        def insns(rel: int, irr: int) -> int:
            with self.list_func(rel, irr) as applied:
                return self.count(applied).insns

        base = insns(r, i)
        return {
            "relevant": r,
            "irrelevant": i,
            "insns_per_call": base,
            "per_relevant_ops": insns(r + 1, i) - base,
            "per_irrelevant_ops": insns(r, i + 1) - base,
        }


def _count_runs(
    uc: Uc, run: Callable[[int], int], n: int, hypercalls: Counter[Event] | None = None
) -> list[tuple[Counter[int], Counter[Event]]]:
    """Executions per address (and hypercalls) for run(n) and run(2n), with a counting hook."""
    hits: Counter[int] = Counter()

    def hook(_uc, addr: int, _size: int, _ud) -> None:
        hits[addr] += 1

    h = uc.hook_add(UC_HOOK_CODE, hook)
    # A hook applies only to blocks translated after it was added.
    uc.ctl_flush_tb()  # type: ignore[attr-defined]  # mypy follows unicorn's py2 module, whose Uc lacks it
    runs = []
    try:
        for k in (n, 2 * n):
            hits.clear()
            if hypercalls is not None:
                hypercalls.clear()
            if run(k) != k:
                raise KlpemuError(f"{LOOP}({k}) returned the wrong value", EIO)
            runs.append((Counter(hits), Counter(hypercalls or ())))
    finally:
        uc.hook_del(h)
        uc.ctl_flush_tb()  # type: ignore[attr-defined]  # mypy follows unicorn's py2 module, whose Uc lacks it
    return runs


def _per_call(runs: list[tuple[Counter[int], Counter[Event]]], n: int) -> tuple[dict[int, int], dict[Event, int], int]:
    (a, ha), (b, hb) = runs

    def diff(x1: Counter, x2: Counter) -> dict:
        out = {}
        for key in x2.keys() | x1.keys():
            d, rem = divmod(x2[key] - x1[key], n)
            if rem:
                raise KlpemuError(f"non-integral count per call at {key}", EIO)
            out[key] = d
        return out

    order = {addr: i for i, addr in enumerate(b)}  # first execution in the longer run
    per_addr = {k: v for k, v in sorted(diff(a, b).items(), key=lambda kv: order.get(kv[0], -1)) if v}
    per_call = sum(per_addr.values())
    return per_addr, diff(ha, hb), sum(a.values()) - n * per_call


def count_bare(bare: BareGuest, n: int = COUNT_N) -> int:
    """Guest instructions per call of the loop on a bare Uc (which then keeps no hook)."""
    per_addr, _, _ = _per_call(_count_runs(bare.uc, lambda k: bare.call(LOOP, k), n), n)
    return sum(per_addr.values())


def _time_runs(
    runs: list[Callable[[int], int]], calls: int, repeat: int, tick: Callable[[], None]
) -> list[list[float]]:
    """The wall times of each run(calls), repeat of them, the runs alternating, after warming each up."""
    for run in runs:
        if run(WARM_UP_CALLS) != WARM_UP_CALLS:  # translation is not timed
            raise KlpemuError(f"{LOOP} returned the wrong value", EIO)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for side, run in enumerate(runs):
            t = time.perf_counter()
            result = run(calls)
            times[side].append(time.perf_counter() - t)
            if result != calls:
                raise KlpemuError(f"{LOOP}({calls}) returned {result}", EIO)
        tick()
    return times


def spread(seconds: Sequence[float], calls: int) -> dict[str, float]:
    """Min, median and max wall ns per call over the repetitions: how noisy the host was."""
    return {
        "min": min(seconds) * 1e9 / calls,
        "median": statistics.median(seconds) * 1e9 / calls,
        "max": max(seconds) * 1e9 / calls,
    }


CONFIGS = (
    Config("a", "notrace (site skipped)", HandlerBench.notrace),
    Config("b", "NOP5 site, no ops", HandlerBench.nop5),
    Config("c", "one ops, own trampoline", HandlerBench.own_trampoline),
    Config("d", "one ops via ftrace_caller", HandlerBench.ftrace_caller),
    Config("e", "one SAVE_REGS ops, own trampoline", HandlerBench.save_regs),
    Config("f", "list function, {relevant} relevant + {irrelevant} irrelevant", HandlerBench.list_func),
    Config("g", "native redirect (IPMODIFY)", HandlerBench.redirect),
    Config("h", "Python ops redirect", HandlerBench.python, host=True),
    Config("i", "no ftrace: UC_HOOK_CODE writes RIP", HandlerBench.code_hook, host=True),
    Config("j", "livepatch, no transition", HandlerBench.livepatch),
    Config(
        "k", "livepatch in transition, unpatched task, previous patch below", HandlerBench.livepatch_transition_previous
    ),
    Config("l", "livepatch in transition, unpatched task, no patch below", HandlerBench.livepatch_transition_original),
    Config("m", "atomic-replace nop on top (patched task)", HandlerBench.livepatch_nop),
    Config("n", "two livepatches stacked, no transition", HandlerBench.livepatch_stacked),
    Config("o", "kprobe at the fentry site", HandlerBench.kprobe),
    Config("p", "kprobe at the fentry site, post handler (IPMODIFY)", HandlerBench.kprobe_post),
    Config("q", "int3 kprobe in the body, stepped out of line", HandlerBench.kprobe_int3, host=True, bare=False),
    Config("r", "kretprobe", HandlerBench.kretprobe),
    Config("s", "kretprobe + livepatch", HandlerBench.kretprobe_livepatch),
    Config("t", "livepatch, timeline recording the leaf's calls", HandlerBench.livepatch_timeline, host=True),
    Config("u", "function_graph, entry only (the call not graphed)", HandlerBench.function_graph_entry),
    Config("v", "function_graph, entry and return recorded", HandlerBench.function_graph, bare=False),
)


def host_calls(calls: int) -> int:
    return max(WARM_UP_CALLS, calls // HOST_CALLS_DIVISOR)


def run_handler_overhead(
    machine: Machine,
    *,
    calls: int = DEFAULT_CALLS,
    repeat: int = DEFAULT_REPEAT,
    relevant: int = 2,
    irrelevant: int = 5,
    progress: bool = True,
) -> dict:
    """Every configuration, counted and timed; the result as written to the JSON file."""
    bench = HandlerBench(machine, relevant, irrelevant)
    steps_per_config = 2 + repeat
    bar = _progress(len(CONFIGS) * steps_per_config + 1, progress)
    rows = []
    try:
        for config in CONFIGS:
            bar.set_description(f"({config.key}) {config.label(relevant, irrelevant)}")
            rows.append(
                bench.measure(config, host_calls(calls) if config.host else calls, repeat, lambda: bar.update(1))
            )
        bar.set_description("list function scaling")
        scaling = bench.list_scaling()
        bar.update(1)
    finally:
        bar.close()
    base = rows[0]
    for r in rows:
        r["insns_over_notrace"] = r["insns_per_call"] - base["insns_per_call"]
        r["ns_over_notrace"] = r["ns_per_call"] - base["ns_per_call"]
    return {
        "unicorn": unicorn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "calls": calls,
        "host_calls": host_calls(calls),
        "repeat": repeat,
        "relevant": relevant,
        "irrelevant": irrelevant,
        "workload": f"{LOOP}(N) calling traced {LEAF}; redirects go to {REPLACEMENT}; "
        f"irrelevant ops trace {IRRELEVANT}",
        "rows": rows,
        "list_scaling": scaling,
        "anchors_ns_real_hardware": ANCHORS_NS,
        "real_hardware": REAL_HARDWARE,
        "note": WHAT_NS_MEASURE,
    }


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", disable=not enabled, leave=False, file=sys.stderr)


# --- output --------------------------------------------------------------------------------------


def table(result: dict) -> str:
    head = (
        "config",
        "insns/call",
        "x86 KVM ns",
        "path",
        "body",
        "vs (a)",
        "host/call",
        "ns/call min/med/max",
        "calls/s",
        "bare ns/call",
        "ratio",
    )
    body = [
        (
            f"({r['key']}) {r['config']}",
            str(r["insns_per_call"]),
            str(r["real_hardware_ns"]) if r.get("real_hardware_ns") is not None else "",
            str(r["path_insns_per_call"]),
            str(r["body_insns_per_call"]),
            f"{r['insns_over_notrace']:+d}",
            str(r["host_entries_per_call"]),
            _ns_spread(r),
            _si(r["calls_per_sec"]),
            f"{r['bare']['ns_per_call']:,.0f}" if r["bare"] else "-",
            f"{r['ratio']:.3f}" if r["bare"] else "-",
        )
        for r in result["rows"]
    ]
    return format_table(head, body)


def _ns_spread(row: dict) -> str:
    s = row.get("ns_per_call_spread")
    if s is None:
        return f"{row['ns_per_call']:,.0f}"
    return f"{s['min']:,.0f}/{s['median']:,.0f}/{s['max']:,.0f}"


def _si(v: float) -> str:
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k"


def report(result: dict) -> str:
    host_keys = ", ".join(f"({c.key})" for c in CONFIGS if c.host)
    head = (
        f"unicorn {result['unicorn']}, python {result['python']}; {result['calls']:,} calls per run "
        f"({result['host_calls']:,} for {host_keys}), min/median/max of {result['repeat']} runs; "
        "calls/s, bare ns/call and ratio from the fastest run"
    )
    lines = [head, "", "paths:"]
    for r in result["rows"]:
        extra = ""
        if r["unicorn_counted_per_call"] != r["insns_per_call"]:
            extra = f"  [Unicorn counts {r['unicorn_counted_per_call']}: the hooked NOP5 is skipped, not run]"
        if r["bare"] is None:
            extra += "  [no bare run: bare Unicorn delivers no int3]"
        elif r["bare"]["insns_per_call"] != r["insns_per_call"]:
            extra += f"  [bare runs {r['bare']['insns_per_call']}/call]"
        lines.append(f"  ({r['key']}) {r['path']}{extra}")
    lines += ["", table(result), ""]
    s = result["list_scaling"]
    lines.append(
        f"list function ({s['relevant']} relevant + {s['irrelevant']} irrelevant = {s['insns_per_call']} "
        f"insns/call): +{s['per_relevant_ops']} per relevant ops, +{s['per_irrelevant_ops']} per "
        f"irrelevant ops"
    )
    lines.append(
        "path = the site and everything it leads to; body = the function that ran for the leaf "
        "(the loop's 5 are neither)"
    )
    lines.append("ratio = machine calls/s / bare Unicorn calls/s (bare: a copy of the machine's memory, no hooks)")
    lines.append(
        f"x86 KVM ns = {REAL_HARDWARE}: one ops 16 ns, SAVE_REGS 44 ns, "
        f"{REAL_HARDWARE_RELEVANT} ops through the list function 119 ns"
    )
    lines.append(WHAT_NS_MEASURE)
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Two panels: guest instructions per call, and wall ns per call beside bare Unicorn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"][::-1]  # (a) on top
    labels = [f"({r['key']}) {r['config']}" for r in rows]
    y = range(len(rows))
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 0.55 * len(rows) + 1.8), sharey=True, gridspec_kw={"width_ratios": [1, 1.4]}
    )
    insns = [r["insns_per_call"] for r in rows]
    left.barh(y, insns, color="#4c72b0")
    for yi, v, r in zip(y, insns, rows, strict=True):
        real = r.get("real_hardware_ns")
        left.text(v, yi, f" {v}" + (f"   (x86 KVM: {real} ns)" if real is not None else ""), va="center", fontsize=8)
    left.set_yticks(list(y), labels, fontsize=9)
    left.set_xlabel("guest instructions per call (exact)")
    left.set_xlim(0, max(insns) * 1.45)
    h = 0.38
    ns = [r["ns_per_call"] for r in rows]
    bare = [r["bare"]["ns_per_call"] if r["bare"] else math.nan for r in rows]  # no bar where there is no run
    # Whiskers from the fastest run (the bar) to the slowest: the host's noise over the repetitions.
    slowest = [r["ns_per_call_spread"]["max"] - r["ns_per_call"] if "ns_per_call_spread" in r else 0 for r in rows]
    right.barh(
        [v + h / 2 for v in y],
        ns,
        h,
        xerr=[[0] * len(ns), slowest],
        error_kw={"elinewidth": 0.8, "capsize": 2},
        label="machine (m.call)",
        color="#dd8452",
    )
    right.barh([v - h / 2 for v in y], bare, h, label="bare Unicorn, same code", color="#8c8c8c")
    for yi, v, up in zip(y, ns, slowest, strict=True):
        right.text(v + up, yi + h / 2, f" {v:,.0f}", va="center", fontsize=8)  # past the whisker
    right.set_xscale("log")
    right.set_xlabel("wall ns per call of the emulation, not of ftrace (log scale)")
    right.set_xlim(min(v for v in bare + ns if not math.isnan(v)) / 1.5, max(ns) * 4)
    right.legend(loc="upper right", fontsize=8)
    fig.suptitle(
        f"ftrace, livepatch and kprobe handler overhead in klpemu (unicorn {result['unicorn']}, "
        f"{result['calls']:,} calls, fastest of {result['repeat']} runs, whiskers to the slowest)\n"
        f"real hardware beside the counts: {REAL_HARDWARE}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- command line (benchmarks/handler_overhead.py and `klpemu bench`) -----------------------------


def config_legend() -> str:
    """The configuration letters, for --help: the table the benchmark runs."""
    lines = ["configurations (the letters of the table; see klpemu/bench.py for how each is set up):"]
    lines += [f"  ({c.key}) {c.label()}" for c in CONFIGS]
    real = ", ".join(f"({k}) {v} ns" for k, v in REAL_HARDWARE_NS.items())
    lines.append(f"real hardware beside them: {REAL_HARDWARE} ({real})")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser, results: Path = Path(".")) -> None:
    """The handler-overhead options; results is where the JSON and the PNG go by default."""
    ap.epilog = config_legend()
    ap.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the legend's lines
    ap.add_argument(
        "--calls",
        type=int,
        default=DEFAULT_CALLS,
        help=f"calls per timed run (default {DEFAULT_CALLS}; "
        f"{', '.join(f'({c.key})' for c in CONFIGS if c.host)} run 1/{HOST_CALLS_DIVISOR})",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help=f"timed runs per configuration, reported as min/median/max (default {DEFAULT_REPEAT})",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=results / "handler_overhead.json",
        help=f"result file (default {results / 'handler_overhead.json'})",
    )
    ap.add_argument(
        "--plot",
        type=Path,
        default=results / "handler_overhead.png",
        help=f"PNG plot (default {results / 'handler_overhead.png'})",
    )
    ap.add_argument("--relevant", type=int, default=2, help="relevant ops in (f) (default 2)")
    ap.add_argument("--irrelevant", type=int, default=5, help="irrelevant ops in (f) (default 5)")


def run(args: argparse.Namespace) -> int:
    if args.calls < 1 or args.repeat < 1:
        raise KlpemuError("--calls and --repeat must be positive", EINVAL)
    m = System().machine
    m.boot()
    result = run_handler_overhead(
        m, calls=args.calls, repeat=args.repeat, relevant=args.relevant, irrelevant=args.irrelevant
    )
    print(report(result))
    from .bench_speed import guest_speed
    from .bench_speed import report as speed_report

    # The same loop run by the guest itself, sliced: what counting costs the machine.
    result["guest_speed"] = guest_speed(m.image, args.calls, args.repeat)
    print()
    print(speed_report(result["guest_speed"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.plot)
    print(f"wrote {args.json.resolve()} and {args.plot.resolve()}")
    return 0
