"""kprobe events (kernel/trace/trace_kprobe.c): `p`/`r` definitions written to kprobe_events or
dynamic_events become trace events backed by real kprobes and kretprobes.

A definition is parsed as Linux parses it, with its errors and carets in error_log; the probe is
registered disabled (Linux's KPROBE_FLAG_DISABLED until the event is enabled), so it is in
/sys/kernel/debug/kprobes/list and meets livepatch and the other users of its function by the
same rules and in the same conflict record. Definitions with the same GROUP/EVENT make one event
with several probes, which must agree on their arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from errno import E2BIG, EBUSY, EEXIST, EILSEQ, EINVAL, ENOENT, ENOMEM
from typing import TYPE_CHECKING

from ...abi import KPROBE_FLAG
from ...errors import KlpemuError
from ..kstrtox import kstrtoull
from ..printk import LogLevel, log_store
from .event import EventCall, Field
from .probe_guest import GuestAllocations, build_trace_kprobe, write_nofault_ranges
from .trace_probe import (
    MAX_EVENT_NAME_LEN,
    MAX_TRACE_ARGS,
    TPARG_FL_FENTRY,
    TPARG_FL_KERNEL,
    TPARG_FL_RETURN,
    ParseContext,
    ProbeArg,
    ProbeLog,
    ProbeParseError,
    check_meta_args,
    parse_event_name,
    parse_probe_arg,
    print_fmt,
    split_symbol_offset,
)

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..kprobes import Kprobes
    from ..module import Module
    from . import EventRegistry
    from .error_log import ErrorLog

KPROBE_EVENT_SYSTEM = "kprobes"
KRETPROBE_MAXACTIVE_MAX = 4096
UINT_MAX = 2**32 - 1


class Cancelled(KlpemuError):
    """Not a kprobe definition (-ECANCELED in Linux): another dynamic event type may take it."""


@dataclass
class TraceKprobe:
    """One probe of a kprobe event: where it is, what it fetches, and its guest kprobe."""

    group: str
    event: str
    symbol: str | None  # as written, `MOD:SYM` included; None for an address
    offset: int
    addr: int
    is_return: bool
    maxactive: int
    args: list[ProbeArg]
    size: int  # of the record's argument area
    entry_args: list[int] = field(default_factory=list)  # a return probe's $argN, by index
    struct: int = 0  # the guest struct trace_kprobe
    kprobe: int = 0  # the struct kprobe that kprobes knows it by
    registered: bool = False  # a probe on a module not loaded is not
    mem: GuestAllocations | None = None  # what the guest structs took from the heap

    def definition(self) -> str:
        """One line of kprobe_events (trace_kprobe_show)."""
        head = "r" if self.is_return else "p"
        if self.is_return and self.maxactive:
            head += str(self.maxactive)
        if self.symbol is None:
            place = f"0x{self.addr:016x}"
        elif self.offset:
            place = f"{self.symbol}+{self.offset}"
        else:
            place = self.symbol
        return f"{head}:{self.group}/{self.event} {place}" + "".join(f" {a.name}={a.comm}" for a in self.args)

    @property
    def owner(self) -> str:
        """Who the conflict record and kprobes say placed the probe."""
        return f"kprobe event {self.group}/{self.event}"

    def same_args(self, other: TraceKprobe) -> int:
        """trace_probe_compare_arg_type: 0, or the 1-based index of the first argument whose
        name, type or count differs."""
        if len(self.args) != len(other.args):
            return min(len(self.args), len(other.args)) + 1
        for i, (a, b) in enumerate(zip(self.args, other.args, strict=True)):
            if a.type != b.type or a.count != b.count or a.name != b.name:
                return i + 1
        return 0

    def same_probe(self, other: TraceKprobe) -> bool:
        """trace_kprobe_has_same_kprobe: the same place and the same argument texts."""
        return (self.symbol, self.offset, self.addr if self.symbol is None else 0) == (
            other.symbol,
            other.offset,
            other.addr if other.symbol is None else 0,
        ) and [a.comm for a in self.args] == [a.comm for a in other.args]


@dataclass
class KprobeEvent:
    """The trace event of one GROUP/EVENT: its probes (one, or several appended), its format."""

    call: EventCall
    is_return: bool
    probes: list[TraceKprobe] = field(default_factory=list)

    @property
    def group(self) -> str:
        return self.call.system

    @property
    def name(self) -> str:
        return self.call.name

    @property
    def enabled(self) -> bool:
        return self.call.enabled

    @property
    def args(self) -> list[ProbeArg]:
        return self.probes[0].args

    @property
    def head_size(self) -> int:
        """The probe's own fields after the common ones: __probe_ip, or __probe_func and
        __probe_ret_ip."""
        return 16 if self.is_return else 8


def event_fields(args: list[ProbeArg], is_return: bool) -> list[Field]:
    """kprobe_event_define_fields / kretprobe_event_define_fields."""
    if is_return:
        head = [
            Field("unsigned long", "__probe_func", 8, 8, False),
            Field("unsigned long", "__probe_ret_ip", 16, 8, False),
        ]
        base = 24
    else:
        head = [Field("unsigned long", "__probe_ip", 8, 8, False)]
        base = 16
    return head + [Field(a.field_type, a.name, base + a.offset, a.field_size, a.type.signed) for a in args]


class TraceKprobes:
    """The kprobe events of the machine, in creation order."""

    def __init__(self, machine: Machine, kprobes: Kprobes, error_log: ErrorLog, registry: EventRegistry):
        self.m = machine
        self.kprobes = kprobes
        self.error_log = error_log
        self.events: dict[tuple[str, str], KprobeEvent] = {}
        self.registry = registry
        self._ranges_written = False

    # --- create --------------------------------------------------------------------------------

    def create(self, argv: list[str]) -> TraceKprobe:
        """__trace_kprobe_create."""
        head = argv[0]
        if head[0] not in "pr":
            raise Cancelled("not a kprobe", EINVAL)
        if len(argv) < 2:
            raise Cancelled("a kprobe definition needs a place", EINVAL)
        is_return = head[0] == "r"
        log = ProbeLog(self.error_log, "trace_kprobe", argv)
        colon = head.find(":", 1)
        event_text = head[colon + 1 :] if colon >= 0 else None
        maxactive = 0
        if head[1:2].isdigit():
            if not is_return:
                raise log.err(1, "BAD_MAXACT_TYPE")
            digits = head[1:colon] if colon >= 0 else head[1:]
            if len(digits) > MAX_EVENT_NAME_LEN - 1:
                raise log.err(1, "BAD_MAXACT")
            value = kstrtoull(digits, 0, 32)
            if not value:
                raise log.err(1, "BAD_MAXACT")
            if value > KRETPROBE_MAXACTIVE_MAX:
                raise log.err(1, "MAXACT_TOO_BIG")
            maxactive = value

        flags = TPARG_FL_KERNEL
        symbol: str | None = None
        offset = 0
        addr = kstrtoull(argv[1], 0)
        if addr is None:
            log.index = 1
            if "/" in argv[1] and ":" in argv[1]:
                raise Cancelled("an uprobe definition", EINVAL)
            symbol = argv[1]
            pct = symbol.find("%")
            if pct >= 0:
                if symbol[pct:] != "%return":
                    raise log.err(pct, "BAD_ADDR_SUFFIX")
                symbol = symbol[:pct]
                is_return = True
            split = split_symbol_offset(symbol)
            if split is None or split[1] < 0 or split[1] > UINT_MAX:
                raise log.err(0, "BAD_PROBE_ADDR")
            symbol, offset = split
            found = self._count_symbol(symbol)
            if found != 1:
                raise log.err(0, "NON_UNIQ_SYMBOL" if found > 1 else "BAD_PROBE_ADDR")
            if is_return:
                flags |= TPARG_FL_RETURN
            entry = offset == 0  # kprobe_on_func_entry: this kernel has no ENDBR to step over
            if entry and not is_return:
                flags |= TPARG_FL_FENTRY
            if not entry and is_return:
                raise log.err(0, "BAD_RETPROBE")
        elif is_return:
            flags |= TPARG_FL_RETURN

        log.index = 0
        group, event = KPROBE_EVENT_SYSTEM, None
        if event_text is not None:
            g, event = parse_event_name(event_text, colon + 1, log)
            group = g or group
        if event is None:
            if symbol is not None:
                raw = f"{'r' if is_return else 'p'}_{symbol}_{offset}"
            else:
                raw = f"{'r' if is_return else 'p'}_0x{addr:016x}"
            event = "".join(c if c.isascii() and c.isalnum() else "_" for c in raw[: MAX_EVENT_NAME_LEN - 1])
            if event[0].isdigit():
                event = "_" + event

        rest = argv[2:]
        ctx = ParseContext(flags, log, funcname=symbol)
        check_meta_args(rest, ctx)
        if len(rest) > MAX_TRACE_ARGS:
            raise ProbeParseError("too many arguments", E2BIG)
        args: list[ProbeArg] = []
        size = 0
        for i, text in enumerate(rest):
            log.index = i + 2
            ctx.offset = 0
            arg = parse_probe_arg(i, text, args, ctx)
            arg.offset = size
            size += arg.field_size
            args.append(arg)
        tk = TraceKprobe(group, event, symbol, offset, addr or 0, is_return, maxactive, args, size, ctx.entry_args)
        try:
            self._register(tk, log)
        except ProbeParseError:
            raise
        except KlpemuError as e:
            log.index = 1
            if e.errno == EILSEQ:
                raise log.err(0, "BAD_INSN_BNDRY", EILSEQ) from None
            if e.errno == ENOENT:
                raise log.err(0, "BAD_PROBE_ADDR", ENOENT) from None
            if e.errno not in (ENOMEM, EEXIST):
                raise log.err(0, "FAIL_REG_PROBE", e.errno or EINVAL) from None
            raise
        return tk

    def _count_symbol(self, symbol: str) -> int:
        """number_of_same_symbols, in vmlinux or in the named module."""
        img = self.m.image
        if ":" in symbol:
            mod_name, sym = symbol.split(":", 1)
            mod = self.kprobes.modules.find(mod_name)
            if mod is None or not mod.kallsyms:
                return 1  # a module not loaded yet: the probe waits for it (Linux defers too)
            return len(mod.kallsyms.by_name.get(sym, []))
        n = len(img.by_name.get(symbol, ()))
        if n == 0:
            n = sum(len(k.by_name.get(symbol, ())) for k in img.module_kallsyms)
        return n

    # --- register / unregister -----------------------------------------------------------------

    def _register(self, tk: TraceKprobe, log: ProbeLog) -> None:
        """register_trace_kprobe: append to an existing event of that name, or make the event."""
        old = self.events.get((tk.group, tk.event))
        if old is not None:
            if old.is_return != tk.is_return:
                log.index = 0
                raise log.err(0, "DIFF_PROBE_TYPE", EEXIST)
            diff = tk.same_args(old.probes[0])
            if diff:
                log.index = diff + 1
                raise log.err(0, "DIFF_ARG_TYPE", EEXIST)
            if any(tk.same_probe(p) for p in old.probes):
                log.index = 0
                raise log.err(0, "SAME_PROBE", EEXIST)
            self._register_probe(tk, old.call)
            old.probes.append(tk)
            return
        if self.registry.find(tk.group, tk.event) is not None:
            log.index = 0
            raise log.err(0, "EVENT_EXIST", EEXIST)
        fields = event_fields(tk.args, tk.is_return)
        call = self.registry.add(tk.group, tk.event, fields, print_fmt(tk.args, tk.is_return))
        try:
            self._register_probe(tk, call)
        except KlpemuError:
            self.registry.remove(call)
            raise
        event = KprobeEvent(call, tk.is_return, [tk])
        self.events[(tk.group, tk.event)] = event
        self.registry.output_registered(call, event)

    def _register_probe(self, tk: TraceKprobe, call: EventCall) -> None:
        """__register_trace_kprobe: the guest struct trace_kprobe with its fetch programs, and
        its kprobe (or kretprobe) registered, disabled unless the event is on. A probe on a
        module that is not loaded waits for it (module_coming)."""
        m = self.m
        if not self._ranges_written:
            write_nofault_ranges(m)
            self._ranges_written = True
        mem = GuestAllocations(m)
        try:
            tk.struct = build_trace_kprobe(m, mem, call.id, tk.args, tk.size, self.kprobes.lookup_name, tk.entry_args)
            tk.kprobe = tk.struct + m.types.offsetof("trace_kprobe", "rp") + m.types.offsetof("kretprobe", "kp")
            if tk.symbol is not None:
                m.struct("trace_kprobe", tk.struct).rp.kp.symbol_name = mem.string(tk.symbol)
            self._register_kprobe(tk, call)
        except KlpemuError:
            mem.free()
            raise
        tk.mem = mem
        self.registry.files.attach(call, tk.struct + m.types.offsetof("trace_kprobe", "file"))

    def _register_kprobe(self, tk: TraceKprobe, call: EventCall) -> None:
        m = self.m
        v = m.struct("trace_kprobe", tk.struct)
        kp = v.rp.kp
        kp.addr = 0 if tk.symbol is not None else tk.addr
        kp.offset = tk.offset if tk.symbol is not None else 0
        kp.flags = 0 if call.enabled or call.soft_refs else KPROBE_FLAG["DISABLED"]
        kp.nmissed = 0
        try:
            if tk.is_return:
                v.rp.handler = m.image.addr("kretprobe_dispatcher")
                v.rp.maxactive = tk.maxactive
                if tk.entry_args:
                    v.rp.entry_handler = m.image.addr("kretprobe_entry_dispatcher")
                    v.rp.data_size = 8 * len(tk.entry_args)
                self.kprobes.kretprobes.register(tk.struct + m.types.offsetof("trace_kprobe", "rp"), tk.owner)
            else:
                kp.pre_handler = m.image.addr("kprobe_dispatcher")
                self.kprobes.register(tk.kprobe, tk.owner)
        except KlpemuError as e:
            module = tk.symbol.split(":", 1)[0] if tk.symbol is not None and ":" in tk.symbol else None
            if e.errno != ENOENT or module is None or self.kprobes.modules.find(module) is not None:
                raise
            log_store(
                m,
                "trace_kprobe: This probe might be able to register after target module is loaded. Continue.",
                LogLevel.WARNING,
            )
            tk.registered = False
            return
        tk.registered = True

    def _unregister_kprobe(self, tk: TraceKprobe) -> None:
        if not tk.registered:
            return
        if tk.is_return:
            self.kprobes.kretprobes.unregister(tk.struct + self.m.types.offsetof("trace_kprobe", "rp"))
        else:
            self.kprobes.unregister(tk.kprobe)
        tk.registered = False

    def _unregister_probe(self, tk: TraceKprobe, call: EventCall) -> None:
        call.files.remove(tk.struct + self.m.types.offsetof("trace_kprobe", "file"))
        self._unregister_kprobe(tk)
        if tk.mem is not None:
            tk.mem.free()
            tk.mem = None

    def module_coming(self, mod: Module) -> None:
        """trace_kprobe_module_callback: probes on `MOD:SYM` of this module are registered
        again (they waited for it, or died with its last load)."""
        for event in self.events.values():
            for tk in event.probes:
                if tk.symbol is not None and tk.symbol.startswith(f"{mod.name}:"):
                    self._unregister_kprobe(tk)
                    try:
                        self._register_kprobe(tk, event.call)
                    except KlpemuError as e:
                        log_store(
                            self.m,
                            f"trace_kprobe: Failed to re-register probe {event.name} on {mod.name}: {-e.errno}",
                            LogLevel.WARNING,
                        )

    def module_going(self, mod: Module) -> None:
        """Nothing: kprobes marks the module's probes gone, and the events stay."""

    @staticmethod
    def probe_matches(tk: TraceKprobe, argv: list[str]) -> bool:
        """trace_kprobe_match_command_head: extra words of a deletion name the place, then the
        arguments as listed (`NAME=FETCHARG`)."""
        if not argv:
            return True
        if tk.symbol is None:
            place = f"0x{tk.addr:x}"
        else:
            place = f"{tk.symbol}+{tk.offset}" if tk.offset else tk.symbol
        if argv[0] != place:
            return False
        return [f"{a.name}={a.comm}" for a in tk.args][: len(argv) - 1] == argv[1:]

    def remove_probes(self, event: KprobeEvent, argv: list[str]) -> None:
        """A deletion: the probes of event matching argv (all without argv); the event goes
        with its last probe."""
        doomed = [tk for tk in event.probes if self.probe_matches(tk, argv)]
        if len(doomed) == len(event.probes):
            self.remove(event)
            return
        if event.enabled or event.call.soft_refs:
            raise KlpemuError(f"{event.group}/{event.name} is in use", EBUSY)
        for tk in doomed:
            self._unregister_probe(tk, event.call)
            event.probes.remove(tk)

    def remove(self, event: KprobeEvent) -> None:
        """An event goes with all its probes, if it is not in use (enabled, or held in soft mode
        by a trigger)."""
        if event.enabled or event.call.soft_refs:
            raise KlpemuError(f"{event.group}/{event.name} is in use", EBUSY)
        self.registry.files.release(event.call)
        for tk in event.probes:
            self._unregister_probe(tk, event.call)
        del self.events[(event.group, event.name)]
        self.registry.remove(event.call)

    def remove_all(self) -> None:
        """Opening kprobe_events with O_TRUNC: every kprobe event, or none if one is in use."""
        busy = [e for e in self.events.values() if e.enabled or e.call.soft_refs]
        if busy:
            raise KlpemuError(f"{busy[0].group}/{busy[0].name} is in use", EBUSY)
        for e in list(self.events.values()):
            self.remove(e)

    def arm(self, event: KprobeEvent, enable: bool) -> None:
        """enable_trace_kprobe / disable_trace_kprobe: every probe of the event, or none."""
        done: list[TraceKprobe] = []
        try:
            for tk in event.probes:
                gone = self.m.struct("kprobe", tk.kprobe).flags & KPROBE_FLAG["GONE"]
                if tk.registered and not gone:
                    self.kprobes.set_enabled(tk.kprobe, enable)
                    done.append(tk)
        except KlpemuError:
            for tk in done:
                self.kprobes.set_enabled(tk.kprobe, not enable)
            raise

    # --- views ---------------------------------------------------------------------------------

    def definitions(self) -> str:
        return "".join(tk.definition() + "\n" for e in self.events.values() for tk in e.probes)

    def nhit(self, tk: TraceKprobe) -> int:
        return int(self.m.struct("trace_kprobe", tk.struct).nhit)

    def profile(self) -> str:
        """kprobe_profile: name, hits, misses (a kretprobe's include running out of instances)."""
        out = []
        for e in self.events.values():
            for tk in e.probes:
                v = self.m.struct("trace_kprobe", tk.struct)
                missed = int(v.rp.kp.nmissed)
                if tk.is_return:
                    missed += int(v.rp.nmissed)
                out.append(f"  {e.name:<44} {self.nhit(tk):15d} {missed:15d}\n")
        return "".join(out)
