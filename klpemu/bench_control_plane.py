"""`klpemu bench control-plane`: what the livepatch control plane costs as a patch and the
machine grow.

Both measurements use the scale configuration: the shipped module scale_funcs (1024 traceable
functions, scale_func_0000 to scale_func_1023, and as many kernel threads as asked, each asleep
at the bottom of a chain of 1 to 16 of them). Each size starts from a snapshot, so every size
starts from the same state.

  enable       klp_enable_patch of a patch of N scale functions, each sent to version_proc_show,
               on a machine without the threads; N = 1, 10, 100, 1000. Its wall time and the
               text_poke syncs it made: the sites are poked in one batch of up to TP_VEC_MAX
               (256), as text_poke_queue flushes a full vector, so the syncs do not grow with N
               but by three for each further 256 sites.
  stack_check  one pass of the transition's stack check, as its first attempt makes it: for each
               of T tasks, whether it is on a CPU, its stack unwound and checked against a patch
               of F scale functions (Transition.blocker). T = 100, 1000, 10,000 at F = 1000, and
               F = 1, 10, 100, 1000 at T = 10,000. The fastest of STACK_CHECK_REPEAT passes.

The growth exponent is the slope of log(seconds) over log(size) between the smallest and the
largest size: 1 is linear, 2 quadratic.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from errno import EIO
from pathlib import Path

from .bench import format_table
from .errors import KlpemuError
from .kernel.livepatch.builder import KlpBuilder
from .kernel.module.kmod import shipped_module
from .kernel.tasks import all_tasks
from .machine.machine import MachineConfig
from .snapshot import Snapshot
from .system import System

SCALE_MODULE = "scale_funcs"
SCALE_FUNCS = 1024  # firmware/Makefile's SCALE_FUNCS
NEW_FUNC = "version_proc_show"
MAX_FUNCTIONS = 1000
MAX_TASKS = 10_000
STACK_CHECK_REPEAT = 3
SETTLE_NS = 100_000_000  # the threads reach their sleep well within this
KIB_PER_THREAD = 20  # a task_struct, a 16 KiB stack and the kmalloc heap's slack


def scale_function_names(n: int) -> list[str]:
    return [f"scale_func_{i:04d}" for i in range(n)]


def scale_system(threads: int) -> System:
    """A booted machine with scale_funcs loaded and its threads asleep, and RAM for them."""
    mem_mb = max(MachineConfig.mem_mb, MachineConfig.mem_mb + -(-threads * KIB_PER_THREAD // 1024))
    system = System(MachineConfig(mem_mb=mem_mb)).boot()
    path = shipped_module(SCALE_MODULE)
    if path is None:
        raise KlpemuError(f"{SCALE_MODULE}.ko is not shipped with this klpemu", EIO)
    system.kernel.modules.load(path, f"threads={threads}")
    system.machine.run(SETTLE_NS)
    return system


def scale_patch(system: System, n: int):
    b = KlpBuilder(system.kernel.livepatch)
    return b.patch("scale", [b.object(SCALE_MODULE, [b.func(name, NEW_FUNC) for name in scale_function_names(n)])])


def measure_enable(snapshot: Snapshot, n: int) -> dict:
    system = snapshot.restore_system()
    patch = scale_patch(system, n)
    tp = system.kernel.ftrace.text_poke
    syncs = tp.syncs
    t = time.perf_counter()
    system.kernel.livepatch.enable(patch)
    seconds = time.perf_counter() - t
    return {"functions": n, "seconds": seconds, "text_poke_syncs": tp.syncs - syncs}


def measure_stack_check(snapshot: Snapshot, functions: int, tasks: int) -> dict:
    system = snapshot.restore_system()
    lp = system.kernel.livepatch
    lp.enable(scale_patch(system, functions))
    transition = lp.transition
    if transition.patch is None:  # no transition left to check stacks against
        raise KlpemuError("the transition completed at once; nothing to check stacks against", EIO)
    checked = all_tasks(system.machine)[:tasks]
    seconds = math.inf
    for _ in range(STACK_CHECK_REPEAT):
        t = time.perf_counter()
        for task in checked:
            transition.blocker(task)
        seconds = min(seconds, time.perf_counter() - t)
    return {"tasks": len(checked), "functions": functions, "seconds": seconds}


def growth_exponent(rows: list[dict], size: str) -> float | None:
    """log-log slope of seconds over size between the smallest and the largest size."""
    lo, hi = min(rows, key=lambda r: r[size]), max(rows, key=lambda r: r[size])
    if lo[size] == hi[size] or lo["seconds"] <= 0 or hi["seconds"] <= 0:
        return None
    return math.log(hi["seconds"] / lo["seconds"]) / math.log(hi[size] / lo[size])


def sizes_up_to(largest: int, smallest: int = 1) -> list[int]:
    """The powers of ten from smallest below largest, then largest."""
    out, n = [], smallest
    while n < largest:
        out.append(n)
        n *= 10
    return out + [largest]


def run_control_plane(max_functions: int = MAX_FUNCTIONS, max_tasks: int = MAX_TASKS) -> dict:
    plain = Snapshot.take(scale_system(0))
    enable = [measure_enable(plain, n) for n in sizes_up_to(max_functions)]
    del plain
    busy = Snapshot.take(scale_system(max_tasks))
    by_tasks = [measure_stack_check(busy, max_functions, t) for t in sizes_up_to(max_tasks, 100)[:-1]]
    by_functions = [measure_stack_check(busy, f, max_tasks) for f in sizes_up_to(max_functions)]
    return {
        "enable": enable,
        "stack_check": by_tasks + by_functions,
        "enable_growth_exponent": growth_exponent(enable, "functions"),
        "stack_check_tasks_exponent": growth_exponent(by_tasks + by_functions[-1:], "tasks"),
        "stack_check_functions_exponent": growth_exponent(by_functions, "functions"),
        "threads": max_tasks,
    }


def _exponent(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def report(result: dict) -> str:
    enable = format_table(
        ("enable: functions", "seconds", "text_poke syncs"),
        [(str(r["functions"]), f"{r['seconds']:.4f}", str(r["text_poke_syncs"])) for r in result["enable"]],
    )
    stack = format_table(
        ("stack check: tasks", "functions", "seconds"),
        [(str(r["tasks"]), str(r["functions"]), f"{r['seconds']:.4f}") for r in result["stack_check"]],
    )
    return "\n".join(
        [
            enable,
            f"growth exponent in functions (log-log slope, smallest to largest): "
            f"{_exponent(result['enable_growth_exponent'])}",
            "",
            stack,
            f"growth exponent in tasks, at the most functions: {_exponent(result['stack_check_tasks_exponent'])}",
            f"growth exponent in functions, at the most tasks: {_exponent(result['stack_check_functions_exponent'])}",
            "",
            f"{SCALE_MODULE} with threads={result['threads']}: the tasks checked are the first of the task "
            "list (the boot's, then the threads);",
            "a stack check pass unwinds and checks each task, as a transition's attempt does.",
            "Wall seconds of the host running the control plane (Python and guest reads), not of a kernel.",
        ]
    )


def _count(name: str, smallest: int, largest: int):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if not smallest <= n <= largest:
            raise argparse.ArgumentTypeError(f"{name} is {smallest} to {largest}, not {text!r}")
        return n

    return parse


def add_arguments(ap: argparse.ArgumentParser, results: Path = Path(".")) -> None:
    ap.add_argument(
        "--json",
        type=Path,
        default=results / "control_plane.json",
        help=f"result file (default {results / 'control_plane.json'})",
    )
    ap.add_argument(
        "--max-functions",
        type=_count("--max-functions", 1, SCALE_FUNCS),
        default=MAX_FUNCTIONS,
        metavar="N",
        help=f"the largest patch, in scale functions (default {MAX_FUNCTIONS})",
    )
    ap.add_argument(
        "--max-tasks",
        type=_count("--max-tasks", 100, 100_000),
        default=MAX_TASKS,
        metavar="T",
        help=f"kernel threads to start for the stack check (default {MAX_TASKS:,})",
    )


def run(args: argparse.Namespace) -> int:
    result = run_control_plane(args.max_functions, args.max_tasks)
    print(report(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json.resolve()}")
    return 0
