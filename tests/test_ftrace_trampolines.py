"""The guest's ftrace data plane, driven by hand: trampolines, list function, recursion, handlers.

No host control plane here: the tests write `call <trampoline>` over a fentry site, point the
call slot and function_trace_op at a handler, and build ops and hashes in a free guest area
(the unused bottom of the host-call stack), exactly the bytes the control plane would write,
then run real guest code through the site: a `cat /proc/cmdline` in the guest's sh, or a host
call of the notrace loop ftrace_selftest_call (firmware/kernel/trace/trace_selftest.c).
"""

from __future__ import annotations

import struct

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import X86_OP_IMM, X86_OP_MEM, X86_REG_RIP
from machine_util import make_machine, task_by_comm
from unicorn import UC_HOOK_CODE
from unicorn import x86_const as x

from klpemu.machine.console import Console
from klpemu.machine.machine import Machine

SITE_FUNC = "cmdline_proc_show"
LEAF = "ftrace_selftest_leaf"
NOP5 = bytes.fromhex("0f1f440000")
MCOUNT_REG_SIZE = 208
KERNEL_CS, KERNEL_DS = 0x10, 0x18
EFLAGS_IF = 0x200
TRACE_LIST_NORMAL_BIT = 5 + 3  # TRACE_LIST_START + TRACE_CTX_NORMAL
TRACE_LIST_TRANSITION_BIT = 5 + 4

# Guest instructions per iteration of ftrace_selftest_call: the loop's 5 (call, mov, add, cmp,
# jne) + the leaf's 6 (site, push, lea, mov, pop, ret) + what the site's call costs.
LOOP_AND_LEAF = 11
# What one traced call adds, from `call <trampoline>` at the site (counted above as the site's one
# instruction) to the leaf's next instruction. ftrace_empty_func is a bare ret (1).
INSNS_CALLER_EMPTY = 43  # ftrace_caller 42 + ftrace_empty_func 1
INSNS_REGS_CALLER_EMPTY = 68  # ftrace_regs_caller 67 + 1
INSNS_CALLER_LIST_ONE = 131  # ftrace_caller 42 + ftrace_ops_list_func 74 + ftrace_ops_test 14 + 1
INSNS_CALLER_ASSIST_EMPTY = 84  # ftrace_caller 42 + ftrace_ops_assist_func 41 + 1
# ftrace_caller 42 + function_trace_call 141 + local_clock 2, for a record that fits its page
INSNS_CALLER_FUNCTION_TRACER = 185


def call_insn(at: int, target: int) -> bytes:
    return b"\xe8" + struct.pack("<i", target - (at + 5))


