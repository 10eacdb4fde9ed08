#!/usr/bin/env python3
"""Typed reads of guest structs: drgn over live guest memory, beside klpemu's own View.

The question is whether drgn should be the typed layer of the control plane instead of
klpemu/machine/types.py. Both read the same guest memory through GuestMemory.read (drgn from a
read callback on memory segments that cover the kernel's mappings), so the difference is the
typed layer alone. What is measured:

1. Start-up: our KernelImage + TypeInfo (pyelftools walks the DWARF once, eagerly), against a
   drgn.Program with the memory segments, the image as an extra module's debug file and the first
   type lookup, which is when drgn indexes the DWARF.
2. One typed member read, per kind of member: scalar, pointer, a member of a nested struct, a
   char array, and the C string an old_name points to; one walk of the task list. The rows named
   "string_()" read strings with drgn's string_(), which calls the read callback once per byte;
   they show the idiom to avoid and stay out of the verdict.
3. The control plane's walk: two livepatches of the same N functions, enabled through the
   livepatch core from Python and stacked; then what the core reads for each patch (klp_patches),
   object, func (old_name and its text, new_func, old_sympos, old_func, nop, patched,
   transition) and each func's klp_ops func_stack, as klp_ftrace_handler reads it.

Each time is the best of --repeat runs of a loop, after a warm-up, View's and drgn's loops in
turn. drgn's and View's results are compared for equality before anything is timed, and the
guest reads each makes are counted once. ratio = drgn time / View time. Verdict: adopt drgn where
it is within 2x of View, else keep our own layer, with drgn's shape.

    python benchmarks/typed_layer.py [--funcs N] [--repeat R] [--loops L] [--startup-repeat S]
                                     [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

try:
    import drgn
    from drgn import Object, Program
    from drgn.helpers.linux.list import list_for_each_entry
except ImportError:  # not a dependency of klpemu
    sys.exit("this benchmark needs drgn: pip install drgn")

from klpemu.bench import format_table
from klpemu.bench_livepatch import BenchLivepatches
from klpemu.kernel.guestlist import GuestList
from klpemu.machine.drgn_program import drgn_program
from klpemu.machine.image import KernelImage
from klpemu.machine.machine import Machine
from klpemu.machine.types import TypeInfo
from klpemu.system import System

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "typed_layer.json"
KSYM_NAME_LEN = 512
WITHIN = 2.0  # the verdict's bound on drgn time / View time
# Functions the patches change: traced, unique in vmlinux, and never where a task sleeps, so
# each transition completes at its first retry. Each replacement is the function itself past
# its fentry site (old + 5), so the patched kernel runs the same code as before.
PATCHED = (
    "cmdline_proc_show meminfo_proc_show show_stat uptime_proc_show version_proc_show seq_printf "
    "seq_puts seq_putc proc_create_single proc_remove lookup_locked proc_lookup cmdline_get_param "
    "cmdline_get_long klp_shadow_get __klp_shadow_get_or_alloc klp_shadow_alloc klp_shadow_get_or_alloc "
    "klp_shadow_free klp_shadow_free_all klp_get_state klp_get_prev_state module_refcount try_module_get "
    "module_put bench_leaf ftrace_selftest_leaf livepatch_bench_leaf sysrq_handle_crash "
    "write_sysrq_trigger find_task_by_pid sys_getpid call_loop_write register_kprobe unregister_kprobe "
    "register_kretprobe unregister_kretprobe enable_kprobe disable_kprobe timer_setup"
).split()
FENTRY_SIZE = 5


# --- drgn over the machine -------------------------------------------------------------------------


class DrgnTypes:
    """The types the reads use, looked up once (the "type by name" row shows a lookup per read)."""

    def __init__(self, prog: Program):
        self.func_p = prog.type("struct klp_func *")
        self.patch = prog.type("struct klp_patch")
        self.task = prog.type("struct task_struct")
        self.task_p = prog.type("struct task_struct *")
        self.func = prog.type("struct klp_func")
        self.head_p = prog.type("struct list_head *")


# --- 1. start-up -----------------------------------------------------------------------------------


def startup(m: Machine, repeat: int) -> dict:
    """Seconds per load, every run: ours parses the whole DWARF; drgn indexes it at the first
    lookup, with OpenMP threads (see OMP_NUM_THREADS in benchmarks/README.md)."""
    path = m.image.path

    def ours() -> None:
        TypeInfo(KernelImage(path).dwarf)

    def theirs() -> None:
        drgn_program(m).type("struct klp_func")

    runs: dict[str, list[float]] = {"view": [], "drgn": []}
    for _ in range(repeat):
        for key, fn in (("view", ours), ("drgn", theirs)):
            t = time.perf_counter()
            fn()
            runs[key].append(time.perf_counter() - t)
    return runs


# --- 2. one member read ----------------------------------------------------------------------------


def paired(repeat: int, loops: int, view_fn: Callable[[], object], drgn_fn: Callable[[], object]) -> tuple:
    """Seconds per call of each fn: the best of repeat timed loops each, after a warm-up loop,
    View's and drgn's loops taken in turn so that a busy moment of the host hits both."""

    def loop(fn: Callable[[], object]) -> float:
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        return time.perf_counter() - t

    loop(view_fn)
    loop(drgn_fn)
    view = drgn_ = float("inf")
    for _ in range(repeat):
        view = min(view, loop(view_fn))
        drgn_ = min(drgn_, loop(drgn_fn))
    return view / loops, drgn_ / loops


def cstring(read: Callable[[int, int], bytes], addr: int) -> bytes:
    """A kernel symbol name, as the core reads one: KSYM_NAME_LEN + 1 bytes, up to the NUL."""
    return read(addr, KSYM_NAME_LEN + 1).split(b"\0", 1)[0]


def member_cases(m: Machine, prog: Program, t: DrgnTypes, func: int, task: int) -> list[tuple]:
    """(key, what, View read, drgn read) for one klp_func and one task_struct. The string_() rows
    show drgn's string_() on guest memory, which makes one read callback per byte."""
    mem = m.mem
    return [
        (
            "scalar",
            "klp_func.old_sympos (unsigned long)",
            lambda: m.struct("klp_func", func).old_sympos,
            lambda: Object(prog, t.func_p, func).old_sympos.value_(),
        ),
        (
            "scalar, type by name",
            "the same, drgn naming the type each time",
            lambda: m.struct("klp_func", func).old_sympos,
            lambda: Object(prog, "struct klp_func *", func).old_sympos.value_(),
        ),
        (
            "bool",
            "klp_func.patched (bool)",
            lambda: m.struct("klp_func", func).patched,
            lambda: Object(prog, t.func_p, func).patched.value_(),
        ),
        (
            "pointer",
            "klp_func.new_func (void *)",
            lambda: m.struct("klp_func", func).new_func,
            lambda: Object(prog, t.func_p, func).new_func.value_(),
        ),
        (
            "nested",
            "klp_func.stack_node.next (struct list_head *)",
            lambda: m.struct("klp_func", func).stack_node.next,
            lambda: Object(prog, t.func_p, func).stack_node.next.value_(),
        ),
        (
            "char array",
            "task_struct.comm (char[16]); drgn: .read_().string_()",
            lambda: m.struct("task_struct", task).comm,
            lambda: Object(prog, t.task_p, task).comm.read_().string_(),
        ),
        (
            "char array, string_()",
            "the same; drgn: .string_() on the member",
            lambda: m.struct("task_struct", task).comm,
            lambda: Object(prog, t.task_p, task).comm.string_(),
        ),
        (
            "C string",
            "the text klp_func.old_name points to; drgn: prog.read",
            lambda: cstring(mem.read, m.struct("klp_func", func).old_name),
            lambda: cstring(prog.read, Object(prog, t.func_p, func).old_name.value_()),
        ),
        (
            "C string, string_()",
            "the same; drgn: .string_() on the pointer",
            lambda: cstring(mem.read, m.struct("klp_func", func).old_name),
            lambda: Object(prog, t.func_p, func).old_name.string_(),
        ),
    ]


