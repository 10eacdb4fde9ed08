"""The module fuzzer: damaged copies of the shipped .ko files, each loaded into a machine restored
from one booted snapshot, and what happened classified.

A loader must refuse a bad module with an errno and leave the kernel as it found it; a module it
accepts must unload again (or have its unload refused) without leaving anything behind; a guest
crash must be an oops report, and no Python exception other than the project's own error may
escape. Every input is made from (seed, index) alone, so any finding replays on its own:

    python -m klpemu.fuzz --count 10000 --seed 1 --json results.json
    python -m klpemu.fuzz --replay 1:4711     # one input, with its traceback if it has one
"""

from __future__ import annotations

import argparse
import dataclasses
import errno as errno_mod
import functools
import json
import random
import struct
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .abi import FTRACE_FL_MODIFIED, FTRACE_FL_TOUCHED
from .errors import KlpemuError
from .kernel.module import shipped_modules_dir
from .snapshot import Snapshot
from .system import System

# Outcomes, from harmless to bug.
REFUSED = "refused"  # a clean refusal (KlpemuError with an errno), state unchanged
ACCEPTED = "accepted"  # loaded, then unloaded with nothing left behind
UNLOAD_REFUSED = "unload-refused"  # loaded; the unload was refused with an errno (e.g. still in use)
OOPS = "oops"  # the guest crashed and the machine reported an oops
HANG = "hang"  # the guest did not answer within the budget
KNOWN = "known"  # one of the bugs in KNOWN_BUGS, being fixed elsewhere
TRACEBACK = "traceback"  # a Python exception escaped: a bug
LEFT_BEHIND = "left-behind"  # a refusal left state behind: a bug
# An accepted module's unload left state behind. Not the loader's fault by itself: a damaged exit
# function (a relocation sent elsewhere) can skip its unregister_kprobe(), as it would on Linux.
UNLOAD_LEAK = "unload-leak"
OUTCOMES = (REFUSED, ACCEPTED, UNLOAD_REFUSED, OOPS, HANG, KNOWN, UNLOAD_LEAK, TRACEBACK, LEFT_BEHIND)
BUGS = (TRACEBACK, LEFT_BEHIND)

# Bugs known and being fixed elsewhere: an outcome one of them explains is counted as KNOWN, not
# as a new bug. Each entry: key -> (what it is, a matcher over (exception, module name, state
# difference)). Remove an entry once its fix is in; the CI test then proves the fix. The bugs
# the first campaigns found (names that are not UTF-8 or not a module's, a livepatch init that
# fails after klp_enable_patch, out-of-range field writes, over-long file names) are fixed.
KnownMatcher = Callable[[BaseException | None, str | None, list[str]], bool]
KNOWN_BUGS: dict[str, tuple[str, KnownMatcher]] = {}


# A record once patched stays marked so (touched_functions lists it): not state left behind.
STICKY_FLAGS = FTRACE_FL_MODIFIED | FTRACE_FL_TOUCHED
# The guest's answer to init_module / delete_module: any sane init returns within microseconds of
# emulated time, and a spinning guest costs wall time for every emulated millisecond it is given.
HANG_BUDGET_NS = 1_000_000_000  # test_workqueue's init takes 252 ms: it waits for its works
# Some damaged code spins slowly (a fault taken on every instruction): a wall-clock bound too.
WALL_BUDGET_S = 5.0
RUN_AFTER_LOAD_NS = 20_000_000  # let a loaded module's work run before it is unloaded
TRANSITION_BUDGET_NS = 3_000_000_000  # a disabled patch's transition, forced after this


def _known(exc: BaseException | None, name: str | None, diff: list[str]) -> str | None:
    """Which KNOWN_BUGS entry explains this outcome, if any."""
    return next((key for key, (_, matches) in KNOWN_BUGS.items() if matches(exc, name, diff)), None)


# --- the machine's observable state --------------------------------------------------------------


