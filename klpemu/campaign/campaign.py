"""`klpemu campaign`: seeds x models x workloads, each run on a machine of its own (run.py), in
local processes or on a Dask cluster; a table per model and workload, JSON rows and a plot.

A run depends only on its (model, workload, seed): whichever executor runs it, and in whatever
order, the rows are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from errno import EINVAL
from pathlib import Path
from typing import Any

from ..errors import KlpemuError
from .run import RUN_MODELS, run_one
from .workloads import WORKLOADS

Task = tuple[str, str, int]


def _run_task(task: Task) -> dict:
    return run_one(*task)


def tasks_for(models: Sequence[str], workloads: Sequence[str], seeds: Sequence[int]) -> list[Task]:
    return [(m, w, s) for m in models for w in workloads for s in seeds]


def execute_local(tasks: list[Task], jobs: int | None = None) -> list[dict]:
    """In local processes, each booting its machine once and restoring it for every run."""
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1:
        return [_run_task(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_run_task, tasks, chunksize=max(1, len(tasks) // (jobs * 4))))


def execute_dask(tasks: list[Task], scheduler: Any) -> list[dict]:
    """On a Dask cluster: scheduler is an address (tcp://HOST:PORT) or a distributed.Client."""
    try:
        from distributed import Client
    except ImportError:
        raise KlpemuError("--scheduler needs Dask's distributed: pip install 'klpemu[dask]'", EINVAL) from None
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = client.map(_run_task, tasks, pure=False)
        return list(client.gather(futures))
    finally:
        if client is not scheduler:
            client.close()


def run_campaign(
    models: Sequence[str],
    workloads: Sequence[str],
    seeds: Sequence[int],
    *,
    scheduler: Any = None,
    jobs: int | None = None,
) -> list[dict]:
    for m in models:
        if m not in RUN_MODELS:
            raise KlpemuError(f"unknown model '{m}' (one of {', '.join(RUN_MODELS)})", EINVAL)
    for w in workloads:
        if w not in WORKLOADS:
            raise KlpemuError(f"unknown workload '{w}' (one of {', '.join(WORKLOADS)})", EINVAL)
    tasks = tasks_for(models, workloads, seeds)
    rows = execute_dask(tasks, scheduler) if scheduler is not None else execute_local(tasks, jobs)
    return sorted(rows, key=lambda r: (list(models).index(r["model"]), list(workloads).index(r["workload"]), r["seed"]))


# --- the summary -------------------------------------------------------------------------------


def summarize(rows: list[dict]) -> list[dict]:
    """One line per (model, workload), in the rows' order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["workload"]), []).append(r)
    out = []
    for (model, wl), rs in groups.items():
        times = [r["emulated_seconds"] for r in rs if r["completed"]]
        out.append(
            {
                "model": model,
                "workload": wl,
                "runs": len(rs),
                "completion_rate": sum(r["completed"] for r in rs) / len(rs),
                "median_seconds": statistics.median(times) if times else None,
                "max_seconds": max(times) if times else None,
                "mean_attempts": statistics.fmean(r["attempts"] for r in rs),
                "signals": sum(r["signals"] for r in rs),
                "forced": sum(r["forced"] for r in rs),
                "runs_with_violations": sum(r["violations"] > 0 for r in rs),
                "violations": sum(r["violations"] for r in rs),
            }
        )
    return out


def format_table(summary: list[dict]) -> str:
    head = (
        "| model | workload | runs | completed | time to complete (median / max) | attempts | "
        "signals | forced | runs with violations |"
    )
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in summary:
        t = "–" if s["median_seconds"] is None else f"{_seconds(s['median_seconds'])} / {_seconds(s['max_seconds'])}"
        lines.append(
            f"| {s['model']} | {s['workload']} | {s['runs']} | {s['completion_rate']:.0%} | {t} | "
            f"{s['mean_attempts']:.1f} | {s['signals']} | {s['forced']} | "
            f"{s['runs_with_violations']} ({s['violations']} in all) |"
        )
    return "\n".join(lines)


def _seconds(s: float) -> str:
    return f"{s * 1e6:.0f} µs" if s < 0.01 else f"{s:.3g} s"


def plot(summary: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(s["model"] for s in summary))
    workloads = list(dict.fromkeys(s["workload"] for s in summary))
    cell = {(s["model"], s["workload"]): s for s in summary}
    panels: list[tuple[str, Callable[[dict], float]]] = [
        ("completed without force", lambda s: 100 * s["completion_rate"]),
        ("median emulated s to complete", lambda s: s["median_seconds"] or 0.0),
        ("runs with oracle violations (%)", lambda s: 100 * s["runs_with_violations"] / s["runs"]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    width = 0.8 / len(models)
    for ax, (title, value) in zip(axes, panels, strict=True):
        for i, model in enumerate(models):
            xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(workloads))]
            ys = [value(cell[(model, w)]) if (model, w) in cell else 0.0 for w in workloads]
            ax.bar(xs, ys, width, label=model)
        ax.set_xticks(range(len(workloads)), workloads, fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    runs = summary[0]["runs"] if summary else 0
    fig.suptitle(f"consistency models, {runs} seeds per cell", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the command -------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="linux,stop_machine,lazy,immediate", help=f"of {', '.join(RUN_MODELS)}")
    p.add_argument("--workloads", default="caller-callee,relay,sleeper", help=f"of {', '.join(WORKLOADS)}")
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per model and workload (default 10)")
    p.add_argument("--json", metavar="FILE", help="write every run as a JSON row")
    p.add_argument("--png", metavar="FILE", help="plot the table")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler to run on (default: local processes)")
    p.add_argument("--jobs", type=int, default=None, help="local processes (default: one per CPU)")


def main_args(args: argparse.Namespace) -> int:
    models = [m for m in args.models.split(",") if m]
    workloads = [w for w in args.workloads.split(",") if w]
    if args.seeds < 1:
        raise KlpemuError("--seeds must be at least 1", EINVAL)
    rows = run_campaign(models, workloads, range(args.seeds), scheduler=args.scheduler, jobs=args.jobs)
    summary = summarize(rows)
    print(format_table(summary))
    for r in rows:
        if r["first_violation"]:
            print(f"\nfirst violation, {r['model']} {r['workload']} seed {r['seed']}:\n{r['first_violation']}")
            break
    if args.json:
        doc = {"models": models, "workloads": workloads, "seeds": args.seeds, "summary": summary, "rows": rows}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.png:
        plot(summary, args.png)
    sys.stdout.flush()
    return 0
