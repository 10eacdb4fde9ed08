#!/usr/bin/env python3
"""The livepatch control plane as a patch grows (same code as `klpemu bench control-plane`).

A livepatch of N functions enabled for N = 1, 10, 100 and every uniquely named traceable
function of the image, and the transition's stack check over the tasks there are for F patched
functions; wall seconds, text_poke syncs, and the log-log growth exponent. Writes a JSON file.

    python benchmarks/control_plane.py [--json FILE]
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