def kernel_state(system: System) -> dict[str, object]:
    """What a refused load must leave as it found it: modules, livepatches, ftrace records and
    fentry sites, kprobes, the klp_ops func_stacks, every guest heap allocation, the slab's
    objects and the sysfs trees. The taint flags, the log and the sticky record flags are left
    out: Linux keeps them."""
    m = system.machine
    k = m.kernel
    recs = k.ftrace.records
    ips = recs.ips()
    vfs = system.vfs
    parts: dict[str, Callable[[], object]] = {
        "modules": lambda: [(mod.name, k.modules.state(mod)) for mod in k.modules.list()],
        "livepatch patches": lambda: [k.livepatch.name(p) for p in k.livepatch.patches],
        "transition": lambda: int(k.livepatch.transition.patch or 0),
        "ftrace records": lambda: [(ip, recs.flags(i) & ~STICKY_FLAGS) for i, ip in enumerate(ips)],
        "fentry sites": lambda: b"".join(m.mem.read(ip, 5) for ip in ips),
        "ftrace ops": lambda: [ops.name for ops in k.ftrace.ops],
        "enabled_functions": lambda: k.ftrace.enabled_functions(),
        "kprobes": lambda: list(k.kprobes.table()),
        "func stacks": lambda: sorted((old, [int(f) for f in k.klp_patch.func_stack(old)]) for old in k.klp_patch.ops),
        "heap": lambda: sorted(m.heap._sizes.items()),
        "slab": lambda: sorted(k.slab.objects.items()),
        "sysfs": lambda: _tree(vfs, "/sys/kernel/livepatch") + _tree(vfs, "/sys/module"),
    }
    out: dict[str, object] = {}
    for key, read in parts.items():
        try:
            out[key] = read()
        except KlpemuError as e:  # a list left on freed memory: that is a difference too
            out[key] = [f"<unreadable: {e}>"]
    return out


def _tree(vfs, path: str) -> list[str]:
    if not vfs.exists(path):
        return []
    out = []
    todo = [(path, vfs.lookup(path))]
    while todo:
        where, node = todo.pop()
        out.append(where)
        if hasattr(node, "children"):
            todo += [(f"{where}/{n}", c) for n, c in node.children().items()]
    return sorted(out)


def state_diff(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """The keys whose values differ, each with a short description of how."""
    out = []
    for key, old in before.items():
        new = after[key]
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list):
            gone = [x for x in old if x not in new][:3]
            added = [x for x in new if x not in old][:3]
            out.append(f"{key}: -{_short(gone)} +{_short(added)}")
        else:
            out.append(f"{key}: changed")
    return out


def _short(items: list[object]) -> str:
    return repr([f"0x{x:x}" if isinstance(x, int) else x for x in items])[:200]


# --- the shipped modules, parsed once ------------------------------------------------------------

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
RELA = struct.Struct("<QQq")
EHDR_FIELDS = [  # (name, offset, size) of each Elf64_Ehdr field after e_ident
    ("e_ident[EI_CLASS]", 4, 1),
    ("e_ident[EI_DATA]", 5, 1),
    ("e_ident[EI_VERSION]", 6, 1),
    ("e_type", 16, 2),
    ("e_machine", 18, 2),
    ("e_version", 20, 4),
    ("e_entry", 24, 8),
    ("e_phoff", 32, 8),
    ("e_shoff", 40, 8),
    ("e_flags", 48, 4),
    ("e_ehsize", 52, 2),
    ("e_phentsize", 54, 2),
    ("e_phnum", 56, 2),
    ("e_shentsize", 58, 2),
    ("e_shnum", 60, 2),
    ("e_shstrndx", 62, 2),
]
SHDR_FIELDS = [
    ("sh_name", 0, 4),
    ("sh_type", 4, 4),
    ("sh_flags", 8, 8),
    ("sh_addr", 16, 8),
    ("sh_offset", 24, 8),
    ("sh_size", 32, 8),
    ("sh_link", 40, 4),
    ("sh_info", 44, 4),
    ("sh_addralign", 48, 8),
    ("sh_entsize", 56, 8),
]
SYM_FIELDS = [("st_name", 0, 4), ("st_info", 4, 1), ("st_other", 5, 1), ("st_shndx", 6, 2), ("st_value", 8, 8)]
SYM_FIELDS.append(("st_size", 16, 8))
RELA_FIELDS = [("r_offset", 0, 8), ("r_info.sym", 12, 4), ("r_info.type", 8, 4), ("r_addend", 16, 8)]
SHT_SYMTAB, SHT_RELA = 2, 4


