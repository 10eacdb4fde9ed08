"""Guest instructions per second of the machine, beside bare Unicorn counted and uncounted.

The workload is the firmware's bench_call_loop(N) (firmware/kernel/bench.c): N calls of the
traceable bench_leaf(), whose fentry site boot has turned into a NOP5.

1. Instructions per iteration, exactly: UC_HOOK_CODE counters bounded to bench_call_loop,
   bench_leaf and __fentry__ on a bare Unicorn, for N and 2N; the difference over N.
2. The machine, as a user runs it: a booted machine (all its CPUs, slicing, timer interrupts);
   its `sh` writes N to /sys/kernel/debug/klpemu/call_loop and the write handler runs the loop
   in that task. The console round trip (N=0) is subtracted. Once with Unicorn counting each
   slice (the default), once uncounted (the block counter).
3. Bare Unicorn: the image alone on a fresh Uc (same page tables, same TLB mode), no hooks,
   one emu_start of the loop, once with the machine's count= and once with Unicorn's default
   count=0.

The ratios compare the machine with bare Unicorn on the same instruction stream.
"""

from __future__ import annotations

from unicorn import UC_HOOK_CODE

from .bench import BareGuest, best_of, format_table
from .machine.console import Console
from .machine.image import KernelImage
from .machine.machine import FOREVER, NS_PER_SEC, MachineConfig
from .system import System

CALL_LOOP_FILE = "/sys/kernel/debug/klpemu/call_loop"
LOOP, LEAF, FENTRY = "bench_call_loop", "bench_leaf", "__fentry__"


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
    g.uc.ctl_flush_tb()  # type: ignore[attr-defined]  # hooks apply only to blocks translated after
    if g.call(LOOP, n) != n:
        raise RuntimeError(f"{LOOP}({n}) returned the wrong value")
    return counts


def insns_per_iteration(image: KernelImage, n: int = 100) -> dict:
    a, b = count_insns(image, n), count_insns(image, 2 * n)
    per = {k: (b[k] - a[k]) / n for k in a}
    if any(v != int(v) for v in per.values()):
        raise RuntimeError(f"non-integral instructions per iteration: {per}")
    iper = {k: int(v) for k, v in per.items()}
    if iper["total"] != iper[LOOP] + iper[LEAF] + iper[FENTRY]:
        raise RuntimeError(f"instructions outside {LOOP}, {LEAF} and {FENTRY}: {iper}")
    return {
        "per_iter": iper["total"],
        "by_function": {k: iper[k] for k in (LOOP, LEAF, FENTRY)},
        "fixed": a["total"] - n * iper["total"],
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


def bench_machine(calls: int, per_iter: int, repeat: int, *, uncounted: bool) -> dict:
    """The call loop run by the guest's shell, through the console, on a booted machine."""
    m = System(MachineConfig(uncounted=uncounted)).machine
    m.boot()
    con = Console(m)
    timeout = 5 * NS_PER_SEC + 4 * calls * per_iter * m.config.insn_ns

    def write(n: int) -> None:
        con.write_file(CALL_LOOP_FILE, str(n), timeout_ns=timeout)
        if m.read_var_int("bench_result") != n:
            raise RuntimeError("the guest's call loop returned the wrong value")

    write(1000)  # warm up: translate the loop, the console and system call paths
    round_trip = best_of(repeat, lambda: write(0))
    loop = best_of(repeat, lambda: write(calls))
    cfg = m.config
    slicing = "uncounted" if uncounted else "counted"
    return row(
        f"machine, {slicing} slices ({cfg.cpus} CPUs)",
        calls,
        calls * per_iter,
        loop - round_trip,
        round_trip_seconds=round_trip,
        raw_seconds=loop,
        slicing=slicing,
        cpus=cfg.cpus,
        slice_insns=cfg.slice_insns,
        seed=cfg.seed,
    )


def bench_bare(image: KernelImage, calls: int, per_iter: int, repeat: int, *, count: int) -> dict:
    g = BareGuest(image)

    def run(n: int) -> None:
        if g.call(LOOP, n, count=count) != n:
            raise RuntimeError(f"{LOOP} returned the wrong value")

    run(1000)  # warm up
    name = "bare unicorn, count=0 (its default)" if count == 0 else "bare unicorn, the machine's count="
    return row(name, calls, calls * per_iter, best_of(repeat, lambda: run(calls)), count=count)


def guest_speed(image: KernelImage, calls: int, repeat: int) -> dict:
    """The four rows and the ratios between them."""
    ipi = insns_per_iteration(image)
    per_iter = ipi["per_iter"]
    counted = bench_machine(calls, per_iter, repeat, uncounted=False)
    uncounted = bench_machine(calls, per_iter, repeat, uncounted=True)
    bare_counted = bench_bare(image, calls, per_iter, repeat, count=FOREVER)
    bare_default = bench_bare(image, calls, per_iter, repeat, count=0)

    def speed(r: dict) -> float:
        return float(r["insns_per_sec"])

    return {
        "calls": calls,
        "repeat": repeat,
        "insns_per_iter": per_iter,
        "insns_per_iter_by_function": ipi["by_function"],
        "fixed_insns_per_loop": ipi["fixed"],
        "rows": [counted, uncounted, bare_counted, bare_default],
        "ratios": {
            "counted_vs_bare_same_count": speed(counted) / speed(bare_counted),
            "counted_vs_bare_default": speed(counted) / speed(bare_default),
            "uncounted_vs_bare_default": speed(uncounted) / speed(bare_default),
        },
    }


def table(result: dict) -> str:
    head = ("configuration", "calls", "instructions", "wall s", "insns/s", "ns/call")
    body = [
        (
            r["config"],
            f"{r['calls']:,}",
            f"{r['instructions']:,}",
            f"{r['seconds']:.4f}",
            f"{r['insns_per_sec'] / 1e6:.1f} M",
            f"{r['ns_per_call']:.1f}",
        )
        for r in result["rows"]
    ]
    return format_table(head, body)


def report(result: dict) -> str:
    by_fn = ", ".join(f"{k} {v}" for k, v in result["insns_per_iter_by_function"].items())
    r = result["ratios"]
    return "\n".join(
        [
            f"guest speed: {LOOP}({result['calls']:,}), {result['insns_per_iter']} instructions an iteration "
            f"({by_fn}), best of {result['repeat']}; the console round trip (N=0) is subtracted",
            "",
            table(result),
            "",
            f"ratio machine (counted) / bare with the same count: {r['counted_vs_bare_same_count']:.3f}",
            f"ratio machine (counted) / bare uncounted (Unicorn's default): {r['counted_vs_bare_default']:.3f}",
            f"ratio machine (uncounted) / bare uncounted (Unicorn's default): {r['uncounted_vs_bare_default']:.3f}",
        ]
    )