def task_list_view(m: Machine) -> list[int]:
    """The pid of every task on task_list: GuestList for the nodes, a View for each entry."""
    off = m.types.offsetof("task_struct", "tasks")
    return [m.struct("task_struct", node - off).pid for node in GuestList(m.mem).nodes(m.var_addr("task_list"))]


def task_list_drgn(prog: Program, t: DrgnTypes) -> list[int]:
    head = prog["task_list"].address_of_()
    return [task.pid.value_() for task in list_for_each_entry(t.task, head, "tasks")]


# --- 3. the control plane's walk -------------------------------------------------------------------


def enable_patches(m: Machine, funcs: int) -> BenchLivepatches:
    """Two patches of the same functions, the second stacked on the first, both settled."""
    image = m.image
    sites = set(image.mcount_loc)
    names = PATCHED[:funcs]
    for name in names:
        if len(image.by_name.get(name, ())) != 1 or image.addr(name) not in sites:
            raise RuntimeError(f"{name} is not a traced function with a unique name")
    lps = BenchLivepatches(m)
    b = lps.builder
    for patch_name in ("typed_layer_a", "typed_layer_b"):
        objs = [b.object(None, [b.func(name, image.addr(name) + FENTRY_SIZE) for name in names])]
        patch = b.patch(patch_name, objs)
        lps.lp.enable(patch)
        lps.patches.append(patch)
        lps.settle()
    return lps


