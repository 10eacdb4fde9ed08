"""Teaching labs: seeded exercises on ftrace-based patching, each checked against the machine the
student left. One module per lab; LABS lists them in their order."""

from __future__ import annotations

from .base import Lab
from .consistency import ConsistencyLab
from .fentry import FentryLab
from .first_patch import FirstPatchLab
from .function_tracer import FunctionTracerLab
from .klp_build import KlpBuildLab
from .kprobes import KprobesLab
from .ops_cost import OpsCostLab
from .replace import ReplaceLab
from .shadow import ShadowLab
from .workspace import LabError

LABS: list[Lab] = [
    FentryLab(),
    FunctionTracerLab(),
    OpsCostLab(),
    FirstPatchLab(),
    ConsistencyLab(),
    ShadowLab(),
    ReplaceLab(),
    KprobesLab(),
    KlpBuildLab(),
]


def get_lab(name: str) -> Lab:
    """A lab by its id or its number."""
    for lab in LABS:
        if name in (lab.id, str(lab.number)):
            return lab
    known = ", ".join(lab.id for lab in LABS)
    raise LabError(f"no lab '{name}' (the labs: {known}; 'klpemu lab list')")
