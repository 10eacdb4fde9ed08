#!/usr/bin/env python3
"""Guest instructions per second of the machine on a call loop, beside bare Unicorn counted and
uncounted (klpemu/bench_speed.py says how each row is measured; `klpemu bench` prints the same).

    python benchmarks/machine_speed.py [--calls N] [--repeat R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import unicorn

from klpemu.bench_speed import guest_speed, report
from klpemu.machine.image import KernelImage
from klpemu.machine.machine import shipped_image

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "machine_speed.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000, help="loop iterations per run (default 1000000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per configuration; the best counts (default 5)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"result file (default {DEFAULT_JSON})")
    args = ap.parse_args(argv)
    if args.calls < 1 or args.repeat < 1:
        ap.error("--calls and --repeat must be positive")
    result = guest_speed(KernelImage(shipped_image()), args.calls, args.repeat)
    print(report(result))
    doc = {"unicorn": unicorn.__version__, "python": platform.python_version(), "platform": platform.platform()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**doc, **result}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
