#!/usr/bin/env python3
"""The livepatch control plane as a patch and the machine grow (same code as `klpemu bench
control-plane`).

On the scale configuration (the module scale_funcs and its kernel threads): a livepatch of N
functions enabled for N = 1, 10, 100 and 1000, and one pass of the transition's stack check over
T tasks for F patched functions, up to T = 10,000 and F = 1000; wall seconds, text_poke syncs,
and the log-log growth exponents. Writes a JSON file.

    python benchmarks/control_plane.py [--max-functions N] [--max-tasks T] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from klpemu.bench_control_plane import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap, Path(__file__).resolve().parent / "results")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
