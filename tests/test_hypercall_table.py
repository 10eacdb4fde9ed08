"""The hypercall table: one owner per number, registered once; tests and benchmarks watch or
stand in for a while, and the table is as before when they end."""

from __future__ import annotations

import pytest
from machine_util import booted_system

from klpemu.errors import KlpemuError
from klpemu.machine.console import Console


@pytest.fixture
def m():
    return booted_system().machine


def test_a_second_owner_of_a_number_is_refused(m):
    with pytest.raises(KlpemuError, match="HC_KMALLOC is already served") as e:
        m.hypercalls.register("HC_KMALLOC", lambda *a: 0)
    assert e.value.errno == 17  # EEXIST


def test_a_name_the_image_does_not_have_is_refused(m):
    with pytest.raises(KlpemuError, match="no hypercall HC_NOPE") as e:
        m.hypercalls.register("HC_NOPE", lambda *a: 0)
    assert e.value.errno == 22  # EINVAL


def test_every_number_the_firmware_makes_is_served(m):
    numbers = {name: nr for name, nr in m.types.enums.items() if name.startswith("HC_") and name != "HC_NR"}
    # HC_HOSTCALL_RETURN ends a host call by its return address, without an out instruction.
    assert {name for name, nr in numbers.items() if nr not in m.hypercalls} == {"HC_HOSTCALL_RETURN"}


def test_override_and_observe_leave_the_table_as_it_was(m):
    ipi = m.hypercalls.number("HC_SEND_IPI")  # the console wakes the shell's CPU with one
    owner = m.hypercalls[ipi]
    seen: list[int] = []
    stood_in: list[tuple[int, ...]] = []

    def stand_in(*args: int) -> int | None:
        stood_in.append(args)
        return owner(*args)

    with m.hypercalls.observe(seen.append), m.hypercalls.override(ipi, stand_in):
        assert Console(m).read_file("/proc/cmdline") == m.config.cmdline + "\n"
    assert ipi in seen and stood_in
    assert m.hypercalls[ipi] is owner
    seen.clear()
    Console(m).read_file("/proc/cmdline")
    assert seen == []  # the observer is gone
