"""Shared fixtures for the machine tests.

`machine` is one booted machine per test module, run until the long-lived tasks are asleep;
tests that use it only read it. Tests that run, corrupt or crash a machine build their own
with `make_machine`. Booted machines are restores of one snapshot per configuration
(machine_util.py), so a test pays for a boot only the first time its configuration is used.
"""

from __future__ import annotations

import pytest
from machine_util import make_machine as _make

from klpemu.machine.image import KernelImage
from klpemu.machine.machine import Machine, shipped_image
from klpemu.machine.types import TypeInfo


@pytest.fixture(scope="session")
def image() -> KernelImage:
    return KernelImage(shipped_image())


@pytest.fixture(scope="session")
def types(image) -> TypeInfo:
    return TypeInfo(image.dwarf)


@pytest.fixture
def make_machine():
    """A factory: make_machine("kbusy=1", cpus=1, seed=3, settle_tasks=True, watchdog_thresh_ns=...)."""
    return _make


@pytest.fixture(scope="module")
def machine() -> Machine:
    """A booted default machine (2 CPUs, seed 0) with its sleepers asleep. Read it, do not change it."""
    return _make(settle_tasks=True)


@pytest.fixture
def klp(tmp_path, monkeypatch):
    """A booted System driven as Linux's livepatch selftests drive a kernel (tests/klp_selftest.py),
    from a working directory whose test_modules/ holds the shipped modules."""
    from klp_selftest import KlpSelftest, make_workdir

    monkeypatch.chdir(make_workdir(tmp_path))
    return KlpSelftest()
