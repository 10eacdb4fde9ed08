"""`klpemu bench control-plane`: what the livepatch control plane costs as a patch grows.

Two measurements, each on a machine restored from one boot snapshot (so every size starts from
the same state):

  enable       klp_enable_patch of a patch of N functions, each sent to version_proc_show, built
               with KlpBuilder as tests/test_control_plane_scale.py builds it; N = 1, 10, 100 and
               every uniquely named traceable function of the image. Its wall time and the
               text_poke syncs it made: the sites are poked in one batch, so the syncs must not
               grow with N.
  stack_check  the transition's stack check (klp_check_stack) over the stacks of every task not
               on a CPU (unwound beforehand), for a patch of F functions: how its cost grows with
               the functions. The fastest of STACK_CHECK_REPEAT passes.

The growth exponent is the slope of log(seconds) over log(N) between the smallest and the
largest N: 1 is linear, 2 quadratic. Linux's own figure for N = 1000 needs an image with that many
traceable functions, a scale configuration that does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from errno import EIO
from pathlib import Path

from .bench import format_table
from .errors import KlpemuError
from .kernel.livepatch.builder import KlpBuilder
from .kernel.stacktrace import unwind_task
from .kernel.tasks import all_tasks
from .snapshot import Snapshot
from .system import System

NEW_FUNC = "version_proc_show"
SIZES = (1, 10, 100)
# The stack check of a few tasks takes tens of microseconds: the fastest of this many passes.
STACK_CHECK_REPEAT = 20
NO_SCALE_IMAGE = (
    "N = 1000 (the issue's size) needs an image with ~1000 traceable functions, a scale "
    "configuration that does not exist yet; the largest N here is every uniquely named "
    "traceable function of the shipped image."
)


def unique_traceable_functions(system: System) -> list[str]:
    """vmlinux functions with an ftrace record and a name no other function has (no sympos
    needed), but the replacement itself."""
    image = system.machine.image
    names = [sym.name for ip in system.kernel.ftrace.records.ips() if (sym := image.function_at(ip)) is not None]
    counts = Counter(names)
    return [name for name in names if counts[name] == 1 and name != NEW_FUNC]


def _patch(system: System, names: list[str]):
    b = KlpBuilder(system.kernel.livepatch)
    return b.patch("scale", [b.object(None, [b.func(name, NEW_FUNC) for name in names])])


def measure_enable(snapshot: Snapshot, names: list[str]) -> dict:
    system = snapshot.restore_system()
    patch = _patch(system, names)
    tp = system.kernel.ftrace.text_poke
    syncs = tp.syncs
    t = time.perf_counter()
    system.kernel.livepatch.enable(patch)
    seconds = time.perf_counter() - t
    return {"functions": len(names), "seconds": seconds, "text_poke_syncs": tp.syncs - syncs}


def measure_stack_check(snapshot: Snapshot, names: list[str]) -> dict:
    system = snapshot.restore_system()
    m = system.machine
    lp = system.kernel.livepatch
    lp.enable(_patch(system, names))
    transition = lp.transition
    if transition.patch is None:  # no transition left to check stacks against
        raise KlpemuError("the transition completed at once; nothing to check stacks against", EIO)
    traces = [unwind_task(m, task) for task in all_tasks(m) if task.running_on is None]
    seconds = math.inf
    for _ in range(STACK_CHECK_REPEAT):
        t = time.perf_counter()
        for trace in traces:
            transition.check_stack(trace)
        seconds = min(seconds, time.perf_counter() - t)
    return {"tasks": len(traces), "functions": len(names), "seconds": seconds}


def growth_exponent(rows: list[dict], size: str) -> float | None:
    """log-log slope of seconds over size between the smallest and the largest size."""
    lo, hi = min(rows, key=lambda r: r[size]), max(rows, key=lambda r: r[size])
    if lo[size] == hi[size] or lo["seconds"] <= 0 or hi["seconds"] <= 0:
        return None
    return math.log(hi["seconds"] / lo["seconds"]) / math.log(hi[size] / lo[size])


def run_control_plane() -> dict:
    snapshot = Snapshot.take(System().boot())
    names = unique_traceable_functions(snapshot.restore_system())
    sizes = sorted({n for n in SIZES if n < len(names)} | {len(names)})
    enable = [measure_enable(snapshot, names[:n]) for n in sizes]
    stack_check = [measure_stack_check(snapshot, names[:n]) for n in sizes]
    return {
        "enable": enable,
        "stack_check": stack_check,
        "enable_growth_exponent": growth_exponent(enable, "functions"),
        "stack_check_growth_exponent": growth_exponent(stack_check, "functions"),
        "max_functions": len(names),
        "note": NO_SCALE_IMAGE,
    }


def _exponent(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def report(result: dict) -> str:
    enable = format_table(
        ("enable: functions", "seconds", "text_poke syncs"),
        [(str(r["functions"]), f"{r['seconds']:.4f}", str(r["text_poke_syncs"])) for r in result["enable"]],
    )
    stack = format_table(
        ("stack check: functions", "tasks", "seconds"),
        [(str(r["functions"]), str(r["tasks"]), f"{r['seconds']:.6f}") for r in result["stack_check"]],
    )
    return "\n".join(
        [
            enable,
            f"growth exponent (log-log slope, smallest to largest N): {_exponent(result['enable_growth_exponent'])}",
            "",
            stack,
            f"growth exponent (log-log slope, smallest to largest F): "
            f"{_exponent(result['stack_check_growth_exponent'])}",
            "",
            result["note"],
            "Wall seconds of the host running the control plane (Python and guest reads), not of a kernel.",
        ]
    )


def add_arguments(ap: argparse.ArgumentParser, results: Path = Path(".")) -> None:
    ap.add_argument(
        "--json",
        type=Path,
        default=results / "control_plane.json",
        help=f"result file (default {results / 'control_plane.json'})",
    )


def run(args: argparse.Namespace) -> int:
    result = run_control_plane()
    print(report(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json.resolve()}")
    return 0