class Rig:
    """Writes what the control plane would, straight into guest memory, and undoes it all."""

    def __init__(self, m: Machine):
        self.m = m
        self.sym = m.image.addr
        # The bottom of the host-call stack, unused: a trampoline copy at +0, up to 10 ops from
        # +0x400, their hashes from +0x800 (0x100 each), counters from +0x1000.
        self.scratch = self.sym("hostcall_stack")
        self._code: dict[int, bytes] = {}
        self._data: dict[int, bytes] = {}
        self.slot = {"ftrace_caller": self.sym("ftrace_call"), "ftrace_regs_caller": self.sym("ftrace_regs_call")}

    # --- memory ------------------------------------------------------------------------------

    def code(self, addr: int, data: bytes) -> None:
        self._code.setdefault(addr, self.m.mem.read(addr, len(data)))
        self.m.mem.write(addr, data)
        self.m.uc.ctl_remove_cache(addr, addr + len(data))

    def data(self, addr: int, data: bytes) -> None:
        self._data.setdefault(addr, self.m.mem.read(addr, len(data)))
        self.m.mem.write(addr, data)

    def u64(self, addr: int, value: int) -> None:
        self.data(addr, struct.pack("<Q", value & (2**64 - 1)))

    def var_u64(self, name: str, value: int) -> None:
        self.u64(self.sym(name), value)

    def var_u32(self, name: str, value: int) -> None:
        self.data(self.sym(name), struct.pack("<I", value))

    def untrace(self, func: str) -> None:
        """Put func's site back as it was before trace()."""
        site = self.sym(func)
        self.m.mem.write(site, self._code[site])
        self.m.uc.ctl_remove_cache(site, site + 5)

    def restore(self) -> None:
        for addr, old in self._code.items():
            self.m.mem.write(addr, old)
            self.m.uc.ctl_remove_cache(addr, addr + len(old))
        for addr, old in self._data.items():
            self.m.mem.write(addr, old)
        self._code.clear()
        self._data.clear()

    # --- ftrace --------------------------------------------------------------------------------

    def trace(self, func: str, trampoline: str | int) -> int:
        """Make func's fentry site call the trampoline; returns the site."""
        site = self.sym(func)
        target = self.sym(trampoline) if isinstance(trampoline, str) else trampoline
        self.code(site, call_insn(site, target))
        return site

    def call_slot(self, trampoline: str, handler: str) -> None:
        slot = self.slot[trampoline]
        self.code(slot, call_insn(slot, self.sym(handler)))

    def ops(
        self,
        index: int,
        func: str,
        flags: int = 0,
        private: int = 0,
        filter_ips=None,
        notrace_ips=None,
        next_ops: int | None = None,
    ) -> int:
        """A struct ftrace_ops in the scratch area (slot index), with its hashes."""
        addr = self.scratch + 0x400 + index * 0x60
        hashes = self.scratch + 0x800 + index * 0x100
        size = self.m.types.sizeof("ftrace_ops")
        self.data(addr, bytes(size))
        view = self.m.struct("ftrace_ops", addr)
        view.func = self.sym(func)
        view.flags = flags
        view.private = private
        view.next = self.sym("ftrace_list_end") if next_ops is None else next_ops
        for member, ips, at in (("filter_hash", filter_ips, hashes), ("notrace_hash", notrace_ips, hashes + 0x80)):
            if ips is not None:
                self.data(at, struct.pack(f"<Q{len(ips)}Q", len(ips), *sorted(ips)))
                setattr(view, member, at)
        return addr

    def counter(self, index: int) -> int:
        """A struct ftrace_selftest_counter for ftrace_selftest_count_func's op->private."""
        addr = self.scratch + 0x1000 + index * 0x10
        self.data(addr, bytes(16))
        return addr

    def hits(self, counter: int) -> tuple[int, int]:
        c = self.m.struct("ftrace_selftest_counter", counter)
        return c.hits, c.last_seq

    def ops_flag(self, name: str) -> int:
        return self.m.types.enum(f"FTRACE_OPS_FL_{name}")


@pytest.fixture(scope="module")
def machine() -> Machine:
    m = make_machine()
    return m


@pytest.fixture
def rig(machine):
    r = Rig(machine)
    yield r
    r.restore()
    assert machine.oops is None


@pytest.fixture(scope="module")
def texts(machine):
    con = Console(machine)
    return {"cmdline": con.read_file("/proc/cmdline"), "version": con.read_file("/proc/version")}


def cat_cmdline(m: Machine) -> str:
    return Console(m).read_file("/proc/cmdline")


def in_function(m: Machine, addr: int, name: str) -> bool:
    f = m.image.function_at(addr)
    return f is not None and f.name == name


def ring(m: Machine, cpu: int):
    return m.kernel.function_tracer.buffer.cpu_buffers()[cpu]


def reset_rings(rig: Rig) -> None:
    rig.m.kernel.function_tracer.buffer.reset()


def ring_entries(m: Machine):
    """(cpu, record) of every committed record, each CPU's oldest first."""
    buf, out = m.kernel.function_tracer.buffer, m.kernel.trace_output
    return [(cpu, out.record(r)) for cpu in range(len(m.cpus)) for r in buf.cpu_records(cpu)]


# --- the templates ---------------------------------------------------------------------------

TEMPLATES = [
    ("ftrace_caller", "ftrace_caller_end", "ftrace_caller_op_ptr", "ftrace_call"),
    ("ftrace_regs_caller", "ftrace_regs_caller_end", "ftrace_regs_caller_op_ptr", "ftrace_regs_call"),
]