@dataclasses.dataclass
class ElfSection:
    index: int
    name: str
    hdr_off: int  # where its header is in the file
    offset: int
    size: int
    link: int
    entsize: int


@dataclasses.dataclass
class Target:
    """One shipped module and where its parts are, for the structured mutations."""

    filename: str
    data: bytes
    sections: list[ElfSection]

    @property
    def symtab(self) -> ElfSection | None:
        return next((s for s in self.sections if s.name == ".symtab"), None)

    def relas(self, klp: bool) -> list[ElfSection]:
        return [s for s in self.sections if s.name.startswith(".klp.rela.") == klp and _is_rela(self, s)]

    def strings(self, prefix: bytes, section: str) -> list[tuple[int, int]]:
        """(file offset, length) of each NUL-terminated string in a section starting with prefix."""
        sec = next((s for s in self.sections if s.name == section), None)
        if sec is None:
            return []
        out, pos, blob = [], 0, self.data[sec.offset : sec.offset + sec.size]
        for raw in blob.split(b"\0"):
            if raw.startswith(prefix):
                out.append((sec.offset + pos, len(raw)))
            pos += len(raw) + 1
        return out


def _is_rela(t: Target, s: ElfSection) -> bool:
    return struct.unpack_from("<I", t.data, s.hdr_off + 4)[0] == SHT_RELA and s.entsize == RELA.size


def parse_target(path: Path) -> Target:
    data = path.read_bytes()
    e = EHDR.unpack_from(data)
    shoff, shnum, shstrndx = e[6], e[12], e[13]
    raw = [SHDR.unpack_from(data, shoff + i * SHDR.size) for i in range(shnum)]
    strtab_off = raw[shstrndx][4]
    sections = []
    for i, h in enumerate(raw):
        name_end = data.index(b"\0", strtab_off + h[0])
        name = data[strtab_off + h[0] : name_end].decode()
        sections.append(ElfSection(i, name, shoff + i * SHDR.size, h[4], h[5], h[6], h[9]))
    return Target(path.name, data, sections)


# The scale configuration's module: a thousand functions that load and unload like any module's
# and only slow every input down (its loader paths are the ones the others take).
NOT_TARGETS = {"scale_funcs.ko"}


def shipped_targets() -> list[Target]:
    return [parse_target(p) for p in sorted(shipped_modules_dir().glob("*.ko")) if p.name not in NOT_TARGETS]


# --- mutations -------------------------------------------------------------------------------------


def _interesting(rng: random.Random, size: int, near: int) -> int:
    """A value for a field of `size` bytes: the edges of its range, small numbers, the old value
    nudged, or anything."""
    top = (1 << (8 * size)) - 1
    choice = rng.randrange(8)
    if choice == 0:
        return 0
    if choice == 1:
        return top
    if choice == 2:
        return top >> 1
    if choice == 3:
        return (top >> 1) + 1
    if choice == 4:
        return rng.randrange(0, 64)
    if choice == 5:
        return (near + rng.choice([-1, 1, -8, 8, 0x100, -0x100, 1 << 16])) & top
    if choice == 6:
        return near ^ (1 << rng.randrange(8 * size))
    return rng.getrandbits(8 * size)


def _set_field(data: bytearray, off: int, size: int, rng: random.Random) -> int:
    old = int.from_bytes(data[off : off + size], "little")
    new = _interesting(rng, size, old)
    data[off : off + size] = new.to_bytes(size, "little")
    return new


