"""Kprobes' control plane (kernel/kprobes.c): registering, arming and disarming probes.

A probe is a guest struct kprobe (a module's, or one the host made for a Python probe). The
host checks its address as check_kprobe_address_safe does, prepares its instruction
(insn.py), links it into the guest's kprobe_table, and arms it: an int3 written through
text_poke, or, at a fentry site, a filter entry of kprobe_ftrace_ops (kprobe_ipmodify_ops
when the probe has a post handler; every ftrace probe under the `legacy` policy, as before
5.4). Several probes at one address hang off one aggregate probe, whose handlers walk them.
Hitting a probe runs machine code only (arch/x86/kernel/kprobes/ in the firmware).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from errno import EAGAIN, EBUSY, EINVAL, ENOENT, ETIMEDOUT
from typing import TYPE_CHECKING

from ...abi import KPROBE_FLAG, KPROBE_HASH_BITS, KPROBE_TABLE_SIZE
from ...errors import KlpemuError
from ..guestlist import GuestList
from ..printk import LogLevel, log_store
from . import insn as x86

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..conflicts import Conflicts
    from ..ftrace import Ftrace
    from ..ftrace.ops import FtraceOps
    from ..module import Modules
    from ..text_poke import TextPoke

SYNC_TIMEOUT_NS = 1_000_000_000
FLAG = KPROBE_FLAG  # by short name: FLAG["GONE"]
INT3 = 0xCC
POLICIES = ("mainline", "legacy")
PR_FMT = "kprobes: "  # kernel/kprobes.c's pr_fmt

# A Python pre handler: (probe, regs view) -> int (nonzero: it set regs.ip, skip the step);
# a post handler: (probe, regs view, flags) -> None.
PyHandler = Callable[..., int | None]


def pr_info(m: Machine, text: str) -> None:
    """kernel/kprobes.c's pr_info, with its pr_fmt."""
    log_store(m, PR_FMT + text, LogLevel.INFO)


def pr_warn(m: Machine, text: str) -> None:
    log_store(m, PR_FMT + text, LogLevel.WARNING)


def pr_err(m: Machine, text: str) -> None:
    log_store(m, PR_FMT + text, LogLevel.ERR)


def kprobe_hash(addr: int) -> int:
    return (addr ^ (addr >> KPROBE_HASH_BITS) ^ (addr >> (2 * KPROBE_HASH_BITS))) & (KPROBE_TABLE_SIZE - 1)


@dataclass(eq=False)
class Probe:
    """What the host keeps about one registered struct kprobe (a kretprobe's embedded one too)."""

    kp: int  # the guest struct kprobe
    owner: str  # the module that registered it, or "host"
    kind: str = "k"  # "k" a kprobe, "r" a kretprobe's entry probe
    rp: int = 0  # the struct kretprobe, for kind "r"
    py: dict[str, PyHandler] = field(default_factory=dict)  # Python handlers by role
    allocations: list[int] = field(default_factory=list)  # host-made memory to free with it
    hits: dict[str, int] = field(default_factory=dict)  # calls of each Python handler