@pytest.mark.parametrize("start,end,op_ptr,call", TEMPLATES)
def test_template_is_position_independent_but_for_its_two_marked_instructions(machine, start, end, op_ptr, call):
    m = machine
    sym = m.image.addr
    lo, hi = sym(start), sym(end)
    code = m.image.read_static(lo, hi - lo)
    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    cs.detail = True
    insns = list(cs.disasm(code, lo))
    assert sum(i.size for i in insns) == hi - lo, "the template does not decode to its end"
    assert insns[-1].mnemonic == "ret", "a template ends with its own ret"
    rip_relative, leaving = [], []
    for i in insns:
        if any(op.type == X86_OP_MEM and op.mem.base == X86_REG_RIP for op in i.operands):
            rip_relative.append(i.address)
        if i.group(1) or i.group(2) or i.group(7):  # jump, call, relative branch
            target = i.operands[0].imm & (2**64 - 1) if i.operands and i.operands[0].type == X86_OP_IMM else None
            if target is not None and not lo <= target < hi:
                leaving.append(i.address)
    assert rip_relative == [sym(op_ptr)]
    assert leaving == [sym(call)]
    fto = sym("function_trace_op")
    assert code[sym(op_ptr) - lo : sym(op_ptr) - lo + 3] == bytes.fromhex("488b15")
    assert sym(op_ptr) + 7 + struct.unpack("<i", code[sym(op_ptr) - lo + 3 : sym(op_ptr) - lo + 7])[0] == fto
    assert code[sym(call) - lo : sym(call) - lo + 5] == call_insn(sym(call), sym("ftrace_stub"))
    assert m.image.read_static(sym("ftrace_stub"), 1) == b"\xc3"
    assert m.image.read_static(sym("__fentry__"), 1) == b"\xc3"


def test_template_layout(machine):
    """The byte layout the control plane copies (offsets from the template's start)."""
    sym = machine.image.addr
    c, r = sym("ftrace_caller"), sym("ftrace_regs_caller")
    assert (sym("ftrace_caller_op_ptr") - c, sym("ftrace_call") - c, sym("ftrace_caller_end") - c) == (0x7D, 0x94, 0xE3)
    assert (sym("ftrace_regs_caller_op_ptr") - r, sym("ftrace_regs_call") - r, sym("ftrace_regs_caller_end") - r) == (
        0x6E,
        0xDE,
        0x1AC,
    )


# --- (a) the function tracer -------------------------------------------------------------------


@pytest.mark.parametrize("trampoline", ["ftrace_caller", "ftrace_regs_caller"])
def test_function_tracer_records_the_traced_call(rig, texts, trampoline):
    m = rig.m
    reset_rings(rig)
    rig.var_u64("function_trace_op", rig.sym("function_trace_ops"))
    rig.call_slot(trampoline, "function_trace_call")
    t0 = m.now
    site = rig.trace(SITE_FUNC, trampoline)
    assert cat_cmdline(m) == texts["cmdline"]
    rig.untrace(SITE_FUNC)
    entries = ring_entries(m)
    assert len(entries) == 1
    cpu, e = entries[0]
    assert e.ip == site
    assert in_function(m, e.parent_ip, "seq_read_iter")
    assert e.type == m.types.enum("TRACE_FN")
    assert e.pid == task_by_comm(m, "sh").pid
    assert e.cpu == cpu
    assert t0 <= e.ts <= m.now
    assert e.flags == 0  # sh reads with interrupts on, in task context
    assert e.preempt_count == 0
    r = ring(m, cpu)
    assert (r.entries, r.overrun) == (1, 0)


def test_tracing_on_and_disabled_stop_the_writer(rig, texts):
    m = rig.m
    reset_rings(rig)
    rig.var_u64("function_trace_op", rig.sym("function_trace_ops"))
    rig.call_slot("ftrace_caller", "function_trace_call")
    rig.trace(SITE_FUNC, "ftrace_caller")
    tr = m.kernel.function_tracer.buffer
    rig.data(tr.view.addr_of("record_disabled"), struct.pack("<i", 1))
    assert cat_cmdline(m) == texts["cmdline"]
    assert ring_entries(m) == []
    rig.data(tr.view.addr_of("record_disabled"), struct.pack("<i", 0))
    for cpu in range(len(m.cpus)):
        rig.data(ring(m, cpu).addr_of("record_disabled"), struct.pack("<i", 1))
    assert cat_cmdline(m) == texts["cmdline"]
    assert ring_entries(m) == []


def test_ring_overwrites_oldest_and_counts_overrun(rig):
    """A host call on CPU 0 with interrupts off: flags say irqs-off, and the ring wraps, losing
    its oldest page at a time. Unexpanded, the ring is 2 pages of 4080 bytes: 102 records of 40
    bytes (16 of ring header, 8 of trace_entry, ip and parent_ip) on each."""
    m = rig.m
    reset_rings(rig)
    rig.var_u64("function_trace_op", rig.sym("function_trace_ops"))
    rig.call_slot("ftrace_caller", "function_trace_call")
    site = rig.trace(LEAF, "ftrace_caller")
    assert m.kernel.function_tracer.buffer.nr_pages == 2
    n = 3 * 102 + 5
    assert m.call("ftrace_selftest_call", n) == n
    r = ring(m, 0)
    assert (r.entries, r.overrun, r.tail) == (n, 2 * 102, 4)  # 4 pages begun: the first two overwritten
    records = ring_entries(m)
    assert len(records) == 102 + 5  # the third page, full, and the fourth
    _, newest = records[-1]
    assert newest.ip == site and in_function(m, newest.parent_ip, "ftrace_selftest_call")
    assert newest.flags == m.types.enum("TRACE_FLAG_IRQS_OFF")
    assert newest.pid == m.struct("task_struct", m.pcpu(0).current_task).pid
    stamps = [e.ts for _, e in records]
    assert stamps == sorted(stamps)