def mut_bitflip(t: Target, data: bytearray, rng: random.Random) -> str:
    bits = [rng.randrange(len(data) * 8) for _ in range(rng.randint(1, 8))]
    for b in bits:
        data[b // 8] ^= 1 << (b % 8)
    return f"bit flips at {','.join(hex(b // 8) for b in bits)}"


def mut_byterun(t: Target, data: bytearray, rng: random.Random) -> str:
    off = rng.randrange(len(data))
    n = min(rng.choice([1, 2, 4, 8, 16, 64, 256]), len(data) - off)
    fill = rng.choice([b"\0", b"\xff", b"\x41", None])
    data[off : off + n] = fill * n if fill is not None else rng.randbytes(n)
    return f"{n} bytes at 0x{off:x} := {fill.hex() if fill else 'random'}"


def mut_truncate(t: Target, data: bytearray, rng: random.Random) -> str:
    n = rng.choice([rng.randrange(len(data)), rng.randrange(64), len(data) - rng.randrange(1, 256)])
    n = max(0, n)
    del data[n:]
    return f"truncated to {n} bytes"


def mut_ehdr(t: Target, data: bytearray, rng: random.Random) -> str:
    name, off, size = rng.choice(EHDR_FIELDS)
    return f"{name} := 0x{_set_field(data, off, size, rng):x}"


def mut_shdr(t: Target, data: bytearray, rng: random.Random) -> str:
    sec = rng.choice(t.sections[1:])
    name, off, size = rng.choice(SHDR_FIELDS)
    return f"section {sec.name or sec.index} {name} := 0x{_set_field(data, sec.hdr_off + off, size, rng):x}"


def mut_symbol(t: Target, data: bytearray, rng: random.Random) -> str:
    sec = t.symtab
    if sec is None or sec.size < 2 * SYM.size:
        return mut_shdr(t, data, rng)
    i = rng.randrange(1, sec.size // SYM.size)
    name, off, size = rng.choice(SYM_FIELDS)
    return f"symbol {i} {name} := 0x{_set_field(data, sec.offset + i * SYM.size + off, size, rng):x}"


def _mut_rela(t: Target, data: bytearray, rng: random.Random, klp: bool) -> str | None:
    secs = [s for s in t.relas(klp) if s.size >= RELA.size]
    if not secs:
        return None
    sec = rng.choice(secs)
    i = rng.randrange(sec.size // RELA.size)
    name, off, size = rng.choice(RELA_FIELDS)
    value = _set_field(data, sec.offset + i * RELA.size + off, size, rng)
    return f"{sec.name}[{i}] {name} := 0x{value:x}"


def mut_rela(t: Target, data: bytearray, rng: random.Random) -> str:
    return _mut_rela(t, data, rng, klp=False) or mut_symbol(t, data, rng)


MODINFO_VALUES = [
    b"",
    b"a/b",
    b"..",
    b"x" * 80,
    b"\xff\xfe",
    b"Proprietary",
    b"GPL",
    b"Y",
    b"N",
    b"hello",
    b"livepatch_sample",
    b"nonexistent,other",
    b"%s%n",
]


def mut_modinfo(t: Target, data: bytearray, rng: random.Random) -> str:
    tags = t.strings(b"", ".modinfo")
    tags = [(off, n) for off, n in tags if n]
    if not tags:
        return mut_byterun(t, data, rng)
    off, n = rng.choice(tags)
    tag = bytes(data[off : off + n])
    key, eq, _ = tag.partition(b"=")
    choice = rng.randrange(4)
    if choice == 0 and eq:  # a new value, as long as the space allows (NULs pad it)
        value = rng.choice(MODINFO_VALUES)
        new = (key + b"=" + value)[:n].ljust(n, b"\0")
        what = f"{key.decode(errors='replace')}={value[: n - len(key) - 1]!r}"
    elif choice == 1:  # another key
        new_key = rng.choice([b"name", b"license", b"livepatch", b"depends", b"vermagic", b"intree", b"parm"])
        new = (new_key + b"=" + rng.choice(MODINFO_VALUES))[:n].ljust(n, b"\0")
        what = f"tag {tag[:30]!r} -> {new[:30]!r}"
    elif choice == 2:  # the terminating NUL gone
        new = tag + (b"=" if n < len(data) - off else b"")
        new = new[: n + 1]
        what = f"tag {tag[:30]!r} unterminated"
    else:  # the '=' gone
        new = tag.replace(b"=", b"\0", 1) if eq else tag + b"="
        new = new[: n + 1] if len(new) > n else new
        what = f"tag {tag[:30]!r} without '='"
    data[off : off + len(new)] = new
    return f".modinfo {what}"


def mut_klp(t: Target, data: bytearray, rng: random.Random) -> str:
    """A livepatch module's own parts: its klp relocations and the .klp.sym names they use."""
    names = t.strings(b".klp.sym.", ".strtab")
    if names and rng.random() < 0.5:
        off, n = rng.choice(names)
        old = bytes(data[off : off + n])
        choice = rng.randrange(5)
        if choice == 0:  # the position after the comma
            head, _, _ = old.rpartition(b",")
            new = head + b"," + rng.choice([b"0", b"9", b"x", b"-1", b""])
        elif choice == 1:  # no comma
            new = old.replace(b",", b".")
        elif choice == 2:  # another object name
            rest = old[len(b".klp.sym.") :]
            new = b".klp.sym." + rng.choice([b"vmlinux", b"nosuchmod", b"", b"a.b"]) + b"." + rest.partition(b".")[2]
        elif choice == 3:  # another symbol
            head, _, pos = old.rpartition(b",")
            obj = head[len(b".klp.sym.") :].partition(b".")[0]
            new = b".klp.sym." + obj + b"." + rng.choice([b"nosuchsym", b"", b"init_task", b"\xff"]) + b"," + pos
        else:  # cut short
            new = old[: rng.randrange(len(old))]
        new = new[:n].ljust(n, b"\0")
        data[off : off + n] = new
        return f".klp.sym name {old.decode(errors='replace')!r} -> {new.rstrip(bytes(1))!r}"
    return _mut_rela(t, data, rng, klp=True) or mut_rela(t, data, rng)


MUTATORS: dict[str, Callable[[Target, bytearray, random.Random], str]] = {
    "bitflip": mut_bitflip,
    "byterun": mut_byterun,
    "truncate": mut_truncate,
    "ehdr": mut_ehdr,
    "shdr": mut_shdr,
    "symbol": mut_symbol,
    "rela": mut_rela,
    "modinfo": mut_modinfo,
    "klp": mut_klp,
}


@dataclasses.dataclass
class FuzzInput:
    seed: int
    index: int
    module: str
    mutator: str
    what: str
    data: bytes


def make_input(targets: list[Target], seed: int, index: int) -> FuzzInput:
    """Input number `index` of the campaign `seed`: the same bytes every time."""
    rng = random.Random(f"{seed}:{index}")
    t = rng.choice(targets)
    klp_targets = [x for x in targets if x.strings(b".klp.sym.", ".strtab") or x.relas(klp=True)]
    name = rng.choice(list(MUTATORS))
    if name == "klp" and t not in klp_targets and klp_targets:
        t = rng.choice(klp_targets)
    data = bytearray(t.data)
    what = MUTATORS[name](t, data, rng)
    return FuzzInput(seed, index, t.filename, name, what, bytes(data))


# --- running one input -----------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    index: int
    module: str
    mutator: str
    what: str
    outcome: str
    detail: str
    known: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        tag = f" [known: {self.known}]" if self.known else ""
        return f"#{self.index} {self.module} {self.mutator} ({self.what}): {self.outcome}{tag}: {self.detail}"


class Fuzzer:
    """One booted machine frozen once; each input gets a restore of it."""

    def __init__(self, system: System | None = None):
        self.snapshot = Snapshot.take(system or System().boot())
        self.targets = shipped_targets()
        self.baseline = kernel_state(self._restore())

    def _restore(self) -> System:
        system = self.snapshot.restore()
        assert isinstance(system, System)
        # Instance attributes over the class's methods: the budget holds for this restore only.
        console: Any = system.console
        console.init_module = functools.partial(type(console).init_module, console, timeout_ns=HANG_BUDGET_NS)
        console.delete_module = functools.partial(type(console).delete_module, console, timeout_ns=HANG_BUDGET_NS)
        machine: Any = system.machine
        machine.run_until = functools.partial(_run_until_wall, type(machine).run_until.__get__(machine))
        return system

    def run_one(self, inp: FuzzInput) -> Result:
        t0 = time.perf_counter()
        system = self._restore()
        outcome, detail, known = self._run(system, inp)
        seconds = round(time.perf_counter() - t0, 3)
        return Result(inp.index, inp.module, inp.mutator, inp.what, outcome, detail, known, seconds)

    def _run(self, system: System, inp: FuzzInput) -> tuple[str, str, str | None]:
        m = system.machine
        mods = m.kernel.modules
        try:
            try:
                mod = mods.load(inp.data, filename=inp.module)
            except KlpemuError as e:
                if m.oops is not None:
                    return OOPS, _first_line(str(m.oops)), None
                if e.errno == errno_mod.ETIMEDOUT:
                    return HANG, str(e), None
                diff = state_diff(self.baseline, kernel_state(system))
                if diff:
                    known = _known(None, None, diff)
                    return (KNOWN if known else LEFT_BEHIND), f"{_errname(e)}; " + "; ".join(diff), known
                return REFUSED, f"{_errname(e)}: {e}", None
            if _known(None, mod.name, []) is not None:
                return KNOWN, f"accepted as {mod.name!r}", _known(None, mod.name, [])
            m.run(RUN_AFTER_LOAD_NS)
            if m.oops is not None:
                return OOPS, _first_line(str(m.oops)), None
            return self._unload(system, mod.name)
        except Exception as e:  # the finding: anything but the project's own error
            if m.oops is not None and isinstance(e, KlpemuError):
                return OOPS, _first_line(str(m.oops)), None
            known = _known(e, None, [])
            where = _where(e)
            return (KNOWN if known else TRACEBACK), f"{type(e).__name__}: {_first_line(str(e))} at {where}", known

    def _unload(self, system: System, name: str) -> tuple[str, str, str | None]:
        m = system.machine
        lp_dir = f"/sys/kernel/livepatch/{name}"
        if system.vfs.exists(lp_dir):
            try:
                system.vfs.write(f"{lp_dir}/enabled", "0")
            except KlpemuError as e:
                if m.oops is not None:
                    return OOPS, _first_line(str(m.oops)), None
                return UNLOAD_REFUSED, f"disable: {_errname(e)}: {e}", None
            if not m.run_until(lambda: not system.vfs.exists(lp_dir), TRANSITION_BUDGET_NS):
                if m.oops is not None:
                    return OOPS, _first_line(str(m.oops)), None
                tr = m.kernel.livepatch.transition
                if tr.patch is not None:
                    system.vfs.write(f"{lp_dir}/force", "1")
                if not m.run_until(lambda: not system.vfs.exists(lp_dir), TRANSITION_BUDGET_NS):
                    return HANG if m.oops is None else OOPS, f"patch {name} not freed after disable", None
        try:
            m.kernel.modules.unload(name)
        except KlpemuError as e:
            if m.oops is not None:
                return OOPS, _first_line(str(m.oops)), None
            if e.errno == errno_mod.ETIMEDOUT:
                return HANG, str(e), None
            return UNLOAD_REFUSED, f"{_errname(e)}: {e}", None
        diff = state_diff(self.baseline, kernel_state(system))
        if diff:
            return UNLOAD_LEAK, "after unload: " + "; ".join(diff), None
        return ACCEPTED, "loaded and unloaded", None

    def campaign(self, count: int, seed: int, start: int = 0) -> Iterator[Result]:
        for i in range(start, start + count):
            yield self.run_one(make_input(self.targets, seed, i))


def _run_until_wall(run_until: Callable[[Callable[[], bool], int], bool], predicate, timeout_ns: int) -> bool:
    """Machine.run_until, also given up (as a timeout) after WALL_BUDGET_S of wall time."""
    deadline = time.perf_counter() + WALL_BUDGET_S
    late = False

    def done() -> bool:
        nonlocal late
        late = time.perf_counter() > deadline
        return late or predicate()

    return run_until(done, timeout_ns) and not late


def _errname(e: KlpemuError) -> str:
    return errno_mod.errorcode.get(e.errno, str(e.errno))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _where(e: BaseException) -> str:
    """The innermost frame of the project in the traceback: where the bug is."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "klpemu" in f.filename]
    if not frames:
        return "?"
    f = frames[-1]
    return f"{Path(f.filename).name}:{f.lineno} ({f.name})"


# --- reports ---------------------------------------------------------------------------------------


def summarize(results: list[Result], seed: int, seconds: float) -> dict[str, object]:
    counts = Counter(r.outcome for r in results)
    by_mutator: dict[str, Counter[str]] = {}
    for r in results:
        by_mutator.setdefault(r.mutator, Counter())[r.outcome] += 1
    return {
        "seed": seed,
        "first": results[0].index if results else 0,
        "inputs": len(results),
        "seconds": round(seconds, 2),
        "outcomes": {o: counts.get(o, 0) for o in OUTCOMES},
        "by_mutator": {k: {o: c.get(o, 0) for o in OUTCOMES} for k, c in sorted(by_mutator.items())},
        "known": dict(Counter(r.known for r in results if r.known)),
        "seconds_by_outcome": {o: round(sum(r.seconds for r in results if r.outcome == o), 1) for o in OUTCOMES},
        "findings": [dataclasses.asdict(r) for r in results if r.outcome in BUGS + (UNLOAD_LEAK,) or r.known],
    }


def format_table(summary: dict[str, object]) -> str:
    by_mutator = summary["by_mutator"]
    assert isinstance(by_mutator, dict)
    head = f"{'mutator':<10}" + "".join(f"{o:>15}" for o in OUTCOMES)
    lines = [head, "-" * len(head)]
    for name, row in by_mutator.items():
        lines.append(f"{name:<10}" + "".join(f"{row[o]:>15}" for o in OUTCOMES))
    total = summary["outcomes"]
    assert isinstance(total, dict)
    lines.append("-" * len(head))
    lines.append(f"{'total':<10}" + "".join(f"{total[o]:>15}" for o in OUTCOMES))
    lines.append(f"{summary['inputs']} inputs, seed {summary['seed']}, {summary['seconds']} s")
    return "\n".join(lines)


def run_campaign(
    count: int, seed: int, json_path: str | None = None, *, start: int = 0, progress: bool = True
) -> dict[str, object]:
    t0 = time.perf_counter()
    fuzzer = Fuzzer()
    results = []
    for r in fuzzer.campaign(count, seed, start):
        results.append(r)
        if r.outcome in BUGS + (UNLOAD_LEAK,) and progress:
            print(r.line(), file=sys.stderr)
        if progress and len(results) % 500 == 0:
            print(f"... {len(results)} inputs, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    summary = summarize(results, seed, time.perf_counter() - t0)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=1000, help="inputs to run (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="the campaign's seed (default 0)")
    p.add_argument("--start", type=int, default=0, help="the first input's index (to split a campaign)")
    p.add_argument("--json", default=None, help="write the outcome counts and findings to this file")
    p.add_argument("--replay", default=None, metavar="SEED:INDEX", help="run one input and show its outcome")


def main_args(args: argparse.Namespace) -> int:
    if args.replay:
        seed, _, index = args.replay.partition(":")
        fuzzer = Fuzzer()
        inp = make_input(fuzzer.targets, int(seed), int(index))
        print(fuzzer.run_one(inp).line())
        return 0
    summary = run_campaign(args.count, args.seed, args.json, start=args.start)
    print(format_table(summary))
    outcomes = summary["outcomes"]
    assert isinstance(outcomes, dict)
    return 1 if any(outcomes[o] for o in BUGS) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m klpemu.fuzz", description=__doc__.splitlines()[0])
    add_arguments(p)
    return main_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
