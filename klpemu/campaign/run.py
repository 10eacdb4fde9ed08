"""One run of a campaign: a workload patched under one consistency model, from one seed.

Every run starts from one snapshot of the booted default machine, taken once per process. The
seed reseeds the CPU interleaving and picks how long the workload, set up with the oracle already
watching, runs before the patch comes, so that seeds meet it in different phases. The patch is
loaded as `kpatch load` would (an insmod refused with -EBUSY is retried 2 s later, 5 times in
all); a transition not complete after WAIT_BEFORE_FORCE is forced. The oracle watches until
AFTER_NS past the end.
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass, field
from errno import EBUSY

from ..errors import KlpemuError
from ..kpatch import MAX_LOAD_ATTEMPTS, RETRY_INTERVAL
from ..oracle import ConsistencyOracle
from ..shell import Shell
from ..snapshot import Snapshot
from ..system import System
from .workloads import workload

SEC = 1_000_000_000
SETTLE_NS = 100_000_000  # the workload runs at least this long before the patch
MAX_PHASE_NS = 50_000_000  # and up to this much more, by seed
WAIT_BEFORE_FORCE = 20 * SEC  # past the fake signals of the 15th retry
FORCE_WAIT = 3 * SEC
AFTER_NS = 200_000_000

# The models a campaign can name: the four, and linux with its stack check switched off (a
# debug switch, to show the oracle catches what that check prevents).
RUN_MODELS = ("linux", "stop_machine", "lazy", "immediate", "linux-nocheck")


@dataclass
class RunResult:
    model: str
    workload: str
    seed: int
    completed: bool  # the patch is in place for every task, without force
    emulated_seconds: float | None  # from the first insmod to the end of the transition
    attempts: int  # insmods (stop_machine) or transition attempts (the others)
    signals: bool  # the fake signals of the 15th retry were sent
    forced: bool
    violations: int
    mixed: int | None  # what the workload itself counted as mixed executions
    oracle_entries: int
    first_violation: str = ""
    violation_rules: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


_base: list[Snapshot] = []  # the booted machine, once per process


def _booted() -> System:
    if not _base:
        _base.append(Snapshot.take(System().boot()))
    system = _base[0].restore()
    assert isinstance(system, System)
    return system


def run_one(model: str, workload_name: str, seed: int) -> dict:
    """One run; its result as a JSON-ready dict (what executors send back)."""
    if model not in RUN_MODELS:
        raise KlpemuError(f"unknown model '{model}' (one of {', '.join(RUN_MODELS)})")
    w = workload(workload_name)
    system = _booted()
    m = system.machine
    lp = m.kernel.livepatch
    if model == "linux-nocheck":
        lp.set_consistency_model("linux", stack_check=False)
    else:
        lp.set_consistency_model(model)
    rng = random.Random(seed)
    m.rng = random.Random(rng.getrandbits(64))
    # The oracle watches from before the workload starts: it sees every activation from its entry.
    oracle = ConsistencyOracle(m, list(w.pairs))
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(system, out=out, err=err)
    if sh.run_line(w.setup):
        raise KlpemuError(f"workload {w.name}: setup failed: {err.getvalue().strip()}")
    m.run(SETTLE_NS + rng.randrange(MAX_PHASE_NS))
    tr = lp.transition
    t0 = m.now
    attempts = 0
    loaded = False
    for attempt in range(1, MAX_LOAD_ATTEMPTS + 1):
        attempts = attempt
        try:
            m.kernel.modules.load(_module_path(w.patch.split()[0]), w.patch.split()[1:])
            loaded = True
            break
        except KlpemuError as e:
            if e.errno != EBUSY:
                raise
        m.run(RETRY_INTERVAL * SEC)
    signals = forced = False
    done_ns = None
    if loaded:
        attempts = 1
        if tr.patch is not None:
            m.run_until(lambda: tr.patch is None, WAIT_BEFORE_FORCE)
        attempts = tr.signals_cnt + 1 if model != "immediate" else 1
        signals = tr.signals_cnt > 15
        if tr.patch is not None:
            forced = True
            sh.run_line(f"echo 1 > /sys/kernel/livepatch/{w.patch_name}/force")
            m.run_until(lambda: tr.patch is None, FORCE_WAIT)
        if tr.patch is None:
            done_ns = m.now
        if model == "stop_machine":
            attempts = attempt
    m.run(AFTER_NS)
    oracle.detach()
    mixed = None
    if w.counter:
        sh.run_line(f"cat {w.counter}")
        mixed = int(out.getvalue().split()[-1])
    completed = done_ns is not None and not forced
    return RunResult(
        model=model,
        workload=w.name,
        seed=seed,
        completed=completed,
        emulated_seconds=round((done_ns - t0) / SEC, 6) if done_ns is not None else None,
        attempts=attempts,
        signals=signals,
        forced=forced,
        violations=len(oracle.violations),
        mixed=mixed,
        oracle_entries=oracle.entries,
        first_violation=oracle.violations[0].format() if oracle.violations else "",
        violation_rules=sorted({v.rule for v in oracle.violations}),
    ).as_dict()


def _module_path(name: str):
    from ..kernel.module import shipped_module

    path = shipped_module(name)
    if path is None:
        raise KlpemuError(f"no shipped module {name}")
    return path