def test_hardirq_context_is_flagged(rig):
    m = rig.m
    reset_rings(rig)
    rig.var_u64("function_trace_op", rig.sym("function_trace_ops"))
    rig.call_slot("ftrace_caller", "function_trace_call")
    rig.trace(LEAF, "ftrace_caller")
    pc = m.pcpu(0).addr_of("preempt_count")
    rig.data(pc, struct.pack("<i", 0x10000 + 2))  # HARDIRQ_OFFSET, preempt depth 2
    m.call("ftrace_selftest_call", 1)
    ((_, e),) = ring_entries(m)
    assert e.flags == m.types.enum("TRACE_FLAG_IRQS_OFF") | m.types.enum("TRACE_FLAG_HARDIRQ")
    assert e.preempt_count == 2  # the tracer's own preempt_disable is not counted


# --- (b) redirect ------------------------------------------------------------------------------


@pytest.mark.parametrize("trampoline", ["ftrace_caller", "ftrace_regs_caller"])
def test_redirect(rig, texts, trampoline):
    m = rig.m
    ops = rig.ops(0, "ftrace_redirect_func", private=rig.sym("version_proc_show"))
    rig.var_u64("function_trace_op", ops)
    rig.call_slot(trampoline, "ftrace_redirect_func")
    rig.trace(SITE_FUNC, trampoline)
    assert cat_cmdline(m) == texts["version"]


@pytest.mark.parametrize("trampoline,redirects", [("ftrace_caller", False), ("ftrace_regs_caller", True)])
def test_redirect_before_5_11(rig, texts, trampoline, redirects):
    """ftrace_caller_can_redirect = 0: only ftrace_regs_caller copies regs->ip back."""
    m = rig.m
    rig.var_u32("ftrace_caller_can_redirect", 0)
    ops = rig.ops(0, "ftrace_redirect_func", private=rig.sym("version_proc_show"))
    rig.var_u64("function_trace_op", ops)
    rig.call_slot(trampoline, "ftrace_redirect_func")
    rig.trace(SITE_FUNC, trampoline)
    assert cat_cmdline(m) == texts["version" if redirects else "cmdline"]


# --- (c) the list function -----------------------------------------------------------------------


def test_lookup_ip_and_ops_test(rig):
    m = rig.m
    ips = [0x1000 + 0x10 * i for i in range(9)]
    ops = rig.ops(0, "ftrace_stub", filter_ips=ips, notrace_ips=[0x1040])
    view = m.struct("ftrace_ops", ops)
    filt = view.filter_hash
    for ip in ips:
        assert m.call("ftrace_lookup_ip", filt, ip) & 0xFF == 1
    for ip in [0, 0xFFF, 0x1008, 0x1081, 2**64 - 1]:
        assert m.call("ftrace_lookup_ip", filt, ip) & 0xFF == 0
    assert m.call("ftrace_lookup_ip", 0, 0x1000) & 0xFF == 0
    regs = 1  # any non-NULL
    assert [m.call("ftrace_ops_test", ops, ip, regs) & 0xFFFFFFFF for ip in (0x1000, 0x1040, 0x2000)] == [1, 0, 0]
    none = rig.ops(1, "ftrace_stub")
    empty = rig.ops(2, "ftrace_stub", filter_ips=[], notrace_ips=[])
    for o in (none, empty):
        assert m.call("ftrace_ops_test", o, 0x1234, regs) & 0xFFFFFFFF == 1
    wants_regs = rig.ops(3, "ftrace_stub", flags=rig.ops_flag("SAVE_REGS"))
    assert m.call("ftrace_ops_test", wants_regs, 0x1234, regs) & 0xFFFFFFFF == 1
    assert m.call("ftrace_ops_test", wants_regs, 0x1234, 0) & 0xFFFFFFFF == 0


