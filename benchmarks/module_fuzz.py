#!/usr/bin/env python3
"""A campaign of the module fuzzer (klpemu/fuzz.py): damaged copies of the shipped modules, each
loaded into a restored snapshot of one booted machine, and the outcomes counted per mutation.

The table shows, for each kind of damage, how many inputs were refused cleanly, accepted (and
unloaded), crashed the guest (an oops report), hung it, or found a bug: a Python traceback, or a
refusal that left state behind. The JSON adds the wall time per outcome and every finding with
the (seed, index) that replays it: `python -m klpemu.fuzz --replay SEED:INDEX`.

    python benchmarks/module_fuzz.py [--count N] [--seed S] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from klpemu.fuzz import BUGS, format_table, run_campaign

RESULTS = Path(__file__).parent / "results" / "module_fuzz.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=10_000, help="inputs (default 10000)")
    p.add_argument("--seed", type=int, default=1, help="the campaign's seed (default 1)")
    p.add_argument("--start", type=int, default=0, help="the first input's index (to split a campaign)")
    p.add_argument("--json", default=str(RESULTS), help=f"where the results go (default {RESULTS.name})")
    args = p.parse_args()
    summary = run_campaign(args.count, args.seed, args.json, start=args.start)
    print(format_table(summary))
    outcomes = summary["outcomes"]
    assert isinstance(outcomes, dict)
    return 1 if any(outcomes[o] for o in BUGS) else 0


if __name__ == "__main__":
    sys.exit(main())