def walk_view(m: Machine, ops_of: dict[int, int]) -> list[tuple]:
    """What the core reads, through View and GuestList."""
    mem = m.mem
    lst = GuestList(mem)
    types = m.types
    patch_list_off = types.offsetof("klp_patch", "list")
    stack_off = types.offsetof("klp_ops", "func_stack")
    node_off = types.offsetof("klp_func", "stack_node")
    osize, fsize = types.sizeof("klp_object"), types.sizeof("klp_func")
    out = []
    for pnode in lst.nodes(m.var_addr("klp_patches")):
        patch = m.struct("klp_patch", pnode - patch_list_off)
        out.append(("patch", patch.enabled, patch.replace, patch.forced, patch.mod))
        obj_addr = patch.objs
        while obj_addr:
            obj = m.struct("klp_object", obj_addr)
            funcs, name = obj.funcs, obj.name
            if not funcs and not name:
                break
            out.append(("object", name, obj.patched, obj.dynamic, obj.mod))
            func_addr = funcs
            while func_addr:
                f = m.struct("klp_func", func_addr)
                old_name, new_func, old_sympos = f.old_name, f.new_func, f.old_sympos
                if not (old_name or new_func or old_sympos):
                    break
                text = cstring(mem.read, old_name).decode("utf-8", "replace")
                old_func = f.old_func
                out.append(("func", text, new_func, old_sympos, old_func, f.nop, f.patched, f.transition))
                head = ops_of[old_func] + stack_off
                for snode in lst.nodes(head):
                    top = m.struct("klp_func", snode - node_off)
                    out.append(("stack", top.new_func, top.nop, top.transition))
                func_addr += fsize
            obj_addr += osize
    return out


def walk_drgn(prog: Program, t: DrgnTypes, ops_of: dict[int, int], string_: bool = False) -> list[tuple]:
    """The same reads, through drgn Objects and its list helper. The name's text is read as the
    View walk reads it (prog.read, then up to the NUL), or with string_ by drgn's string_()."""
    out = []
    stack_off = prog.type("struct klp_ops").member("func_stack").offset
    head_p = t.head_p
    for patch in list_for_each_entry(t.patch, prog["klp_patches"].address_of_(), "list"):
        out.append(
            (
                "patch",
                patch.enabled.value_(),
                patch.replace.value_(),
                patch.forced.value_(),
                patch.mod.value_(),
            )
        )
        obj = patch.objs.read_()
        while obj:
            funcs, name = obj.funcs.read_(), obj.name.value_()
            if not funcs and not name:
                break
            out.append(("object", name, obj.patched.value_(), obj.dynamic.value_(), obj.mod.value_()))
            f = funcs
            while f:
                old_name, new_func, old_sympos = f.old_name.read_(), f.new_func.value_(), f.old_sympos.value_()
                if not (old_name or new_func or old_sympos):
                    break
                raw = old_name.string_() if string_ else cstring(prog.read, old_name.value_())
                text = raw.decode("utf-8", "replace")
                old_func = f.old_func.value_()
                out.append(
                    (
                        "func",
                        text,
                        new_func,
                        old_sympos,
                        old_func,
                        f.nop.value_(),
                        f.patched.value_(),
                        f.transition.value_(),
                    )
                )
                head = Object(prog, head_p, ops_of[old_func] + stack_off)
                for top in list_for_each_entry(t.func, head, "stack_node"):
                    out.append(("stack", top.new_func.value_(), top.nop.value_(), top.transition.value_()))
                f += 1
            obj += 1
    return out