@pytest.mark.parametrize("trampoline", ["ftrace_caller", "ftrace_regs_caller"])
def test_list_function_calls_each_matching_ops_in_list_order(rig, texts, trampoline):
    m = rig.m
    site = rig.sym(SITE_FUNC)
    counters = [rig.counter(i) for i in range(6)]
    # Built oldest first; each new ops goes to the head of the list, as registration does.
    head = None
    specs = [
        {"filter_ips": [site]},  # 0: matches by its filter
        {"filter_ips": [rig.sym("version_proc_show")]},  # 1: filtered out
        {"flags": rig.ops_flag("SAVE_REGS")},  # 2: all functions, but needs pt_regs
        {"notrace_ips": [site]},  # 3: all functions but this one
        {"flags": rig.ops_flag("STUB")},  # 4: a placeholder, never called
        {},  # 5: all functions
    ]
    for i, spec in enumerate(specs):
        head = rig.ops(i, "ftrace_selftest_count_func", private=counters[i], next_ops=head, **spec)
    rig.var_u64("ftrace_ops_list", head)
    rig.call_slot(trampoline, "ftrace_ops_list_func")
    rig.trace(SITE_FUNC, trampoline)
    assert cat_cmdline(m) == texts["cmdline"]
    hits = [rig.hits(c)[0] for c in counters]
    full_regs = trampoline == "ftrace_regs_caller"
    assert hits == [1, 0, 1 if full_regs else 0, 0, 0, 1]
    seq = {i: rig.hits(c)[1] for i, c in enumerate(counters) if hits[i]}
    assert sorted(seq, key=seq.get) == ([5, 2, 0] if full_regs else [5, 0])  # head of the list first
    last = m.var("ftrace_selftest_last")
    assert last.ip == site and in_function(m, last.parent_ip, "seq_read_iter")
    assert last.op == rig.scratch + 0x400  # the last one called: ops 0, the oldest


def test_list_function_with_empty_list_does_nothing(rig, texts):
    m = rig.m
    rig.call_slot("ftrace_caller", "ftrace_ops_list_func")
    rig.trace(SITE_FUNC, "ftrace_caller")
    assert m.read_var_int("ftrace_ops_list") == rig.sym("ftrace_list_end")
    assert cat_cmdline(m) == texts["cmdline"]


# --- (d) recursion -------------------------------------------------------------------------------


def current_task(m: Machine, cpu: int = 0):
    return m.struct("task_struct", m.pcpu(cpu).current_task)


def recursion_setup(rig: Rig, via: str) -> None:
    ops = rig.ops(0, "ftrace_selftest_recurse_func")
    if via == "ftrace_ops_list_func":
        rig.var_u64("ftrace_ops_list", ops)
    else:
        rig.var_u64("function_trace_op", ops)
    rig.call_slot("ftrace_caller", via)
    rig.trace(LEAF, "ftrace_caller")
    for name in (
        "ftrace_selftest_recurse_calls",
        "ftrace_selftest_depth",
        "ftrace_selftest_max_depth",
        "ftrace_recursion_missed",
    ):
        rig.var_u64(name, 0)


@pytest.mark.parametrize("via", ["ftrace_ops_list_func", "ftrace_ops_assist_func"])
def test_handler_calling_a_traced_function_nests_once_then_stops(rig, via):
    """Linux's TRANSITION bit lets one nested level through; the next one is refused."""
    m = rig.m
    recursion_setup(rig, via)
    preempt_count = m.pcpu(0).preempt_count  # the host call runs in whatever task CPU 0 stopped in
    assert m.call("ftrace_selftest_call", 1) == 1
    assert m.read_var_int("ftrace_selftest_recurse_calls") == 2
    assert m.read_var_int("ftrace_selftest_max_depth") == 2
    assert m.read_var_int("ftrace_recursion_missed") == 1
    assert current_task(m).trace_recursion == 0
    assert m.pcpu(0).preempt_count == preempt_count


def test_busy_normal_bit_leaves_only_the_transition_level(rig):
    m = rig.m
    recursion_setup(rig, "ftrace_ops_list_func")
    task = current_task(m)
    rig.u64(task.addr_of("trace_recursion"), 1 << TRACE_LIST_NORMAL_BIT)
    m.call("ftrace_selftest_call", 1)
    assert m.read_var_int("ftrace_selftest_recurse_calls") == 1
    assert m.read_var_int("ftrace_recursion_missed") == 1
    assert task.trace_recursion == 1 << TRACE_LIST_NORMAL_BIT


