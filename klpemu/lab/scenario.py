"""A lab's machine, fixed by a seed: kernel command line, CPUs, the interleaving seed, modules to
load with their parameters, and the variant's facts (the function to find, the glob to use...).

Stored as JSON in the workspace, so `check` boots exactly what `start` described, and the same
seed always describes the same machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..machine.machine import DEFAULT_CMDLINE, MachineConfig
from ..snapshot import Snapshot
from ..system import System


@dataclass
class Scenario:
    lab: str
    seed: int
    cmdline: str = DEFAULT_CMDLINE
    cpus: int = 2
    machine_seed: int = 0  # the CPU interleaving's seed
    modules: list[str] = field(default_factory=list)  # insmod lines run after boot: "NAME param=value"
    settle_ms: int = 100  # emulated time after loading them, for their threads to reach their sleep
    variant: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls(**data)

    def config(self) -> MachineConfig:
        return MachineConfig(cpus=self.cpus, seed=self.machine_seed, cmdline=self.cmdline)

    def boot(self) -> System:
        """The scenario's machine, booted with its modules loaded: a restore of the first one
        booted so in this process (the machine is deterministic, so the two cannot differ)."""
        key = json.dumps([asdict(self.config()), self.modules, self.settle_ms])
        if key not in _booted:
            _booted[key] = Snapshot.take(self._build())
        return _booted[key].restore_system()

    def _build(self) -> System:
        from .workspace import run_commands

        system = System(self.config()).boot()
        for line in self.modules:
            status, _, err = run_commands(system, f"insmod {line}")
            if status != 0:
                raise RuntimeError(f"scenario {self.lab}/{self.seed}: insmod {line}: {err.strip()}")
        if self.modules:
            run_commands(system, f"sleep {self.settle_ms}ms")
        return system


_booted: dict[str, Snapshot] = {}
