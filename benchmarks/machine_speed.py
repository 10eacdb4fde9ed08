#!/usr/bin/env python3
"""Guest instructions per second of the machine on a call loop, beside bare Unicorn.

The workload is the firmware's bench_call_loop(N) (firmware/kernel/bench.c): N calls of the
traceable bench_leaf(), whose fentry site boot has turned into a NOP5 (no tracer attached).

1. Instructions per loop iteration are counted once, exactly, with UC_HOOK_CODE counters
   bounded to bench_call_loop, bench_leaf and __fentry__ on a bare Unicorn, for two loop
   lengths; the difference divided by the difference of lengths is the per-iteration cost.
2. machine: a booted Machine (all its CPUs, slicing, timer interrupts); the guest's `sh`
   writes N to /sys/kernel/debug/klpemu/call_loop and the write handler runs the loop in
   that task. The console round trip is measured with N=0 and subtracted.
3. machine host call: Machine.call("bench_call_loop", N): the same Uc with the machine's
   hooks, one emu_start, no slicing (shows where the machine's cost comes from).
4. bare: a fresh Uc with the image mapped by GuestMemory (same page tables, same TLB mode),
   no hooks, one emu_start(bench_call_loop, sentinel, count=1<<62).

Instructions for the timed rows are N * insns_per_iter (the loop's few fixed instructions
are left out). Wall times are the best of --repeat runs, after a warm-up run.

    python benchmarks/machine_speed.py [--calls N] [--repeat R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import unicorn
from unicorn import UC_HOOK_CODE

from klpemu.bench import BareGuest, best_of, format_table
from klpemu.machine.console import Console
from klpemu.machine.image import KernelImage
from klpemu.machine.machine import NS_PER_SEC, shipped_image
from klpemu.system import System

CALL_LOOP_FILE = "/sys/kernel/debug/klpemu/call_loop"
LOOP, LEAF, FENTRY = "bench_call_loop", "bench_leaf", "__fentry__"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "machine_speed.json"


def count_insns(image: KernelImage, n: int) -> dict[str, int]:
    """Instructions executed by bench_call_loop(n) on a bare Uc: in total and per function."""
    g = BareGuest(image)
    counts = {"total": 0, LOOP: 0, LEAF: 0, FENTRY: 0}

    def counter(key):
        def hook(_uc, _addr, _size, _ud):
            counts[key] += 1

        return hook

    g.uc.hook_add(UC_HOOK_CODE, counter("total"))
    for name in (LOOP, LEAF, FENTRY):
        sym = image.lookup(name)
        g.uc.hook_add(UC_HOOK_CODE, counter(name), None, sym.addr, sym.addr + sym.size - 1)
    g.uc.ctl_flush_tb()  # hooks apply only to blocks translated after hook_add
    if g.call(LOOP, n) != n:
        raise RuntimeError(f"{LOOP}({n}) returned the wrong value")
    return counts


def insns_per_iteration(image: KernelImage, n: int = 100) -> dict:
    a, b = count_insns(image, n), count_insns(image, 2 * n)
    per = {k: (b[k] - a[k]) / n for k in a}
    if any(v != int(v) for v in per.values()):
        raise RuntimeError(f"non-integral instructions per iteration: {per}")
    per = {k: int(v) for k, v in per.items()}
    if per["total"] != per[LOOP] + per[LEAF] + per[FENTRY]:
        raise RuntimeError(f"instructions outside {LOOP}, {LEAF} and {FENTRY}: {per}")
    return {
        "per_iter": per["total"],
        "by_function": {k: per[k] for k in (LOOP, LEAF, FENTRY)},
        "fixed": a["total"] - n * per["total"],
    }


def row(name: str, calls: int, insns: int, seconds: float, **extra) -> dict:
    return {
        "config": name,
        "calls": calls,
        "instructions": insns,
        "seconds": seconds,
        "insns_per_sec": insns / seconds,
        "ns_per_call": seconds * 1e9 / calls,
        **extra,
    }


def bench_machine(calls: int, per_iter: int, repeat: int) -> list[dict]:
    m = System().machine
    m.boot()
    con = Console(m)
    timeout = 5 * NS_PER_SEC + 4 * calls * per_iter * m.config.insn_ns

    def write(n: int) -> None:
        con.write_file(CALL_LOOP_FILE, str(n), timeout_ns=timeout)
        if m.read_var_int("bench_result") != n:
            raise RuntimeError("the guest's call loop returned the wrong value")

    write(1000)  # warm up: translate the loop, the console and system call paths
    round_trip = best_of(repeat, lambda: write(0))
    t0 = m.now
    loop = best_of(repeat, lambda: write(calls))
    emulated_ns = (m.now - t0) / repeat
    insns = calls * per_iter
    cfg = m.config
    rows = [
        row(
            f"machine ({cfg.cpus} CPUs, console write)",
            calls,
            insns,
            loop - round_trip,
            round_trip_seconds=round_trip,
            raw_seconds=loop,
            emulated_ns_per_write=emulated_ns,
            cpus=cfg.cpus,
            slice_insns=cfg.slice_insns,
            seed=cfg.seed,
        )
    ]

    budget = calls * per_iter + 1000
    m.call(LOOP, 1000)
    host = best_of(repeat, lambda: m.call(LOOP, calls, budget=budget))
    rows.append(row("machine host call (m.call)", calls, insns, host))
    return rows


def bench_bare(image: KernelImage, calls: int, per_iter: int, repeat: int) -> dict:
    g = BareGuest(image)

    def run(n: int) -> None:
        if g.call(LOOP, n) != n:
            raise RuntimeError(f"{LOOP} returned the wrong value")

    run(1000)  # warm up
    return row("bare unicorn (emu_start)", calls, calls * per_iter, best_of(repeat, lambda: run(calls)))


def table(rows: list[dict]) -> str:
    head = ("configuration", "calls", "instructions", "wall s", "insns/s", "ns/call")
    return format_table(
        head,
        [
            (
                r["config"],
                f"{r['calls']:,}",
                f"{r['instructions']:,}",
                f"{r['seconds']:.4f}",
                f"{r['insns_per_sec'] / 1e6:.1f} M",
                f"{r['ns_per_call']:.1f}",
            )
            for r in rows
        ],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000, help="loop iterations per run (default 1000000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per configuration; the best counts (default 5)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"result file (default {DEFAULT_JSON})")
    args = ap.parse_args(argv)
    if args.calls < 1 or args.repeat < 1:
        ap.error("--calls and --repeat must be positive")

    image = KernelImage(shipped_image())
    ipi = insns_per_iteration(image)
    per_iter = ipi["per_iter"]
    machine_rows = bench_machine(args.calls, per_iter, args.repeat)
    bare = bench_bare(image, args.calls, per_iter, args.repeat)
    rows = [*machine_rows, bare]
    ratio = machine_rows[0]["insns_per_sec"] / bare["insns_per_sec"]

    by_fn = ", ".join(f"{k} {v}" for k, v in ipi["by_function"].items())
    print(f"guest instructions per iteration: {per_iter} ({by_fn}); fixed per call of {LOOP}: {ipi['fixed']}")
    print(
        f"calls per run: {args.calls:,}; best of {args.repeat}; console round trip "
        f"{machine_rows[0]['round_trip_seconds'] * 1e3:.2f} ms (N=0) subtracted from the machine row\n"
    )
    print(table(rows))
    print(f"\nratio machine/bare (insns/s): {ratio:.3f}  (the machine is {1 / ratio:.1f}x slower)")
    print(f"ratio machine host call/bare: {machine_rows[1]['insns_per_sec'] / bare['insns_per_sec']:.3f}")

    result = {
        "unicorn": unicorn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "calls": args.calls,
        "repeat": args.repeat,
        "insns_per_iter": per_iter,
        "insns_per_iter_by_function": ipi["by_function"],
        "rows": rows,
        "ratio": ratio,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