def test_an_interrupt_inside_a_handler_has_its_own_bit(rig):
    """Normal and transition bits both taken, but preempt_count says hardirq: traced anyway."""
    m = rig.m
    recursion_setup(rig, "ftrace_ops_list_func")
    task = current_task(m)
    busy = (1 << TRACE_LIST_NORMAL_BIT) | (1 << TRACE_LIST_TRANSITION_BIT)
    rig.u64(task.addr_of("trace_recursion"), busy)
    rig.data(m.pcpu(0).addr_of("preempt_count"), struct.pack("<i", 0x10000))  # HARDIRQ_OFFSET
    m.call("ftrace_selftest_call", 1)
    assert m.read_var_int("ftrace_selftest_recurse_calls") == 1  # irq bit, then nothing left
    assert m.read_var_int("ftrace_recursion_missed") == 1
    assert task.trace_recursion == busy


# --- (e) a private copy of a template ----------------------------------------------------------------


def make_private(rig: Rig, template: str, handler: str, ops: int) -> int:
    """What x86's create_trampoline does: copy, point the ops load at a pointer after the copy,
    make the call slot call the handler."""
    m = rig.m
    start, end, op_ptr, call = next(t for t in TEMPLATES if t[0] == template)
    start, end, op_ptr, call = (rig.sym(s) for s in (start, end, op_ptr, call))
    size = end - start
    tramp = rig.scratch
    code = bytearray(m.mem.read(start, size))
    ptr_slot = tramp + size
    at = op_ptr - start
    code[at + 3 : at + 7] = struct.pack("<i", ptr_slot - (tramp + at + 7))
    at = call - start
    code[at : at + 5] = call_insn(tramp + at, rig.sym(handler))
    rig.code(tramp, bytes(code) + struct.pack("<Q", ops))
    return tramp


@pytest.mark.parametrize("template", ["ftrace_caller", "ftrace_regs_caller"])
def test_private_copy_works_like_the_template(rig, texts, template):
    m = rig.m
    ops = rig.ops(0, "ftrace_redirect_func", private=rig.sym("version_proc_show"))
    tramp = make_private(rig, template, "ftrace_redirect_func", ops)
    rig.trace(SITE_FUNC, tramp)
    # The shared trampolines and function_trace_op are untouched: the copy carries its own ops.
    assert m.read_var_int("function_trace_op") == rig.sym("ftrace_list_end")
    assert cat_cmdline(m) == texts["version"]

    counter = rig.counter(0)
    ops = rig.ops(1, "ftrace_selftest_count_func", private=counter)
    make_private(rig, template, "ftrace_selftest_count_func", ops)
    site = rig.trace(LEAF, tramp)
    assert m.call("ftrace_selftest_call", 3) == 3
    assert rig.hits(counter)[0] == 3
    last = m.var("ftrace_selftest_last")
    assert (last.ip, last.op) == (site, ops)
    fregs = m.struct("pt_regs", last.fregs)
    assert fregs.cs == (KERNEL_CS if template == "ftrace_regs_caller" else 0)


# --- (f) instruction counts ----------------------------------------------------------------------


def insns_per_call(m: Machine, ns: tuple[int, int, int] = (100, 200, 300)) -> int:
    hits = [0]

    def hook(_uc, _addr, _size, _ud):
        hits[0] += 1

    h = m.uc.hook_add(UC_HOOK_CODE, hook, None, 1, 0)
    m.uc.ctl_flush_tb()  # a hook applies only to blocks translated after it was added
    try:
        counts = []
        for n in ns:
            hits[0] = 0
            assert m.call("ftrace_selftest_call", n) == n
            counts.append(hits[0])
    finally:
        m.uc.hook_del(h)
        m.uc.ctl_flush_tb()
    assert counts[2] - counts[1] == counts[1] - counts[0]
    step = ns[1] - ns[0]
    assert (counts[1] - counts[0]) % step == 0
    return (counts[1] - counts[0]) // step