# --- counting guest memory reads -------------------------------------------------------------------


def count_reads(m: Machine, fn: Callable[[], object]) -> int:
    """Calls of GuestMemory.read made by one call of fn (drgn's read callback goes through it)."""
    mem = m.mem
    real = mem.read
    calls = 0

    def counting(va: int, size: int) -> bytes:
        nonlocal calls
        calls += 1
        return real(va, size)

    mem.read = counting  # an instance attribute, over the method, for this call only
    try:
        fn()
    finally:
        del mem.read
    return calls


# --- the run ----------------------------------------------------------------------------------------


def row(key: str, what: str, unit: str, times: tuple[float, float], **extra) -> dict:
    view_s, drgn_s = times
    return {
        "key": key,
        "what": what,
        "unit": unit,
        "view_ns": view_s * 1e9,
        "drgn_ns": drgn_s * 1e9,
        "ratio": drgn_s / view_s,
        # string_() rows show a drgn idiom to avoid, beside the one the verdict takes
        "in_verdict": not key.endswith("string_()"),
        **extra,
    }


def measure(args) -> dict:
    m = System().machine
    m.boot()
    start = startup(m, args.startup_repeat)

    prog = drgn_program(m)
    t = DrgnTypes(prog)
    lp = enable_patches(m, args.funcs).lp
    func = lp.all_funcs(lp.patches[-1])[0]
    task = m.pcpu(0).current_task

    rows = [
        row(
            "start-up",
            "KernelImage + TypeInfo / Program + debug info + first lookup",
            "per load",
            (min(start["view"]), min(start["drgn"])),
            runs_s=start,
            in_verdict=False,
        )
    ]

    # What both sides pay for one guest read of 8 bytes, with no type at all.
    raw_read = paired(args.repeat, args.loops, partial(m.mem.read, func, 8), partial(prog.read, func, 8))
    for key, what, view_fn, drgn_fn in member_cases(m, prog, t, func, task):
        if view_fn() != drgn_fn():
            raise RuntimeError(f"{key}: View read {view_fn()!r}, drgn read {drgn_fn()!r}")
        rows.append(
            row(
                key,
                what,
                "per read",
                paired(args.repeat, args.loops, view_fn, drgn_fn),
                guest_reads={"view": count_reads(m, view_fn), "drgn": count_reads(m, drgn_fn)},
            )
        )

    tasks = task_list_view(m)
    if tasks != task_list_drgn(prog, t):
        raise RuntimeError("the task list walks disagree")
    view_fn, drgn_fn = partial(task_list_view, m), partial(task_list_drgn, prog, t)
    rows.append(
        row(
            "list walk",
            f"task_list, the pid of each of its {len(tasks)} tasks",
            "per walk",
            paired(args.repeat, max(1, args.loops // len(tasks)), view_fn, drgn_fn),
            entries=len(tasks),
            guest_reads={"view": count_reads(m, view_fn), "drgn": count_reads(m, drgn_fn)},
        )
    )

    ops_of = {old: ops.addr for old, ops in lp.patch_layer.ops.items()}
    view_walk = walk_view(m, ops_of)
    kinds = {k: sum(1 for r in view_walk if r[0] == k) for k in ("patch", "object", "func", "stack")}
    loops = max(1, args.loops // (10 * len(view_walk)))
    for key, string_ in (("control-plane walk", False), ("control-plane walk, string_()", True)):
        if walk_drgn(prog, t, ops_of, string_) != view_walk:
            raise RuntimeError(f"{key}: the walks disagree")
        view_fn, drgn_fn = partial(walk_view, m, ops_of), partial(walk_drgn, prog, t, ops_of, string_)
        rows.append(
            row(
                key,
                f"{kinds['patch']} patches x {args.funcs} funcs, each func's func_stack"
                + ("; drgn: string_() for the names" if string_ else ""),
                "per walk",
                paired(args.repeat, loops, view_fn, drgn_fn),
                entries=kinds,
                guest_reads={"view": count_reads(m, view_fn), "drgn": count_reads(m, drgn_fn)},
            )
        )
    return {"rows": rows, "raw_read_ns": {"view": raw_read[0] * 1e9, "drgn": raw_read[1] * 1e9}}


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:,.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:,.1f} µs"
    return f"{ns:,.0f} ns"


def table(rows: list[dict]) -> str:
    head = ("what", "unit", "View", "drgn", "drgn/View", "guest reads View/drgn", f"within {WITHIN:g}x")
    body = []
    for r in rows:
        reads = r.get("guest_reads")
        within = "yes" if r["ratio"] <= WITHIN else "no"
        body.append(
            (
                r["key"],
                r["unit"],
                fmt_ns(r["view_ns"]),
                fmt_ns(r["drgn_ns"]),
                f"{r['ratio']:.2f}",
                f"{reads['view']}/{reads['drgn']}" if reads else "-",
                within if r["in_verdict"] else f"({within})",
            )
        )
    return format_table(head, body)


def verdict(rows: list[dict]) -> str:
    """Adopt drgn where it is within WITHIN of View; else keep our own layer, with drgn's shape."""
    judged = [r for r in rows if r["in_verdict"]]
    over = [r["key"] for r in judged if r["ratio"] > WITHIN]
    walk = next(r for r in rows if r["key"] == "control-plane walk")
    if not over:
        worst = max(judged, key=lambda r: r["ratio"])
        return (
            f"verdict: adopt drgn for typed reads: every read is within {WITHIN:g}x of View "
            f"(control-plane walk {walk['ratio']:.2f}x, worst {worst['key']} {worst['ratio']:.2f}x); "
            "read strings with .read_() or prog.read, not string_(); writes stay ours (drgn has none)"
        )
    within = [r["key"] for r in judged if r["ratio"] <= WITHIN]
    return (
        f"verdict: keep our own typed layer, with drgn's shape, for {', '.join(over)} "
        f"(over {WITHIN:g}x of View); drgn within {WITHIN:g}x for {', '.join(within) or 'nothing'}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--funcs", type=int, default=32, help=f"functions per patch, 1..{len(PATCHED)} (default 32)")
    ap.add_argument(
        "--repeat", type=int, default=15, help="timed loops per measurement and side; the best counts (default 15)"
    )
    ap.add_argument("--loops", type=int, default=2000, help="member reads per timed loop (default 2000)")
    ap.add_argument("--startup-repeat", type=int, default=5, help="loads timed for start-up, per side (default 5)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"result file (default {DEFAULT_JSON})")
    args = ap.parse_args(argv)
    if not 1 <= args.funcs <= len(PATCHED):
        ap.error(f"--funcs must be between 1 and {len(PATCHED)}")
    if min(args.repeat, args.loops, args.startup_repeat) < 1:
        ap.error("--repeat, --loops and --startup-repeat must be positive")

    t0 = time.perf_counter()
    result = measure(args)
    rows, raw = result["rows"], result["raw_read_ns"]
    start = rows[0]["runs_s"]
    print(
        f"drgn {drgn.__version__}, Python {platform.python_version()}; best of {args.repeat} loops, View's "
        f"and drgn's in turn; {args.loops} reads per loop for one member; start-up best of "
        f"{args.startup_repeat}; both read guest memory through GuestMemory.read\n"
    )
    print(table(rows))
    print(
        f"\nuntyped 8-byte read: GuestMemory.read {fmt_ns(raw['view'])}, prog.read {fmt_ns(raw['drgn'])} "
        "(through the read callback)"
    )
    for key, label in (("view", "KernelImage + TypeInfo"), ("drgn", "drgn Program")):
        runs = ", ".join(f"{s * 1e3:.1f}" for s in start[key])
        print(f"start-up runs, {label}: {runs} ms")
    print()
    print(verdict(rows))
    print(f"(ran in {time.perf_counter() - t0:.1f} s)")

    out = {
        "drgn": drgn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "funcs": args.funcs,
        "repeat": args.repeat,
        "loops": args.loops,
        "startup_repeat": args.startup_repeat,
        "within": WITHIN,
        "raw_read_ns": raw,
        "rows": rows,
        "verdict": verdict(rows),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