class Kprobes:
    def __init__(self, machine: Machine, ftrace: Ftrace, text_poke: TextPoke, modules: Modules, conflicts: Conflicts):
        self.m = machine
        self.ftrace = ftrace
        self.text_poke = text_poke
        self.modules = modules
        self.conflicts = conflicts
        self.list = GuestList(machine.mem)
        self.probes: dict[int, Probe] = {}  # struct kprobe -> its record
        self.all_disarmed = False  # /sys/kernel/debug/kprobes/enabled = 0
        self._policy = "mainline"
        self._armed_on: dict[int, bool] = {}  # aggregate-or-single probe -> armed on the IPMODIFY ops?
        self._ftrace_users = {False: 0, True: 0}  # kprobe_ftrace_enabled, kprobe_ipmodify_enabled
        self._ops: dict[bool, FtraceOps] = {}
        self._blacklist: list[tuple[int, int, str]] | None = None
        self.arming = 0  # the probe being armed, for the conflict record to name
        self._unregistering: dict[int, Callable[[], None]] = {}  # guest unregisters waiting to free
        sym = machine.image.addr
        self.pre_handler_kretprobe = sym("pre_handler_kretprobe")
        self.aggr_pre_handler = sym("aggr_pre_handler")
        self.aggr_post_handler = sym("aggr_post_handler")
        self.host_handlers = {
            "pre": sym("kprobe_host_pre_handler"),
            "post": sym("kprobe_host_post_handler"),
            "ret": sym("kretprobe_host_handler"),
            "entry": sym("kretprobe_host_entry_handler"),
        }
        self._size = machine.types.sizeof("kprobe")
        self._list_off = machine.types.offsetof("kprobe", "list")
        self._table = machine.var_addr("kprobe_table")
        machine.hypercalls.register("HC_KPROBE_REGISTER", self._hc_register)
        machine.hypercalls.register("HC_KPROBE_UNREGISTER", self._hc_unregister)
        machine.hypercalls.register("HC_KPROBE_CALLBACK", self._hc_callback)
        machine.hypercalls.register("HC_KPROBE_ENABLE", self._hc_enable)
        machine.hypercalls.register("HC_KPROBE_DUMP", self._hc_dump)
        from .kretprobe import Kretprobes

        self.kretprobes = Kretprobes(machine, self)

    # --- policy --------------------------------------------------------------------------------

    @property
    def policy(self) -> str:
        """Which ftrace ops a probe at a fentry site uses: "mainline" (the IPMODIFY one only with
        a post handler, since 5.4) or "legacy" (always the IPMODIFY one: a kretprobe and a
        livepatch on one function then exclude each other, as livepatch.rst still says)."""
        return self._policy

    @policy.setter
    def policy(self, name: str) -> None:
        if name not in POLICIES:
            raise KlpemuError(f"kprobes policy must be one of {', '.join(POLICIES)}", EINVAL)
        if self._ftrace_users[False] or self._ftrace_users[True]:
            raise KlpemuError("kprobes policy cannot change while probes are armed through ftrace", EBUSY)
        self._policy = name

    # --- guest structs -------------------------------------------------------------------------

    def view(self, kp: int):
        return self.m.struct("kprobe", kp)

    def _bucket(self, addr: int) -> int:
        return self._table + 8 * kprobe_hash(addr)

    def get_kprobe(self, addr: int) -> int:
        """The probe (an aggregate, if several) kprobe_table has at addr, or 0."""
        mem = self.m.mem
        p = mem.read_u64(self._bucket(addr))
        while p:
            if self.view(p).addr == addr:
                return p
            p = self.view(p).hlist_next
        return 0

    def _hash_add(self, p: int, addr: int) -> None:
        bucket = self._bucket(addr)
        self.view(p).hlist_next = self.m.mem.read_u64(bucket)
        self.m.mem.write_u64(bucket, p)  # published last

    def _hash_replace(self, old: int, new: int, addr: int) -> None:
        self.view(new).hlist_next = self.view(old).hlist_next
        self._hash_link_to(old, new, addr)

    def _hash_del(self, p: int, addr: int) -> None:
        self._hash_link_to(p, self.view(p).hlist_next, addr)

    def _hash_link_to(self, old: int, new: int, addr: int) -> None:
        """Make whatever points at old point at new."""
        mem = self.m.mem
        slot = self._bucket(addr)
        while mem.read_u64(slot) != old:
            slot = mem.read_u64(slot) + self.m.types.offsetof("kprobe", "hlist_next")
        mem.write_u64(slot, new)

    def children(self, ap: int) -> list[int]:
        """The probes of an aggregate, in its list's order."""
        return [n - self._list_off for n in self.list.nodes(ap + self._list_off)]

    def is_aggregate(self, p: int) -> bool:
        return self.view(p).pre_handler == self.aggr_pre_handler

    def table(self) -> list[int]:
        """Every probe in kprobe_table, bucket by bucket (aggregates, not their children)."""
        out = []
        for i in range(KPROBE_TABLE_SIZE):
            p = self.m.mem.read_u64(self._table + 8 * i)
            while p:
                out.append(p)
                p = self.view(p).hlist_next
        return out

    def location(self, kp: int) -> int:
        """Where a registered probe is (its code address)."""
        return self.view(kp).addr

    # --- addresses -----------------------------------------------------------------------------

    def lookup_name(self, name: str) -> int | None:
        """kprobe_lookup_name: vmlinux's symbol, else a loaded module's (`mod:sym` names one)."""
        img = self.m.image
        if ":" in name:
            mod_name, sym = name.split(":", 1)
            mod = self.modules.find(mod_name)
            hits = mod.kallsyms.by_name.get(sym, []) if mod is not None and mod.kallsyms else []
            return hits[0].addr if hits else None
        # kallsyms_lookup_name: any symbol, data too; check_kprobe_address_safe refuses those.
        syms = list(img.by_name.get(name, ()))
        if not syms:
            syms = [s for k in img.module_kallsyms for s in k.by_name.get(name, ())]
        return syms[0].addr if syms else None

    def kprobe_addr(self, kp: int) -> int:
        """_kprobe_addr: the address from addr or symbol_name, plus offset."""
        v = self.view(kp)
        if bool(v.symbol_name) == bool(v.addr):
            raise KlpemuError("a kprobe needs exactly one of addr and symbol_name", EINVAL)
        addr = v.addr
        if v.symbol_name:
            name = self.m.mem.read_cstr(v.symbol_name, 512)
            addr = self.lookup_name(name)
            if addr is None:
                raise KlpemuError(f"symbol '{name}' not found", ENOENT)
        return (addr + v.offset) & (2**64 - 1)

    @property
    def blacklist(self) -> list[tuple[int, int, str]]:
        """(start, end, name), in kprobe_blacklist's order: the NOKPROBE_SYMBOL functions, then
        every function of the .kprobes.text and .entry.text areas, as populate_kprobe_blacklist
        lists them; then those of loaded modules, added as each came."""
        if self._blacklist is None:
            img = self.m.image
            out: list[tuple[int, int, str]] = []
            start, stop = img.addr("__start_kprobe_blacklist"), img.addr("__stop_kprobe_blacklist")
            self._add_ksym_blacklist(out, start, (stop - start) // 8)
            for lo_name, hi_name in (
                ("__kprobes_text_start", "__kprobes_text_end"),
                ("__entry_text_start", "__entry_text_end"),
            ):
                self._add_area_blacklist(out, img.addr(lo_name), img.addr(hi_name))
            self._blacklist = out
        return self._blacklist

    def _add_ksym_blacklist(self, out: list[tuple[int, int, str]], array: int, count: int) -> None:
        """kprobe_add_ksym_blacklist for each address in a NOKPROBE_SYMBOL array."""
        for at in range(array, array + 8 * count, 8):
            sym = self.m.image.function_at(self.m.mem.read_u64(at))
            if sym is not None:
                out.append((sym.addr, sym.addr + sym.size, sym.name))

    def _add_area_blacklist(self, out: list[tuple[int, int, str]], lo: int, hi: int) -> None:
        """kprobe_add_area_blacklist: every function in [lo, hi)."""
        at = lo
        while at < hi:
            sym = self.m.image.function_at(at)
            if sym is None:
                at += 1
                continue
            end = min(sym.addr + sym.size, hi)
            out.append((sym.addr, end, sym.name))
            at = end

    def blacklisted(self, addr: int) -> str | None:
        for start, end, name in self.blacklist:
            if start <= addr < end:
                return name
        return None

    def ftrace_location(self, addr: int) -> int | None:
        """The fentry site whose 5 bytes hold addr, if any."""
        records = self.ftrace.records
        for ip in (addr - k for k in range(5)):
            if records.find(ip) is not None:
                return ip
        return None

    def check_address_safe(self, addr: int) -> int:
        """check_kprobe_address_safe: returns the probe's flags to add (FTRACE at a fentry site)."""
        m = self.m
        flags = 0
        site = self.ftrace_location(addr)
        if site is not None:
            if site != addr:
                raise KlpemuError(f"0x{addr:x} is inside the fentry site at {m.image.symbolize(site)}", x86.EILSEQ)
            flags |= FLAG["FTRACE"]
        mod = self.modules.module_at(addr)
        in_text = m.image.is_kernel_text(addr) or (
            mod is not None and any(lo <= addr < hi for lo, hi in mod.text_ranges())
        )
        if not in_text:
            raise KlpemuError(f"0x{addr:x} is not kernel or module text", EINVAL)
        black = self.blacklisted(addr)
        if black is not None:
            raise KlpemuError(f"{m.image.symbolize(addr)} is on the kprobe blacklist ({black})", EINVAL)
        if mod is not None:
            base, size = mod.mem.get("MOD_INIT_TEXT", (0, 0))
            if base <= addr < base + size and self.modules.state(mod) != "MODULE_STATE_COMING":
                raise KlpemuError(f"{mod.name}'s init text is gone", ENOENT)
        return flags

    # --- the instruction -----------------------------------------------------------------------

    def original_bytes(self, addr: int, size: int) -> bytes:
        """Text as it was before any kprobe's int3 (recover_probed_instruction)."""
        data = bytearray(self.m.mem.read(addr, size))
        for i in range(size):
            if data[i] == INT3:
                p = self.get_kprobe(addr + i)
                if p and not self.view(p).flags & FLAG["FTRACE"]:
                    data[i] = self.view(p).opcode
        return bytes(data)

    def _prepare(self, kp: int) -> None:
        """arch_prepare_kprobe (or _ftrace): check the boundary, classify the instruction and
        write its out-of-line copy, followed by an int3, to a fresh slot."""
        m = self.m
        v = self.view(kp)
        addr = v.addr
        if v.flags & FLAG["FTRACE"]:
            v.ainsn.insn = 0
            v.ainsn.size = 5
            return
        func = m.image.function_at(addr)
        if func is None:
            raise KlpemuError(f"no function at 0x{addr:x}", x86.EILSEQ)
        x86.check_boundary(self.original_bytes, func.addr, addr)
        code = self.original_bytes(addr, x86.MAX_INSN_SIZE)
        slot = m.heap.alloc_text(x86.MAX_INSN_SIZE + 1)
        try:
            prep = x86.prepare(code, addr, slot)
        except KlpemuError as e:
            m.heap.free(slot)
            if isinstance(e, x86.DisplacementOverflow):
                log_store(m, str(e), LogLevel.ERR)  # arch/x86's pr_err, which has no pr_fmt
            raise
        a = v.ainsn
        a.size, a.emulate_op, a.opcode = prep.size, prep.emulate_op, prep.opcode
        a.indirect_reg, a.rel32, a.ret_imm = prep.indirect_reg, prep.rel32, prep.ret_imm
        v.opcode = code[0]
        if prep.copy:
            self.text_poke.write_early(slot, prep.copy + bytes([INT3]))  # nothing runs it yet
            a.insn = slot
        else:
            m.heap.free(slot)
            a.insn = 0

    def _free_slot(self, kp: int) -> None:
        v = self.view(kp)
        if v.ainsn.insn:
            self.m.heap.free(v.ainsn.insn)
            v.ainsn.insn = 0

    # --- arming --------------------------------------------------------------------------------

    def _ftrace_ops(self, ipmodify: bool) -> FtraceOps:
        if ipmodify not in self._ops:
            name = "kprobe_ipmodify_ops" if ipmodify else "kprobe_ftrace_ops"
            self._ops[ipmodify] = self.ftrace.static_ops(name, name)
        return self._ops[ipmodify]

    def ops_of(self, p: int) -> FtraceOps | None:
        """The ftrace ops an armed ftrace probe (or aggregate) is on."""
        ipmodify = self._armed_on.get(p)
        return None if ipmodify is None else self._ftrace_ops(ipmodify)

    def _arm(self, p: int) -> None:
        self.arming = p
        try:
            self._arm_probe(p)
        finally:
            self.arming = 0

    def _arm_probe(self, p: int) -> None:
        v = self.view(p)
        if v.flags & FLAG["FTRACE"]:
            ft = self.ftrace
            ipmodify = bool(v.post_handler) or self._policy == "legacy"
            ops = self._ftrace_ops(ipmodify)
            ft.set_filter(ops, [v.addr], reset=False)
            if self._ftrace_users[ipmodify] == 0:
                try:
                    ft.register(ops)
                except KlpemuError:
                    ft.set_filter(ops, [v.addr], remove=True)
                    raise
            self._ftrace_users[ipmodify] += 1
            self._armed_on[p] = ipmodify
            return
        self.text_poke.poke(v.addr, bytes([INT3]))
        self._armed_on[p] = False

    def _disarm(self, p: int) -> None:
        ipmodify = self._armed_on.pop(p, None)
        if ipmodify is None:
            return
        v = self.view(p)
        if v.flags & FLAG["FTRACE"]:
            ft = self.ftrace
            ops = self._ftrace_ops(ipmodify)
            if self._ftrace_users[ipmodify] == 1:
                ft.unregister(ops)
            self._ftrace_users[ipmodify] -= 1
            ft.set_filter(ops, [v.addr], remove=True)
            return
        self.text_poke.poke(v.addr, bytes([v.opcode]))

    def armed(self, p: int) -> bool:
        return p in self._armed_on

    # --- register / unregister -----------------------------------------------------------------

    def register(
        self, kp: int, owner: str = "host", *, kind: str = "k", rp: int = 0, py: dict[str, PyHandler] | None = None
    ) -> Probe:
        """register_kprobe, in Linux's order: the address is written to the struct and its
        flags masked before the checks (a refused probe shows where it would have been);
        nothing else changes before every check passed, and an arming failure is undone."""
        addr = self.kprobe_addr(kp)
        v = self.view(kp)
        v.addr = addr
        if kp in self.probes:
            raise KlpemuError("this kprobe is already registered", EINVAL)
        v.flags = v.flags & FLAG["DISABLED"]  # the only flag a caller may pass
        v.nmissed = 0
        self.list.init(kp + self._list_off)
        v.flags = v.flags | self.check_address_safe(addr)
        probe = Probe(kp, owner, kind, rp, dict(py or {}))
        self.probes[kp] = probe  # known while armed, so the conflict record can name it
        try:
            old = self.get_kprobe(addr)
            if old:
                self._register_aggr(old, kp)
            else:
                self._prepare(kp)
                self._hash_add(kp, addr)
                if not self.all_disarmed and not v.flags & FLAG["DISABLED"]:
                    try:
                        self._arm(kp)
                    except KlpemuError:
                        self._hash_del(kp, addr)
                        self._free_slot(kp)
                        raise
        except KlpemuError:
            del self.probes[kp]
            raise
        self.conflicts.kprobe_arrived(probe)
        return probe

    def _copy_kprobe(self, src: int, dst: int) -> None:
        s, d = self.view(src), self.view(dst)
        for name in ("size", "emulate_op", "opcode", "indirect_reg", "rel32", "ret_imm", "insn"):
            setattr(d.ainsn, name, getattr(s.ainsn, name))
        d.opcode = s.opcode
        d.flags = (d.flags & ~FLAG["FTRACE"]) | (s.flags & FLAG["FTRACE"])

    def _register_aggr(self, orig: int, kp: int) -> None:
        """register_aggr_kprobe: the second probe at an address makes an aggregate in its place;
        an aggregate whose code had gone (its module reloaded at the same address) gets a new
        slot and comes back disabled, to be armed like any other."""
        m = self.m
        ap = orig
        if not self.is_aggregate(orig):
            ap = m.heap.kzalloc(self._size)
            self._init_aggr(ap, orig)
        a = self.view(ap)
        if a.flags & FLAG["GONE"]:
            self._prepare(ap)  # on failure the aggregate stays, GONE, for unregister to free
            a.flags = (a.flags & ~FLAG["GONE"]) | FLAG["DISABLED"]
        self._copy_kprobe(ap, kp)
        p = self.view(kp)
        self.list.add(kp + self._list_off, ap + self._list_off)  # list_add_rcu: newest first
        if p.post_handler and not a.post_handler:
            a.post_handler = self.aggr_post_handler
        if a.flags & (FLAG["DISABLED"] | FLAG["GONE"]) and not p.flags & (FLAG["DISABLED"] | FLAG["GONE"]):
            a.flags = a.flags & ~FLAG["DISABLED"]
            if not self.all_disarmed:
                try:
                    self._arm(ap)
                except KlpemuError:
                    a.flags = a.flags | FLAG["DISABLED"]
                    self.list.delete_rcu(kp + self._list_off)
                    raise

    def _init_aggr(self, ap: int, orig: int) -> None:
        """init_aggr_kprobe: ap takes orig's place in kprobe_table, with orig on its list."""
        a, o = self.view(ap), self.view(orig)
        self._copy_kprobe(orig, ap)
        a.addr = o.addr
        a.flags = o.flags & ~FLAG["OPTIMIZED"]
        a.pre_handler = self.aggr_pre_handler
        if o.post_handler and not o.flags & FLAG["GONE"]:
            a.post_handler = self.aggr_post_handler
        self.list.init(ap + self._list_off)
        self.list.add(orig + self._list_off, ap + self._list_off)
        self._hash_replace(orig, ap, o.addr)
        if orig in self._armed_on:
            self._armed_on[ap] = self._armed_on.pop(orig)

    def unregister(self, kp: int) -> None:
        """unregister_kprobe: disarm and unlink, wait until no CPU is inside a probe, free."""
        bottom = self.unregister_top(kp)
        self.synchronize()
        bottom()

    def unregister_top(self, kp: int) -> Callable[[], None]:
        """__unregister_kprobe_top: disarm when nothing else uses the address, unlink. Returns
        __unregister_kprobe_bottom, which frees; a CPU may still be inside the probe until
        synchronize() says otherwise."""
        probe = self.probes.get(kp)
        if probe is None:
            raise KlpemuError("this kprobe is not registered", EINVAL)
        m = self.m
        addr = self.view(kp).addr
        ap = self._disable(kp)  # kp stays DISABLED, as Linux leaves it
        freed: list[int] = []  # probes whose slot goes
        aggregate = 0
        if ap == kp:
            self._hash_del(kp, addr)
            freed.append(kp)
        else:
            p, a = self.view(kp), self.view(ap)
            if (
                p.post_handler
                and not p.flags & FLAG["GONE"]
                and not a.flags & FLAG["FTRACE"]
                and not any(self.view(c).post_handler for c in self.children(ap) if c != kp)
            ):
                a.post_handler = 0  # (an ftrace aggregate keeps it: it names the IPMODIFY ops)
            self.list.delete_rcu(kp + self._list_off)  # a CPU walking the list may stand on kp
            if not self.children(ap):
                self._hash_del(ap, addr)
                freed.append(ap)
                aggregate = ap
        del self.probes[kp]

        def bottom() -> None:
            for p in freed:
                self._free_slot(p)
            if kp not in freed:
                self.view(kp).ainsn.insn = 0  # the slot was the aggregate's
            if aggregate:
                m.heap.free(aggregate)
            for addr_ in probe.allocations:
                m.heap.free(addr_)

        return bottom

    # --- waiting for the CPUs (synchronize_rcu) ------------------------------------------------

    def inside(self, cpu) -> bool:
        """Is cpu in kprobes' code: a probe's handler or step (current_kprobe set, also while a
        kretprobe's return runs), or a function of the paths that find a probe (the int3 and
        ftrace entries, the trampoline: the blacklist)?"""
        m = self.m
        kcb = m.var_addr("kprobe_ctlblk") + cpu.index * m.types.sizeof("kprobe_ctlblk")
        if m.struct("kprobe_ctlblk", kcb).current_kprobe:
            return True
        return not cpu.user_mode and self.blacklisted(cpu.reg("rip")) is not None

    def quiescent(self) -> bool:
        """No CPU but the one making a hypercall (if any) is inside kprobes' code."""
        m = self.m
        return not any(self.inside(c) for c in m.cpus if c.online and c is not m.running_cpu)

    def synchronize(self) -> None:
        """What synchronize_rcu gives unregistering: run the machine until no CPU is inside a
        probe, as text_poke waits for its int3 handlers. (The guest waits for itself: see
        _guest_unregister.)"""
        m = self.m
        if m.stopped or self.quiescent():
            return
        if m.running_cpu is not None:
            raise KlpemuError("cannot wait for the CPUs from inside a hypercall", EAGAIN)
        if not m.run_until(self.quiescent, SYNC_TIMEOUT_NS) and not m.stopped:
            raise KlpemuError("a CPU stayed inside a kprobe; its memory is kept", ETIMEDOUT)

    def _guest_unregister(self, struct: int, top: Callable[[], Callable[[], None]]) -> int:
        """unregister_k(ret)probe from the guest: the top half at once, then -EAGAIN while a CPU is
        inside a probe (the guest sleeps and asks again), then the bottom half and 0."""
        bottom = self._unregistering.pop(struct, None)
        if bottom is None:
            bottom = top()
        if not self.quiescent():
            self._unregistering[struct] = bottom
            return -EAGAIN
        bottom()
        return 0

    def set_enabled(self, kp: int, enable: bool) -> None:
        """enable_kprobe / disable_kprobe."""
        if kp not in self.probes:
            raise KlpemuError("this kprobe is not registered", EINVAL)
        if not enable:
            self._disable(kp)
            return
        v = self.view(kp)
        ap = self.get_kprobe(v.addr)
        if v.flags & FLAG["GONE"]:
            raise KlpemuError("this kprobe's code is gone", EINVAL)
        if ap != kp:
            v.flags = v.flags & ~FLAG["DISABLED"]
        a = self.view(ap)
        # While all probes are disarmed only a child's flag changes: the probe in kprobe_table
        # stays disabled, and arm_all_kprobes leaves it so.
        if not self.all_disarmed and a.flags & (FLAG["DISABLED"] | FLAG["GONE"]):
            a.flags = a.flags & ~FLAG["DISABLED"]
            try:
                self._arm(ap)
            except KlpemuError:
                a.flags = a.flags | FLAG["DISABLED"]
                if ap != kp:
                    v.flags = v.flags | FLAG["DISABLED"]
                raise

    def _disable(self, kp: int) -> int:
        """__disable_kprobe: kp disabled; its aggregate too, and disarmed, once no probe on it
        is left enabled. Returns the probe kprobe_table has at kp's address."""
        v = self.view(kp)
        ap = self.get_kprobe(v.addr)
        off = FLAG["DISABLED"] | FLAG["GONE"]
        if v.flags & off:
            return ap
        if kp != ap:
            v.flags = v.flags | FLAG["DISABLED"]
        if kp == ap or all(self.view(c).flags & off for c in self.children(ap)):
            a = self.view(ap)
            if not self.all_disarmed and not a.flags & off:
                try:
                    self._disarm(ap)
                except KlpemuError:
                    v.flags = v.flags & ~FLAG["DISABLED"]
                    raise
            a.flags = a.flags | FLAG["DISABLED"]
        return ap

    # --- all probes at once (/sys/kernel/debug/kprobes/enabled) --------------------------------

    def arm_all(self) -> None:
        """arm_all_kprobes: best effort; if any probe failed to arm, the last error is raised
        (the write to `enabled` fails with it) once the rest are armed."""
        if self.all_disarmed:
            self.all_disarmed = False
            self._all_probes(self._arm, "enabled", "enable", "disabled")

    def disarm_all(self) -> None:
        """disarm_all_kprobes: best effort too, the last error raised."""
        if not self.all_disarmed:
            self.all_disarmed = True
            self._all_probes(self._disarm, "disabled", "disable", "enabled")

    def _all_probes(self, action, done: str, verb: str, kept: str) -> None:
        """Apply action to every probe that is neither disabled nor gone; then Linux's line."""
        total = errors = 0
        last: KlpemuError | None = None
        for p in self.table():
            if not self.view(p).flags & (FLAG["DISABLED"] | FLAG["GONE"]):
                total += 1
                try:
                    action(p)
                except KlpemuError as e:
                    errors += 1
                    last = e
        if errors:
            pr_warn(
                self.m,
                f"Kprobes globally {done}, but failed to {verb} {errors} out of {total} probes. "
                f"Please check which kprobes are kept {kept} via debugfs.",
            )
        else:
            pr_info(self.m, f"Kprobes globally {done}")
        if last is not None:
            raise KlpemuError(f"failed to {verb} {errors} of {total} probes: {last}", last.errno or EINVAL)

    # --- modules -------------------------------------------------------------------------------

    def module_coming(self, mod) -> None:
        """kprobes_module_callback, MODULE_STATE_COMING: the module's blacklist joins the list."""
        m = self.m
        v = m.struct("module", mod.addr)
        black = self.blacklist
        self._add_ksym_blacklist(black, v.kprobe_blacklist, v.num_kprobe_blacklist)
        if v.kprobes_text_start:
            self._add_area_blacklist(black, v.kprobes_text_start, v.kprobes_text_start + v.kprobes_text_size)

    def module_going(self, mod) -> None:
        """kprobes_module_callback, MODULE_STATE_GOING: probes on any of the module's text die,
        and its blacklist entries leave (kprobe_remove_area_blacklist: by start address)."""
        self._kill_within(mod, [t for t in mod.mem])
        m = self.m
        v = m.struct("module", mod.addr)
        areas = [
            (e, e + 1) for e in (m.mem.read_u64(v.kprobe_blacklist + 8 * i) for i in range(v.num_kprobe_blacklist))
        ]
        if v.kprobes_text_start:
            areas.append((v.kprobes_text_start, v.kprobes_text_start + v.kprobes_text_size))
        self.blacklist[:] = [b for b in self.blacklist if not any(lo <= b[0] < hi for lo, hi in areas)]

    def module_live(self, mod) -> None:
        """kprobes_module_callback, MODULE_STATE_LIVE: probes on its init text die with it."""
        self._kill_within(mod, ["MOD_INIT_TEXT", "MOD_INIT_DATA"])

    def _kill_within(self, mod, mem_types: list[str]) -> None:
        ranges = [(base, base + size) for t, (base, size) in mod.mem.items() if t in mem_types and size]
        for p in self.table():
            if any(lo <= self.view(p).addr < hi for lo, hi in ranges):
                self.kill_kprobe(p)

    def kill_kprobe(self, p: int) -> None:
        """kill_kprobe: the probed code goes away: GONE, and its slot freed. Nothing runs that
        code any more, so nothing is inside the probe and its int3 stays in the dying text."""
        v = self.view(p)
        if v.flags & FLAG["FTRACE"]:
            self._disarm(p)  # ftrace still knows the site until the module's records go
        else:
            self._armed_on.pop(p, None)
        v.flags = v.flags | FLAG["GONE"]
        if self.is_aggregate(p):
            for c in self.children(p):
                self.view(c).flags = self.view(c).flags | FLAG["GONE"]
            v.post_handler = 0
        self._free_slot(p)

    # --- the host's own probes -----------------------------------------------------------------

    def _handler_addr(self, role: str, handler, py: dict) -> int:
        if handler is None:
            return 0
        if callable(handler):
            py[role] = handler
            return self.host_handlers[role]
        return self.m.image.addr(handler) if isinstance(handler, str) else int(handler)

    def add_kprobe(
        self,
        symbol: str | None = None,
        offset: int = 0,
        *,
        addr: int = 0,
        pre_handler=None,
        post_handler=None,
        disabled: bool = False,
        owner: str = "host",
    ) -> int:
        """A struct kprobe made and registered by the host; handlers are guest functions (a name
        or an address) or Python callables. Returns the struct's address."""
        m = self.m
        kp = m.heap.kzalloc(self._size)
        allocations = [kp]
        v = self.view(kp)
        if symbol is not None:
            name = m.heap.kzalloc(len(symbol) + 1)
            m.mem.write(name, symbol.encode() + b"\0")
            allocations.append(name)
            v.symbol_name = name
        v.addr = addr
        v.offset = offset
        py: dict[str, PyHandler] = {}
        v.pre_handler = self._handler_addr("pre", pre_handler, py)
        v.post_handler = self._handler_addr("post", post_handler, py)
        v.flags = FLAG["DISABLED"] if disabled else 0
        try:
            probe = self.register(kp, owner, py=py)
        except KlpemuError:
            for a in allocations:
                m.heap.free(a)
            raise
        probe.allocations = allocations
        return kp

    # --- hypercalls ----------------------------------------------------------------------------

    def _caller(self, struct_addr: int) -> str:
        mod = self.modules.module_at(struct_addr)
        return mod.name if mod is not None else "vmlinux"

    def _hc_register(self, kp: int, *_args) -> int:
        try:
            self.register(kp, self._caller(kp))
        except KlpemuError as e:
            return -(e.errno or EINVAL)
        return 0

    def _hc_unregister(self, kp: int, *_args) -> int:
        try:
            return self._guest_unregister(kp, lambda: self.unregister_top(kp))
        except KlpemuError:
            self.view(kp).addr = 0  # as unregister_kprobes marks a probe it could not find
        return 0

    def _hc_enable(self, kp: int, enable: int, *_args) -> int:
        try:
            self.set_enabled(kp, bool(enable))
        except KlpemuError as e:
            return -(e.errno or EINVAL)
        return 0

    def _hc_dump(self, kp: int, *_args) -> int:
        """dump_kprobe: pr_err("Dump kprobe:\n.symbol_name = %s, .offset = %x, .addr = %pS\n")."""
        m = self.m
        v = self.view(kp)
        name = m.mem.read_cstr(v.symbol_name, 512) if v.symbol_name else "(null)"
        pr_err(m, "Dump kprobe:")
        log_store(
            m, f".symbol_name = {name}, .offset = {v.offset:x}, .addr = {m.image.symbolize(v.addr)}", LogLevel.ERR
        )
        return 0

    def _hc_callback(self, which: int, probe: int, regs: int, arg: int) -> int:
        role = ("pre", "post", "ret", "entry")[which]
        m = self.m
        kp = probe + m.types.offsetof("kretprobe", "kp") if role in ("ret", "entry") else probe
        rec = self.probes.get(kp)
        fn = rec.py.get(role) if rec is not None else None
        if fn is None:
            return 0
        rec.hits[role] = rec.hits.get(role, 0) + 1
        if role in ("ret", "entry"):
            return int(fn(m.struct("kretprobe_instance", arg), m.struct("pt_regs", regs)) or 0)
        if role == "pre":
            return int(fn(self.view(probe), m.struct("pt_regs", regs)) or 0)
        fn(self.view(probe), m.struct("pt_regs", regs), arg)
        return 0

    # --- what debugfs shows --------------------------------------------------------------------

    def _report(self, p: int, pp: int) -> str:
        m = self.m
        v = self.view(p)
        kind = "r" if v.pre_handler == self.pre_handler_kretprobe else "k"
        sym = m.image.function_at(v.addr)
        flags = self.view(pp).flags
        tail = (
            ("[GONE]" if v.flags & FLAG["GONE"] else "")
            + ("[DISABLED]" if v.flags & FLAG["DISABLED"] and not v.flags & FLAG["GONE"] else "")
            + ("[OPTIMIZED]" if flags & FLAG["OPTIMIZED"] else "")
            + ("[FTRACE]" if flags & FLAG["FTRACE"] else "")
        )
        if sym is not None:
            return f"{v.addr:016x}  {kind}  {sym.name}+0x{v.addr - sym.addr:x}  {sym.module or ' '} {tail}\n"
        return f"{v.addr:016x}  {kind}  0x{v.addr:x} {tail}\n"

    def list_text(self) -> str:
        """/sys/kernel/debug/kprobes/list (show_kprobe_addr)."""
        out = []
        for p in self.table():
            if self.is_aggregate(p):
                out.extend(self._report(c, p) for c in self.children(p))
            else:
                out.append(self._report(p, p))
        return "".join(out)

    def blacklist_text(self) -> str:
        ps = self.ftrace.symbol_ps
        return "".join(f"0x{s:016x}-0x{e:016x}\t{ps(s)}\n" for s, e, _ in self.blacklist)