def test_instruction_counts_per_traced_call(rig):
    m = rig.m
    leaf = rig.sym(LEAF)
    untraced = insns_per_call(m)
    # After boot conversion the site is a NOP5 (one instruction); before, call + ret of __fentry__.
    assert untraced == (LOOP_AND_LEAF if m.mem.read(leaf, 5) == NOP5 else LOOP_AND_LEAF + 1)

    measured = {}
    rig.trace(LEAF, "ftrace_caller")
    rig.call_slot("ftrace_caller", "ftrace_empty_func")
    measured["caller+empty"] = insns_per_call(m) - LOOP_AND_LEAF
    rig.var_u32("ftrace_caller_can_redirect", 0)
    measured["caller+empty, no redirect"] = insns_per_call(m) - LOOP_AND_LEAF
    rig.var_u32("ftrace_caller_can_redirect", 1)
    rig.trace(LEAF, "ftrace_regs_caller")
    rig.call_slot("ftrace_regs_caller", "ftrace_empty_func")
    measured["regs_caller+empty"] = insns_per_call(m) - LOOP_AND_LEAF
    rig.trace(LEAF, "ftrace_caller")
    rig.var_u64("ftrace_ops_list", rig.ops(0, "ftrace_empty_func"))
    rig.call_slot("ftrace_caller", "ftrace_ops_list_func")
    measured["caller+list(1 ops)"] = insns_per_call(m) - LOOP_AND_LEAF
    rig.var_u64("function_trace_op", rig.ops(0, "ftrace_empty_func"))
    rig.call_slot("ftrace_caller", "ftrace_ops_assist_func")
    measured["caller+assist+empty"] = insns_per_call(m) - LOOP_AND_LEAF
    rig.var_u64("function_trace_op", rig.sym("function_trace_ops"))
    rig.call_slot("ftrace_caller", "function_trace_call")
    # A record that fits its page: the 60 calls all go on the page the first one began.
    reset_rings(rig)
    m.call("ftrace_selftest_call", 1)
    measured["caller+function_trace_call"] = insns_per_call(m, (10, 20, 30)) - LOOP_AND_LEAF
    assert measured == {
        "caller+empty": INSNS_CALLER_EMPTY,
        "caller+empty, no redirect": INSNS_CALLER_EMPTY - 2,  # cmpl, je taken; no copy-back
        "regs_caller+empty": INSNS_REGS_CALLER_EMPTY,
        "caller+list(1 ops)": INSNS_CALLER_LIST_ONE,
        "caller+assist+empty": INSNS_CALLER_ASSIST_EMPTY,
        "caller+function_trace_call": INSNS_CALLER_FUNCTION_TRACER,
    }


# --- (g) a Python handler -------------------------------------------------------------------------


@pytest.fixture
def host_handler(rig):
    m = rig.m
    nr = m.types.enum("HC_FTRACE_CALLBACK")
    calls = []
    action = {}

    def handler(op, ip, parent_ip, fregs):
        regs = m.struct("pt_regs", fregs)
        saved = {k: getattr(regs, k) for k in ("ip", "cs", "ss", "sp", "flags", "orig_ax", "di")}
        calls.append(
            {
                "op": op,
                "ip": ip,
                "parent_ip": parent_ip,
                "fregs": fregs,
                "regs": saved,
                "at_sp": m.mem.read_u64(regs.sp),
            }
        )
        for member, value in action.items():
            setattr(regs, member, value)
        return 0

    with m.hypercalls.override(nr, handler):
        yield calls, action


@pytest.mark.parametrize("trampoline", ["ftrace_caller", "ftrace_regs_caller"])
def test_host_callback_gets_the_call_and_can_redirect(rig, texts, host_handler, trampoline):
    m = rig.m
    calls, action = host_handler
    ops = rig.ops(0, "ftrace_host_func")
    rig.var_u64("function_trace_op", ops)
    rig.call_slot(trampoline, "ftrace_host_func")
    site = rig.trace(SITE_FUNC, trampoline)
    assert cat_cmdline(m) == texts["cmdline"]
    (c,) = calls
    assert (c["op"], c["ip"]) == (ops, site)
    assert in_function(m, c["parent_ip"], "seq_read_iter")
    regs = c["regs"]
    assert regs["ip"] == site + 5
    assert c["at_sp"] == c["parent_ip"]  # sp = the traced function's rsp at entry
    assert regs["orig_ax"] == 0
    assert regs["di"] != 0  # cmdline_proc_show's first argument, the seq_file
    if trampoline == "ftrace_regs_caller":
        assert (regs["cs"], regs["ss"]) == (KERNEL_CS, KERNEL_DS)
        assert regs["flags"] & EFLAGS_IF
        assert regs["sp"] == c["fregs"] + MCOUNT_REG_SIZE + 16
    else:
        assert regs["cs"] == 0
        assert regs["sp"] == c["fregs"] + MCOUNT_REG_SIZE + 8

    action["ip"] = rig.sym("version_proc_show")
    assert cat_cmdline(m) == texts["version"]


