"""Kprobes' control plane (kernel/kprobes.c): registering, arming and disarming probes.

A probe is a guest struct kprobe (a module's, or one the host made for a Python probe). The
host checks its address as check_kprobe_address_safe does, prepares its instruction, links it
into the guest's kprobe_table (table.py), and arms it: an int3 written through text_poke
(arch.py), or, at a fentry site, a filter entry of kprobe_ftrace_ops (kprobe_ipmodify_ops when
the probe has a post handler; every ftrace probe under the `legacy` policy, as before 5.4:
ftrace.py). Several probes at one address hang off one aggregate probe, whose handlers walk
them. Hitting a probe runs machine code only (arch/x86/kernel/kprobes/ in the firmware). The
guest's own calls come in through guest.py; the debugfs files are klpemu/fs/kprobesfs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from errno import EAGAIN, EILSEQ, EINVAL, ENOENT, ETIMEDOUT
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ...machine.kstr import kbytes
from ..guestlist import GuestList
from .arch import INT3, ArchKprobes
from .blacklist import KprobeBlacklist
from .ftrace import KprobeFtrace
from .guest import KprobesGuest
from .kretprobe import Kretprobes
from .probe import FLAG, Probe, PyHandler, pr_info, pr_warn
from .table import KprobeTable

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ...machine.types import View
    from ..conflicts import Conflicts
    from ..ftrace import Ftrace
    from ..ftrace.ops import FtraceOps
    from ..module import Module, Modules
    from ..text_poke import TextPoke

SYNC_TIMEOUT_NS = 1_000_000_000
OFF = FLAG["DISABLED"] | FLAG["GONE"]  # kprobe_disabled(): a probe that must not fire


class Kprobes:
    def __init__(self, machine: Machine, ftrace: Ftrace, text_poke: TextPoke, modules: Modules, conflicts: Conflicts):
        self.m = machine
        self.ftrace = ftrace
        self.modules = modules
        self.conflicts = conflicts
        self.list = GuestList(machine.mem)
        self.probes: dict[int, Probe] = {}  # struct kprobe -> its record
        self.all_disarmed = False  # /sys/kernel/debug/kprobes/enabled = 0
        self.kprobe_table = KprobeTable(machine)
        self.blacklist = KprobeBlacklist(machine)
        self.arch = ArchKprobes(machine, text_poke, self.kprobe_table)
        self.on_ftrace = KprobeFtrace(ftrace)
        self._armed: dict[int, FtraceOps | None] = {}  # armed probe -> its ftrace ops (None: an int3)
        self._arming = 0  # the probe being armed, which ftrace reports before it is in _armed
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
        self.kretprobes = Kretprobes(machine, self)
        self.guest = KprobesGuest(machine, self, self.kretprobes, modules)

    @property
    def policy(self) -> str:
        """Which ftrace ops a probe at a fentry site uses: see KprobeFtrace.policy."""
        return self.on_ftrace.policy

    @policy.setter
    def policy(self, name: str) -> None:
        self.on_ftrace.policy = name

    # --- guest structs -------------------------------------------------------------------------

    def view(self, kp: int) -> View:
        return self.m.struct("kprobe", kp)

    def get_kprobe(self, addr: int) -> int:
        """The probe (an aggregate, if several) kprobe_table has at addr, or 0."""
        return self.kprobe_table.get(addr)

    def table(self) -> list[int]:
        """Every probe in kprobe_table, bucket by bucket (aggregates, not their children)."""
        return self.kprobe_table.all()

    def children(self, ap: int) -> list[int]:
        """The probes of an aggregate, in its list's order."""
        return [n - self._list_off for n in self.list.nodes(ap + self._list_off)]

    def is_aggregate(self, p: int) -> bool:
        return self.view(p).pre_handler == self.aggr_pre_handler

    def probes_at(self, addr: int) -> list[int]:
        """The registered probes at addr: an aggregate's children, or the one probe."""
        p = self.get_kprobe(addr)
        if not p:
            return []
        return self.children(p) if self.is_aggregate(p) else [p]

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
                raise KlpemuError(f"0x{addr:x} is inside the fentry site at {m.image.symbolize(site)}", EILSEQ)
            flags |= FLAG["FTRACE"]
        mod = self.modules.module_at(addr)
        in_text = m.image.is_kernel_text(addr) or (
            mod is not None and any(lo <= addr < hi for lo, hi in mod.text_ranges())
        )
        if not in_text:
            raise KlpemuError(f"0x{addr:x} is not kernel or module text", EINVAL)
        black = self.blacklist.within(addr)
        if black is not None:
            raise KlpemuError(f"{m.image.symbolize(addr)} is on the kprobe blacklist ({black})", EINVAL)
        if mod is not None:
            base, size = mod.mem.get("MOD_INIT_TEXT", (0, 0))
            if base <= addr < base + size and self.modules.state(mod) != "MODULE_STATE_COMING":
                raise KlpemuError(f"{mod.name}'s init text is gone", ENOENT)
        return flags

    # --- arming --------------------------------------------------------------------------------

    def _prepare(self, kp: int) -> None:
        """prepare_kprobe."""
        v = self.view(kp)
        if v.flags & FLAG["FTRACE"]:
            self.on_ftrace.prepare(v)
        else:
            self.arch.prepare(kp)

    def _arm(self, p: int) -> None:
        """arm_kprobe."""
        self._arming = p
        try:
            v = self.view(p)
            if v.flags & FLAG["FTRACE"]:
                self._armed[p] = self.on_ftrace.arm(v.addr, bool(v.post_handler))
            else:
                self.arch.arm(p)
                self._armed[p] = None
        finally:
            self._arming = 0

    def _disarm(self, p: int) -> None:
        """disarm_kprobe."""
        if p not in self._armed:
            return
        ops = self._armed.pop(p)
        if ops is not None:
            self.on_ftrace.disarm(ops, self.view(p).addr)
        else:
            self.arch.disarm(p)

    def check_consistency(self) -> list[str]:
        """Where the armed set disagrees with the machine: an int3 probe must have its int3 in
        the text, an ftrace one its address in the filter of a registered ops, and each ops as
        many users as probes armed on it."""
        problems = []
        registered = {ops.addr for ops in self.ftrace.ops}
        on_ftrace: dict[FtraceOps, int] = {}
        for p, ops in self._armed.items():
            addr = self.view(p).addr
            if ops is None:
                if self.m.mem.read(addr, 1) != bytes([INT3]):
                    problems.append(f"kprobe at {addr:#x}: armed, but no int3 in the text there")
                continue
            on_ftrace[ops] = on_ftrace.get(ops, 0) + 1
            if addr not in ops.filter or ops.addr not in registered:
                problems.append(f"kprobe at {addr:#x}: armed on {ops.name}, which does not trace it")
        for ops, users in self.on_ftrace.users().items():
            if users != on_ftrace.get(ops, 0):
                problems.append(f"{ops.name}: {users} users counted, {on_ftrace.get(ops, 0)} probes armed on it")
        return problems

    def armed(self, p: int) -> bool:
        return p in self._armed

    def ops_of(self, p: int) -> FtraceOps | None:
        """The ftrace ops an armed ftrace probe (or aggregate) is on."""
        return self._armed.get(p)

    def probes_on(self, ops: FtraceOps, ip: int) -> list[int]:
        """The probes at ip that ops stands for: those whose probe in kprobe_table is armed on
        it, or is being armed (ftrace reports the meetings while the ops registers)."""
        p = self.get_kprobe(ip)
        if not p:
            return []
        if p in self._armed:
            on = self._armed[p] is ops
        else:
            on = p == self._arming
        return self.probes_at(ip) if on else []

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
                self.kprobe_table.add(kp, addr)
                if not self.all_disarmed and not v.flags & FLAG["DISABLED"]:
                    try:
                        self._arm(kp)
                    except KlpemuError:
                        self.kprobe_table.delete(kp, addr)
                        self.arch.free_slot(kp)
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
        ap = orig
        if not self.is_aggregate(orig):
            ap = self.m.heap.kzalloc(self._size)
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
        if a.flags & OFF and not p.flags & OFF:
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
        self.kprobe_table.replace(orig, ap, o.addr)
        if orig in self._armed:
            self._armed[ap] = self._armed.pop(orig)

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
            self.kprobe_table.delete(kp, addr)
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
                self.kprobe_table.delete(ap, addr)
                freed.append(ap)
                aggregate = ap
        del self.probes[kp]

        def bottom() -> None:
            for p in freed:
                self.arch.free_slot(p)
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
        return not cpu.user_mode and self.blacklist.within(cpu.reg("rip")) is not None

    def quiescent(self) -> bool:
        """No CPU but the one making a hypercall (if any) is inside kprobes' code."""
        m = self.m
        return not any(self.inside(c) for c in m.cpus if c.online and c is not m.running_cpu)

    def synchronize(self) -> None:
        """What synchronize_rcu gives unregistering: run the machine until no CPU is inside a
        probe, as text_poke waits for its int3 handlers. (The guest waits for itself: see
        KprobesGuest.)"""
        m = self.m
        if m.stopped or self.quiescent():
            return
        if m.running_cpu is not None:
            raise KlpemuError("cannot wait for the CPUs from inside a hypercall", EAGAIN)
        if not m.run_until(self.quiescent, SYNC_TIMEOUT_NS) and not m.stopped:
            raise KlpemuError("a CPU stayed inside a kprobe; its memory is kept", ETIMEDOUT)

    # --- enabling and disabling ----------------------------------------------------------------

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
        if not self.all_disarmed and a.flags & OFF:
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
        if v.flags & OFF:
            return ap
        if kp != ap:
            v.flags = v.flags | FLAG["DISABLED"]
        if kp == ap or all(self.view(c).flags & OFF for c in self.children(ap)):
            a = self.view(ap)
            if not self.all_disarmed and not a.flags & OFF:
                try:
                    self._disarm(ap)
                except KlpemuError:
                    v.flags = v.flags & ~FLAG["DISABLED"]
                    raise
            a.flags = a.flags | FLAG["DISABLED"]
        return ap

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

    def _all_probes(self, action: Callable[[int], None], done: str, verb: str, kept: str) -> None:
        """Apply action to every probe that is neither disabled nor gone; then Linux's line."""
        total = errors = 0
        last: KlpemuError | None = None
        for p in self.table():
            if not self.view(p).flags & OFF:
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

    # --- modules (kprobes_module_callback) -----------------------------------------------------

    def module_coming(self, mod: Module) -> None:
        self.blacklist.add_module(mod)

    def module_going(self, mod: Module) -> None:
        """Probes on any of the module's text die, and its blacklist entries leave."""
        self._kill_within(mod, list(mod.mem))
        self.blacklist.remove_module(mod)

    def module_live(self, mod: Module) -> None:
        """Probes on its init text die with it."""
        self._kill_within(mod, ["MOD_INIT_TEXT", "MOD_INIT_DATA"])

    def _kill_within(self, mod: Module, mem_types: list[str]) -> None:
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
            self._armed.pop(p, None)
        v.flags = v.flags | FLAG["GONE"]
        if self.is_aggregate(p):
            for c in self.children(p):
                self.view(c).flags = self.view(c).flags | FLAG["GONE"]
            v.post_handler = 0
        self.arch.free_slot(p)

    # --- the host's own probes -----------------------------------------------------------------

    def handler_addr(self, role: str, handler, py: dict[str, PyHandler]) -> int:
        """The address a struct's handler member takes: a guest function's (a name or an
        address), or, for a Python callable (kept in py), the stub that hands the call to it."""
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
            raw = kbytes(symbol) + b"\0"  # bytes, not characters, are what the guest string holds
            name = m.heap.kzalloc(len(raw))
            m.mem.write(name, raw)
            allocations.append(name)
            v.symbol_name = name
        py: dict[str, PyHandler] = {}
        try:
            v.addr = addr  # an address or offset out of range is refused here, nothing kept
            v.offset = offset
            v.pre_handler = self.handler_addr("pre", pre_handler, py)
            v.post_handler = self.handler_addr("post", post_handler, py)
            v.flags = FLAG["DISABLED"] if disabled else 0
            probe = self.register(kp, owner, py=py)
        except KlpemuError:
            for a in allocations:
                m.heap.free(a)
            raise
        probe.allocations = allocations
        return kp
