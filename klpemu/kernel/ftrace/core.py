"""ftrace on the host (kernel/trace/ftrace.c): boot conversion, ops, records, code updates.

ftrace_init in the guest asks for the conversion through HC_FTRACE_INIT, from start_kernel, as
Linux's ftrace_init runs there: every __mcount_loc site must hold `call __fentry__`; each becomes
a NOP5 and gets a record. A site that does not match is reported as ftrace_bug reports it, and
ftrace is disabled for good (later registrations fail with -ENODEV).

Registering or unregistering an ops, or changing an enabled ops' filter, recomputes every
record's wanted state (the count of enabled ops that trace the site, REGS, TRAMP, IPMODIFY) the
way __ftrace_hash_rec_update leaves it, then rewrites the sites whose bytes must change, in one
text_poke batch; the call slot of the shared trampolines follows update_ftrace_function.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from errno import EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOMEM
from typing import TYPE_CHECKING

from ...abi import FTRACE_FL, FTRACE_HASH_OFFSET, FTRACE_REF_MAX, SIZEOF_DYN_FTRACE
from ...errors import KlpemuError
from ...machine.memory import PAGE_SIZE
from ..printk import LogLevel, log_store
from ..text_poke import NOP5, TextPoke, call_insn, decode_target
from .ops import FL, FtraceOps, PyHandler
from .records import Records
from .trampoline import Trampolines

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..conflicts import Conflicts

ENTRIES_PER_PAGE = PAGE_SIZE // SIZEOF_DYN_FTRACE

REC = FTRACE_FL  # struct dyn_ftrace.flags by short name
REF_MASK = FTRACE_REF_MAX  # the low bits of dyn_ftrace.flags count the ops
STICKY = REC["TOUCHED"] | REC["MODIFIED"] | REC["DISABLED"]


def _ins(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


class Ftrace:
    def __init__(self, machine: Machine, text_poke: TextPoke, conflicts: Conflicts):
        self.m = machine
        self.text_poke = text_poke
        self.conflicts = conflicts
        self.records = Records(machine)
        # The host side of every ops the guest can name: its name, its kind, and its filter and
        # notrace hashes as sets (a cache of the guest hashes, for the record updates).
        self._by_addr: dict[int, FtraceOps] = {}
        # ftrace_ops_list as the host last wrote it (newest first) and, for each site, the
        # registered ops whose filter names it: the host is the list's only writer, and
        # check_consistency compares both with the guest. They keep a registration, a filter
        # change and a code update linear in the ops and records concerned.
        self._registered: list[FtraceOps] = []
        self._filtering: dict[int, list[FtraceOps]] = {}
        self._everywhere: list[FtraceOps] = []  # registered ops with no filter, newest first
        self._seq: dict[FtraceOps, int] = {}  # registration order, for merging the two above
        self._next_seq = 0
        self._deferred = 0  # depth of batched_update() blocks; an update waits for the outermost
        self._update_pending = False
        self._list_end = machine.var_addr("ftrace_list_end")
        self._next_off = machine.types.offsetof("ftrace_ops", "next")
        self._tramps: Trampolines | None = None
        self.sysctl_enabled = True  # /proc/sys/kernel/ftrace_enabled
        # Policy: give each ops its own trampoline for the sites it alone traces (Linux on x86).
        self.private_trampolines = True
        machine.hypercalls.register("HC_FTRACE_INIT", self._hc_init)
        machine.hypercalls.register("HC_FTRACE_CALLBACK", self._hc_callback)

    # --- state kept in the guest -----------------------------------------------------------------

    @property
    def disabled(self) -> bool:
        return bool(self.m.read_var_int("ftrace_disabled"))

    def _kill(self) -> None:
        """ftrace_kill: nothing may be traced any more."""
        self.m.mem.write(self.m.var_addr("ftrace_disabled"), (1).to_bytes(4, "little"))

    def _log(self, text: str, level: int = LogLevel.INFO) -> None:
        log_store(self.m, text, level)

    # --- boot ----------------------------------------------------------------------------------

    def _hc_init(self, *_args) -> int:
        self.init()
        return 0

    def init(self) -> None:
        m = self.m
        sites = m.image.mcount_loc
        if not sites:
            self._log("ftrace: No functions to be traced?")
            self._kill()
            return
        pages = -(-len(sites) // ENTRIES_PER_PAGE)
        self._log(f"ftrace: allocating {len(sites)} entries in {pages} pages")
        self._log(f"ftrace: allocated {pages} pages with 1 groups")
        fentry = m.image.addr("__fentry__")
        for ip in sites:
            expected = call_insn(ip, fentry)
            if not (m.mem.is_mapped(ip) and m.mem.is_mapped(ip + 4)):
                self._bug(-EFAULT, ip, None, expected)
                return
            actual = m.mem.read(ip, len(expected))
            if actual != expected:
                self._bug(-EINVAL, ip, actual, expected)
                return
            self.text_poke.write_early(ip, NOP5)  # ftrace_make_nop: no CPU runs this yet
            self.records.append(ip, 0)

    def _bug(self, failed: int, ip: int, actual: bytes | None, expected: bytes) -> None:
        """ftrace_bug(): the report Linux prints, then ftrace is killed."""
        sym = self.m.image.symbolize(ip)
        self._log("------------[ ftrace bug ]------------")
        if failed == -EINVAL:
            self._log("ftrace failed to modify ")
            self._log(f"[<{ip:016x}>] {sym}")
            self._log(f" actual:   {_ins(actual or b'')}")
            self._log(f" expected: {_ins(expected)}")
        else:
            self._log("ftrace faulted on modifying ")
            self._log(f"[<{ip:016x}>] {sym}")
        self._log("Initializing ftrace call sites")
        self._log("ftrace record flags: 0")
        self._log(" (0)   ")
        self._log(f" expected tramp: {ip:x}")
        self._log("------------[ cut here ]------------", LogLevel.WARNING)
        self._log("WARNING: CPU: 0 PID: 0 at kernel/trace/ftrace.c ftrace_bug", LogLevel.WARNING)
        self._kill()

    # --- trampolines and the redirect policy ---------------------------------------------------

    @property
    def tramps(self) -> Trampolines:
        if self._tramps is None:
            self._tramps = Trampolines(self.m, self.text_poke)
        return self._tramps

    REDIRECT_POLICIES = ("mainline", "pre-5.11")

    @property
    def redirect_policy(self) -> str:
        """Who may redirect by writing regs->ip: "mainline" (any handler, since 5.11's
        DYNAMIC_FTRACE_WITH_ARGS) or "pre-5.11" (only handlers called from ftrace_regs_caller)."""
        return "mainline" if self.caller_can_redirect else "pre-5.11"

    @redirect_policy.setter
    def redirect_policy(self, name: str) -> None:
        if name not in self.REDIRECT_POLICIES:
            raise KlpemuError(f"redirect policy must be one of {', '.join(self.REDIRECT_POLICIES)}", EINVAL)
        self.caller_can_redirect = name == "mainline"

    @property
    def caller_can_redirect(self) -> bool:
        """Mainline (5.11+, WITH_ARGS): a handler called from ftrace_caller may change regs->ip.
        False is the older rule, where only ftrace_regs_caller could redirect."""
        return bool(self.m.read_var_int("ftrace_caller_can_redirect"))

    @caller_can_redirect.setter
    def caller_can_redirect(self, value: bool) -> None:
        self.m.mem.write(self.m.var_addr("ftrace_caller_can_redirect"), int(value).to_bytes(4, "little"))

    # --- making ops --------------------------------------------------------------------------

    def _new_ops(self, name: str, func: int, flags: int, kind: str, handler: PyHandler | None) -> FtraceOps:
        m = self.m
        struct = m.ptr("ftrace_ops", m.heap.kzalloc(m.types.sizeof("ftrace_ops")))
        struct.func = func
        struct.flags = flags
        struct.callback_id = struct
        ops = FtraceOps(name, struct, kind, handler)
        self._by_addr[struct] = ops
        return ops

    def ops_native(self, name: str, func: str | int, flags: int = 0) -> FtraceOps:
        """An ops whose handler is a guest function (machine code, no host on its path)."""
        addr = self.m.image.addr(func) if isinstance(func, str) else func
        return self._new_ops(name, addr, flags, "native", None)

    def ops_python(self, name: str, handler: PyHandler, flags: int = 0) -> FtraceOps:
        """An ops whose handler is a Python callable, reached by a hypercall from the trampoline."""
        return self._new_ops(name, self.m.image.addr("ftrace_host_func"), flags, "python", handler)

    def ops_stub(self, name: str, flags: int = 0) -> FtraceOps:
        return self._new_ops(name, self.m.image.addr("ftrace_stub"), flags, "stub", None)

    def ops_at(self, name: str, addr: int, func: int, flags: int) -> FtraceOps:
        """Wrap a struct ftrace_ops embedded in a bigger guest struct (livepatch's klp_ops)."""
        struct = self.m.ptr("ftrace_ops", addr)
        struct.func = func
        struct.flags = flags
        ops = FtraceOps(name, struct, "native", None)
        self._by_addr[struct] = ops
        return ops

    @property
    def ops(self) -> list[FtraceOps]:
        """The registered ops, newest first, as on ftrace_ops_list."""
        return list(self._registered)

    def _walk_ops_list(self) -> list[int]:
        """ftrace_ops_list as guest memory has it."""
        out: list[int] = []
        node = self.m.read_var_int("ftrace_ops_list")
        while node and node != self._list_end and len(out) < 1 << 16:
            out.append(node)
            node = self.m.mem.read_u64(node + self._next_off)
        return out

    def check_consistency(self) -> list[str]:
        """Where the host's caches disagree with guest memory: the registered list against
        ftrace_ops_list, each ops' filter and notrace sets against its guest hashes, the list
        against the ENABLED flags, and the per-site index against the filters. Empty if none."""
        problems = []
        if self._walk_ops_list() != [int(ops.addr) for ops in self._registered]:
            problems.append("ftrace: ftrace_ops_list differs from the host's list of registered ops")
        index: dict[int, list[FtraceOps]] = {}
        for ops in self._registered:
            for ip in ops.filter:
                index.setdefault(ip, []).append(ops)
        if index != self._filtering:
            problems.append("ftrace: the per-site index of filtering ops differs from their filters")
        registered = {ops.addr for ops in self.ops}
        for addr, ops in self._by_addr.items():
            view = ops.struct
            for member, cached in (("filter_hash", ops.filter), ("notrace_hash", ops.notrace)):
                if self._read_hash(getattr(view, member)) != cached:
                    problems.append(f"ftrace: {ops.name}: {member} differs from the host's set")
            if bool(view.flags & FL["ENABLED"]) != (addr in registered):
                problems.append(f"ftrace: {ops.name}: ENABLED is not whether it is on ftrace_ops_list")
        return problems

    def _read_hash(self, addr: int) -> set[int]:
        if not addr:
            return set()
        count = self.m.mem.read_u64(addr + FTRACE_HASH_OFFSET["count"])
        raw = self.m.mem.read(addr + FTRACE_HASH_OFFSET["ips"], 8 * count)
        return {int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)}

    def forget(self, ops: FtraceOps) -> None:
        """Drop an unregistered ops and free what the host allocated for it."""
        if ops in self.ops:
            raise KlpemuError(f"{ops.name}: still registered", EBUSY)
        view = ops.struct
        for member in ("filter_hash", "notrace_hash"):
            if getattr(view, member):
                self.m.heap.free(getattr(view, member))
                setattr(view, member, 0)
        self._by_addr.pop(ops.addr, None)

    def known_ops(self) -> list[FtraceOps]:
        """Every ops the host has a handle on, registered or not."""
        return list(self._by_addr.values())

    def static_ops(self, name: str, symbol: str) -> FtraceOps:
        """An ops that is kernel core data (like the function tracer's): never DYNAMIC."""
        addr = self.m.var_addr(symbol)
        if addr not in self._by_addr:
            self._by_addr[addr] = FtraceOps(name, self.m.ptr("ftrace_ops", addr), "native", None, owned=False)
        return self._by_addr[addr]

    def flags(self, ops: FtraceOps) -> int:
        return ops.struct.flags

    def _set_flags(self, ops: FtraceOps, flags: int) -> None:
        ops.struct.flags = flags

    def _hc_callback(self, op: int, ip: int, parent_ip: int, fregs: int) -> int:
        ops = self._by_addr.get(op)
        if ops is None or ops.handler is None:
            return -EINVAL
        ops.handler(ip, parent_ip, self.m.struct("pt_regs", fregs))
        return 0

    # --- filters -------------------------------------------------------------------------------

    def symbol_of(self, ip: int) -> str:
        sym = self.m.image.function_at(ip)
        return sym.name if sym is not None else f"0x{ip:x}"

    def symbol_ps(self, ip: int) -> str:
        """%ps: the name, and ` [module]` for a module's function."""
        sym = self.m.image.function_at(ip)
        if sym is None:
            return f"0x{ip:x}"
        return f"{sym.name} [{sym.module}]" if sym.module else sym.name

    def resolve(self, patterns: Iterable[int | str]) -> set[int]:
        """Function addresses for ips, names or globs; each must name at least one ftrace location."""
        ips: set[int] = set()
        names = None
        for pat in patterns:
            if isinstance(pat, int):
                if self.records.find(pat) is None:
                    raise KlpemuError(f"0x{pat:x} is not an ftrace location", EINVAL)
                ips.add(pat)
                continue
            if names is None:
                names = [(self.symbol_of(ip), ip) for ip in self.records.ips()]
            hits = {ip for name, ip in names if fnmatch.fnmatchcase(name, pat)}
            if not hits:
                raise KlpemuError(f"{pat}: no traceable function matches", EINVAL)
            ips |= hits
        return ips

    def _write_hash(self, ips: set[int]) -> int:
        if not ips:
            return 0
        m = self.m
        ips_at = FTRACE_HASH_OFFSET["ips"]  # struct ftrace_hash: a count, then the sorted ips
        addr = m.heap.kzalloc(ips_at + 8 * len(ips))
        m.mem.write_u64(addr + FTRACE_HASH_OFFSET["count"], len(ips))
        m.mem.write(addr + ips_at, b"".join(ip.to_bytes(8, "little") for ip in sorted(ips)))
        return addr

    def _install_hash(self, ops: FtraceOps, member: str, ips: set[int]) -> None:
        view = ops.struct
        old = getattr(view, member)
        setattr(view, member, self._write_hash(ips))  # one 8-byte store: readers see old or new
        if old:
            self.m.heap.free(old)

    def set_filter(
        self,
        ops: FtraceOps,
        patterns: Iterable[int | str],
        *,
        reset: bool = True,
        remove: bool = False,
        notrace: bool = False,
    ) -> None:
        """ftrace_set_filter(_ip) / ftrace_set_notrace: edit a hash; an enabled ops takes effect now."""
        current = ops.notrace if notrace else ops.filter
        ips = self.resolve(patterns)
        if remove:
            missing = ips - current
            if missing:
                raise KlpemuError(f"0x{min(missing):x} is not in the {'notrace' if notrace else 'filter'} hash", ENOENT)
            new = current - ips
        else:
            new = ips if reset else current | ips
        self.replace_hash(ops, new, notrace=notrace)

    def replace_hash(self, ops: FtraceOps, new: set[int], *, notrace: bool = False) -> None:
        """ftrace_hash_move_and_update_ops: ops' filter (or notrace) hash becomes new, as given.
        Ip 0 in a filter matches no site: a filter that still means "not every function"."""
        current = ops.notrace if notrace else ops.filter
        if ops in self.ops and not notrace and self.flags(ops) & FL["IPMODIFY"]:
            self._check_ipmodify(ops, new)
        registered = ops in self._registered
        if notrace:
            ops.notrace = new
        else:
            if registered:
                self._unindex(ops)
            ops.filter = new
            if registered:
                self._index(ops)
        self._install_hash(ops, "notrace_hash" if notrace else "filter_hash", new)
        if registered:
            self._update()
            if not notrace:
                self._report_meetings(ops, (new - current) if new and current else None)

    def _check_ipmodify(self, ops: FtraceOps, new_filter: set[int]) -> None:
        """__ftrace_hash_update_ipmodify: one IPMODIFY ops per function, and never all functions."""
        if not new_filter:
            raise KlpemuError(f"{ops.name}: an IPMODIFY ops must have a filter", EINVAL)
        clashes = [
            (ip, other)
            for ip in new_filter
            if ip not in ops.notrace
            for other in self._users(ip)
            if other is not ops and self.flags(other) & FL["IPMODIFY"]
        ]
        if clashes:
            # the clash the whole list would meet first: the newest ops, at its lowest site
            order = {o: i for i, o in enumerate(self._registered)}
            ip, other = min(clashes, key=lambda c: (order[c[1]], c[0]))
            self.conflicts.ipmodify_refused(ip, other, ops)
            raise KlpemuError(f"{self.symbol_of(ip)} already has an IPMODIFY ops ({other.name})", EBUSY)

    # --- the registered list and its per-site index ----------------------------------------

    def _newest_first(self, ops_list: list[FtraceOps]) -> None:
        ops_list.sort(key=lambda o: -self._seq[o])

    def _index(self, ops: FtraceOps) -> None:
        for ip in ops.filter or ():
            users = self._filtering.setdefault(ip, [])
            users.append(ops)
            self._newest_first(users)
        if not ops.filter:
            self._everywhere.append(ops)
            self._newest_first(self._everywhere)

    def _unindex(self, ops: FtraceOps) -> None:
        for ip in ops.filter:
            users = self._filtering[ip]
            users.remove(ops)
            if not users:
                del self._filtering[ip]
        if not ops.filter:
            self._everywhere.remove(ops)

    def _users(self, ip: int) -> list[FtraceOps]:
        """The registered ops that trace ip, in list order (newest first)."""
        named = self._filtering.get(ip, [])
        users = named + self._everywhere if named and self._everywhere else named or self._everywhere
        if named and self._everywhere:
            self._newest_first(users)
        return [o for o in users if ip not in o.notrace]

    @contextmanager
    def batched_update(self) -> Iterator[None]:
        """Registrations and filter changes inside update the sites once, at the end, in one
        text_poke batch (as text_poke_bp_batch does for a whole update), however many ops
        change. Checks still run at each call, so a refusal inside changes nothing."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
            if not self._deferred and self._update_pending:
                self._update()

    # --- registering ---------------------------------------------------------------------------

    def register(self, ops: FtraceOps) -> None:
        """register_ftrace_function: all checks first, so a failure changes nothing."""
        if self.disabled:
            raise KlpemuError("ftrace is disabled", ENODEV)
        flags = self.flags(ops)
        if flags & FL["DELETED"]:
            raise KlpemuError(f"{ops.name}: ops was deleted", EINVAL)
        if flags & FL["ENABLED"] or ops in self.ops:
            raise KlpemuError(f"{ops.name}: already registered", EBUSY)
        if not self.sysctl_enabled and flags & FL["PERMANENT"]:
            raise KlpemuError(f"{ops.name}: PERMANENT ops while ftrace_enabled is 0", EBUSY)
        if flags & FL["IPMODIFY"]:
            self._check_ipmodify(ops, ops.filter)
        if ops.owned:
            flags |= FL["DYNAMIC"]
        view = ops.struct
        if self.private_trampolines and not view.trampoline:
            view.trampoline, view.trampoline_size = self.tramps.create(ops, flags)
            flags |= FL["ALLOC_TRAMP"]
        self._set_flags(ops, flags | FL["ENABLED"] | FL["INITIALIZED"])
        view.next = self.m.read_var_int("ftrace_ops_list")
        self.m.mem.write_u64(self.m.var_addr("ftrace_ops_list"), ops.addr)  # pushed at the head
        self._next_seq += 1
        self._seq[ops] = self._next_seq
        self._registered.insert(0, ops)
        self._index(ops)
        self._update()
        if self.m.timeline is not None:
            self.m.timeline.ftrace_ops("register_ftrace_function", ops.name)
        self._report_meetings(ops)

    def _report_meetings(self, ops: FtraceOps, ips: set[int] | None = None) -> None:
        """Tell the conflict record which sites ops now traces (ips: those it just started
        tracing; all it traces by default) and which ops were there before it."""
        if ips is None:
            ips = set(ops.filter) if ops.filter else set(self.records.ips())
        ips = {ip for ip in ips if ops.matches(ip) and self.records.find(ip) is not None}
        others = {}
        for ip in ips:
            present = [o for o in self._users(ip) if o is not ops]
            if present:
                others[ip] = present
        self.conflicts.ops_attached(ops, ips, others)

    def unregister(self, ops: FtraceOps) -> None:
        if self.disabled:
            raise KlpemuError("ftrace is disabled", ENODEV)
        if ops not in self._registered:
            raise KlpemuError(f"{ops.name}: not registered", EBUSY)
        at = self._registered.index(ops)
        prev = self.m.var_addr("ftrace_ops_list") if at == 0 else self._registered[at - 1].addr + self._next_off
        self.m.mem.write_u64(prev, ops.struct.next)
        self._set_flags(ops, self.flags(ops) & ~FL["ENABLED"])
        self._unindex(ops)
        del self._registered[at]
        del self._seq[ops]
        self._update()
        if self.m.timeline is not None:
            self.m.timeline.ftrace_ops("unregister_ftrace_function", ops.name)
        view = ops.struct
        if view.trampoline:  # no site calls it any more
            self.m.heap.free(view.trampoline)
            view.trampoline = 0
            view.trampoline_size = 0
            self._set_flags(ops, self.flags(ops) & ~FL["ALLOC_TRAMP"])

    def set_sysctl_enabled(self, value: bool) -> None:
        """/proc/sys/kernel/ftrace_enabled; 0 is refused while a PERMANENT ops is registered."""
        if not value and any(self.flags(o) & FL["PERMANENT"] for o in self.ops):
            raise KlpemuError("a PERMANENT ops is registered", EBUSY)
        if value != self.sysctl_enabled:
            self.sysctl_enabled = value
            self._update()

    # --- the code update -----------------------------------------------------------------------

    def _slot_function(self) -> tuple[int, int]:
        """update_ftrace_function: what the shared trampolines' slot calls, and function_trace_op."""
        img = self.m.image
        end = self.m.var_addr("ftrace_list_end")
        if not self.ops or not self.sysctl_enabled:
            return img.addr("ftrace_stub"), end
        if len(self.ops) == 1:
            ops = self.ops[0]
            flags = self.flags(ops)
            if flags & (FL["DYNAMIC"] | FL["RCU"]):
                return img.addr("ftrace_ops_list_func"), end
            return self.tramps.handler_of(ops, flags), ops.addr
        return img.addr("ftrace_ops_list_func"), end

    def wanted(self, ip: int, current: int) -> tuple[int, int | None]:
        """The record flags and trampoline a site should have now (None: a NOP)."""
        return self._wanted(ip, current, {})

    def _wanted(self, ip: int, current: int, flags_of: dict[FtraceOps, int]) -> tuple[int, int | None]:
        """wanted(), with each ops' flags read once per update (flags_of fills as it goes)."""
        users = self._users(ip)
        flags = (current & STICKY) | len(users)
        if not users:
            return flags, None
        ofl = []
        for o in users:
            if o not in flags_of:
                flags_of[o] = self.flags(o)
            ofl.append(flags_of[o])
        flags |= REC["TOUCHED"]
        if any(f & FL["SAVE_REGS"] for f in ofl):
            flags |= REC["REGS"]
        if any(f & FL["IPMODIFY"] for f in ofl):
            flags |= REC["IPMODIFY"] | REC["MODIFIED"]
        tramp = users[0].struct.trampoline if len(users) == 1 else 0
        if tramp:
            flags |= REC["TRAMP"]
        if not self.sysctl_enabled:
            return flags, None
        flags |= REC["ENABLED"]
        if tramp:
            flags |= REC["TRAMP_EN"] | (REC["REGS_EN"] if flags & REC["REGS"] else 0)
            return flags, tramp
        if flags & REC["REGS"]:
            return flags | REC["REGS_EN"], self.tramps.regs_caller
        return flags, self.tramps.caller

    def _update(self) -> None:
        """ftrace_modify_all_code: slot to the list function if it changes, sites, final slot.
        Inside batched_update() it waits for the end of the block."""
        if self._deferred:
            self._update_pending = True
            return
        self._update_pending = False
        m = self.m
        final, op = self._slot_function()
        slots = self.tramps.slots
        current = decode_target(slots[0], m.mem.read(slots[0], 5))
        list_func = m.image.addr("ftrace_ops_list_func")
        tp = self.text_poke
        if current != final:
            # The list function handles any mix of ops: use it while sites change.
            tp.batch([(s, call_insn(s, list_func)) for s in slots])
        m.mem.write_u64(m.var_addr("function_trace_op"), op)
        pokes = []
        flags_of: dict[FtraceOps, int] = {}
        for i, ip in enumerate(self.records.ips()):
            cur = self.records.flags(i)
            flags, target = self._wanted(ip, cur, flags_of)
            insn = NOP5 if target is None else call_insn(ip, target)
            if m.mem.read(ip, 5) != insn:
                pokes.append((ip, insn))
            if flags != cur:
                self.records.set_flags(i, flags)
        tp.batch(pokes)
        if final != list_func:
            tp.batch([(s, call_insn(s, final)) for s in slots])

    def trampoline_at(self, addr: int) -> tuple[FtraceOps, int] | None:
        """The ops whose private trampoline contains addr, and the offset into it."""
        for ops in self.ops:
            view = ops.struct
            if view.trampoline <= addr < view.trampoline + view.trampoline_size:
                return ops, addr - view.trampoline
        return None

    def site_target(self, ip: int) -> int | None:
        """The trampoline a site calls now, or None when it is a NOP."""
        return decode_target(ip, self.m.mem.read(ip, 5))

    # --- what enabled_functions and touched_functions show -------------------------------------

    def record_line(self, i: int) -> str:
        """t_show: `name (count) R I D O M` and, for a private trampoline, whose it is."""
        m = self.m
        ip, flags = self.records.ip(i), self.records.flags(i)
        line = (
            f"{self.symbol_ps(ip)} ({flags & REF_MASK})"
            f"{' R' if flags & REC['REGS'] else '  '}{' I' if flags & REC['IPMODIFY'] else '  '}"
            f"{' D' if flags & REC['DIRECT'] else '  '}{' O' if flags & REC['CALL_OPS'] else '  '}"
            f"{' M ' if flags & REC['MODIFIED'] else '   '}"
        )
        target = self.site_target(ip)
        if target is None:
            return line
        if flags & REC["TRAMP_EN"]:
            owner = next((o for o in self.ops if o.struct.trampoline == target), None)
            if owner is not None:
                view = owner.struct
                callee = self.tramps.handler_of(owner, self.flags(owner))
                return (
                    f"{line}\ttramp: 0x{target:x} ({m.image.symbolize(view.func)}) "
                    f"->{m.image.symbolize(callee)} [{owner.name}]"
                )
            return f"{line}\ttramp: ERROR!"
        slot = self.tramps.slots[0]
        return f"{line}\ttramp: {self.tramps.owner_name(target)} ->{m.image.symbolize(self.tramps.slot_target(slot))}"

    def enabled_functions(self) -> str:
        return "".join(self.record_line(i) + "\n" for i in range(len(self.records)) if self.records.flags(i) & REF_MASK)

    def touched_functions(self) -> str:
        return "".join(
            self.record_line(i) + "\n" for i in range(len(self.records)) if self.records.flags(i) & REC["TOUCHED"]
        )

    def available_filter_functions(self) -> str:
        return "".join(self.symbol_ps(ip) + "\n" for ip in self.records.ips())

    # --- modules -------------------------------------------------------------------------------

    def module_init(self, sites: Iterable[int]) -> list[int]:
        """ftrace_module_init: every fentry site of a module just loaded (no CPU runs it yet) must
        hold `call __fentry__`; each becomes a NOP5 (text_poke_early) and gets a record, in ip
        order among the others. A site that does not match gets ftrace_bug's report and ftrace
        is disabled; the module still loads, as in Linux. Returns the sites given records."""
        m = self.m
        if self.disabled:
            return []
        fentry = m.image.addr("__fentry__")
        done = []
        for ip in sorted(set(sites) - {0}):  # ftrace_process_locs skips NULL entries
            expected = call_insn(ip, fentry)
            if not (m.mem.is_mapped(ip) and m.mem.is_mapped(ip + 4)):
                self._bug(-EFAULT, ip, None, expected)
                break
            actual = m.mem.read(ip, len(expected))
            if actual != expected:
                self._bug(-EINVAL, ip, actual, expected)
                break
            self.text_poke.write_early(ip, NOP5)
            done.append(ip)
        try:
            self.records.insert(done)
        except OverflowError:
            raise KlpemuError(f"no room for {len(done)} more ftrace records", ENOMEM) from None  # ENOMEM
        return done

    def module_enable(self) -> None:
        """ftrace_module_enable: enabled ops that trace a coming module's functions (an ops with
        no filter traces every function) start tracing them before its init runs."""
        if self.ops and not self.disabled:
            self._update()

    def release(self, start: int, end: int) -> list[int]:
        """ftrace_release_mod / ftrace_free_mem: drop the records of [start, end) without writing
        the code there, which is being freed. A dropped ip is cleared from every ops' filter as
        clear_mod_from_hashes does (it stays as ip 0, so a filter that named only the module's
        functions still matches nothing rather than everything) and removed from notrace hashes:
        a function loaded later at the same address must not inherit it. Returns the dropped ips."""
        gone = set(self.records.remove(start, end))
        if not gone:
            return []
        for ops in self._by_addr.values():
            if ops.filter & gone:
                registered = ops in self._registered
                if registered:
                    self._unindex(ops)
                ops.filter = (ops.filter - gone) | {0}
                if registered:
                    self._index(ops)
                self._install_hash(ops, "filter_hash", ops.filter)
            if ops.notrace & gone:
                ops.notrace = ops.notrace - gone
                self._install_hash(ops, "notrace_hash", ops.notrace)
        return sorted(gone)
