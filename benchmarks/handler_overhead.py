#!/usr/bin/env python3
"""The handler overhead of each ftrace, livepatch and kprobe configuration, beside bare Unicorn
(same code as `klpemu bench`).

One traced leaf (bench_leaf) called N times from a notrace loop (bench_call_loop), under
nineteen configurations: (a) no site, (b) a NOP5 site, (c) one ops on its own trampoline, (d)
the same ops through the shared ftrace_caller, (e) one SAVE_REGS ops, (f) R relevant + I
irrelevant ops through the list function, (g) a native redirect, (h) the same redirect by a
Python ops, (i) no ftrace at all, a Unicorn code hook that writes RIP; then livepatches: (j)
no transition, (k) in transition with the calling task unpatched and a patch below, (l) the
same with none below, (m) an atomic-replace nop on top, (n) two patches stacked; and probes:
(o) a kprobe at the fentry site, (p) with a post handler, (q) an int3 kprobe in the body,
(r) a kretprobe, (s) a kretprobe beside a livepatch. The ftrace axes are those of Linux's
samples/ftrace/ftrace-ops.c; klpemu/bench.py says what each knob does and how each number is
taken.

For each: exact guest instructions per call (counted, not timed), wall ns per call and calls/s
on the machine's Uc (m.call), and the ratio to bare Unicorn running a copy of the same memory
in the same run. Writes a JSON file and a PNG plot.

    python benchmarks/handler_overhead.py [--calls N] [--repeat R] [--json FILE] [--plot FILE.png]
                                          [--relevant R] [--irrelevant I]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from klpemu.bench import add_arguments, run
from klpemu.errors import KlpemuError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap, Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except KlpemuError as e:
        ap.error(str(e))


if __name__ == "__main__":
    sys.exit(main())