@pytest.mark.parametrize("trampoline", ["ftrace_caller", "ftrace_regs_caller"])
def test_handler_may_change_argument_registers(rig, host_handler, trampoline):
    m = rig.m
    calls, action = host_handler
    rig.var_u64("function_trace_op", rig.ops(0, "ftrace_host_func"))
    rig.call_slot(trampoline, "ftrace_host_func")
    rig.trace(LEAF, trampoline)
    action["di"] = 41
    assert m.call("ftrace_selftest_call", 1) == 42  # ftrace_selftest_leaf(41)
    assert calls[0]["regs"]["di"] == 0


def test_regs_caller_restores_flags_and_enters_a_direct_trampoline(rig, host_handler):
    m = rig.m
    _calls, action = host_handler
    rig.var_u64("function_trace_op", rig.ops(0, "ftrace_host_func"))
    rig.call_slot("ftrace_regs_caller", "ftrace_host_func")
    site = rig.trace(LEAF, "ftrace_regs_caller")
    seen = []
    stub = rig.sym("ftrace_stub")

    def hook(uc, addr, _size, _ud):
        seen.append((addr, uc.reg_read(x.UC_X86_REG_EFLAGS), m.mem.read_u64(uc.reg_read(x.UC_X86_REG_RSP))))

    hooks = [m.uc.hook_add(UC_HOOK_CODE, hook, None, a, a) for a in (site + 5, stub)]
    m.uc.ctl_flush_tb()
    try:
        action.update(flags=0x2 | 0x40 | 0x1)  # ZF and CF set by the handler
        m.call("ftrace_selftest_call", 1)
        assert seen == [(site + 5, 0x2 | 0x40 | 0x1, seen[0][2])]
        seen.clear()
        # orig_ax = a direct trampoline (here ftrace_stub, a bare ret): entered with site+5 on top.
        action.update(flags=0x2, orig_ax=stub)
        assert m.call("ftrace_selftest_call", 1) == 1
        assert [(a, ret) for a, _f, ret in seen] == [(stub, site + 5), (site + 5, seen[1][2])]
    finally:
        for h in hooks:
            m.uc.hook_del(h)
        m.uc.ctl_flush_tb()


# --- the frames a handler sees --------------------------------------------------------------------


@pytest.mark.parametrize("trampoline", ["ftrace_caller", "ftrace_regs_caller"])
def test_handler_sees_traced_function_and_parent_frames(rig, trampoline):
    m = rig.m
    rig.call_slot(trampoline, "ftrace_empty_func")
    site = rig.trace(LEAF, trampoline)
    seen = []

    def hook(uc, _addr, _size, _ud):
        regs = {r: uc.reg_read(getattr(x, f"UC_X86_REG_{r.upper()}")) for r in ("rsp", "rbp", "rcx", "rdi", "rsi")}
        # The stack as the handler sees it: from its return address to the parent's.
        regs["stack"] = m.mem.read(regs["rsp"], 8 + MCOUNT_REG_SIZE + 24)
        seen.append(regs)

    entry = rig.sym("ftrace_empty_func")
    h = m.uc.hook_add(UC_HOOK_CODE, hook, None, entry, entry)
    m.uc.ctl_flush_tb()
    try:
        m.call("ftrace_selftest_call", 1)
    finally:
        m.uc.hook_del(h)
        m.uc.ctl_flush_tb()
    (s,) = seen

    def rd(addr: int) -> int:
        at = addr - s["rsp"]
        return struct.unpack("<Q", s["stack"][at : at + 8])[0]

    assert s["rdi"] == site
    assert in_function(m, s["rsi"], "ftrace_selftest_call")
    slot = rig.slot[trampoline]
    assert rd(s["rsp"]) == slot + 5  # the handler returns to just after the call slot
    fregs = s["rcx"]
    assert fregs == s["rsp"] + 8
    frames = fregs + 168  # the two fake frames, right above pt_regs
    assert rd(frames) == frames + 16 and rd(frames + 8) == site + 5  # the traced function
    assert rd(frames + 24) == s["rsi"]  # its parent
    assert rd(frames + 16) == rd(frames + 32) == rd(fregs + 32) != 0  # the original rbp, = regs->bp
    assert rd(fregs + 128) == site + 5  # regs->ip
    if trampoline == "ftrace_caller":
        assert s["rbp"] == frames
    else:
        assert s["rbp"] == fregs + 1  # ENCODE_FRAME_POINTER: a pt_regs frame
