"""kmalloc and kfree: the guest's heap, kept by the host; a bad kfree stops the machine with an oops."""

from __future__ import annotations

import pytest
from machine_util import make_machine

from klpemu.machine.machine import GuestStopped

# linux/gfp.h
__GFP_ZERO = 0x100
GFP_KERNEL = 0xCC0
ZERO_SIZE_PTR = 16


@pytest.fixture
def m():
    return make_machine()


def test_kzalloc_zeroes_and_kmalloc_hands_out_what_kfree_left(m):
    a = m.call("kmalloc", 64, GFP_KERNEL)
    assert m.kernel.slab.objects[a] == 64
    m.mem.write(a, b"\x5a" * 64)
    m.call("kfree", a)
    assert a not in m.kernel.slab.objects
    assert m.mem.read(a, 64) == b"\x6b" * 64  # poisoned on free, as SLUB's POISON_FREE

    again = m.call("kmalloc", 64, GFP_KERNEL)
    assert again == a  # the freed object is reused
    assert m.mem.read(again, 64) == b"\x6b" * 64  # kmalloc does not clear it...
    m.call("kfree", again)
    zeroed = m.call("kmalloc", 64, GFP_KERNEL | __GFP_ZERO)
    assert zeroed == a and m.mem.read(zeroed, 64) == bytes(64)  # ...__GFP_ZERO does


def test_kmalloc_zero_bytes_and_kfree_null_are_no_ops(m):
    before = dict(m.kernel.slab.objects)
    assert m.call("kmalloc", 0, GFP_KERNEL) == ZERO_SIZE_PTR
    m.call("kfree", 0)
    m.call("kfree", ZERO_SIZE_PTR)
    assert m.kernel.slab.objects == before and not m.stopped


def test_kmalloc_beyond_the_heap_returns_null(m):
    assert m.call("kmalloc", 64 << 20, GFP_KERNEL) == 0
    assert not m.stopped


def bad_kfree(m, ptr: int) -> str:
    with pytest.raises(GuestStopped):
        m.call("kfree", ptr)
    assert m.stopped
    assert any(line.startswith("RIP: 0010:kfree+") for line in m.oops.lines)  # stopped in kfree itself
    return m.oops.lines[0]


def test_kfree_of_garbage_stops_the_machine(m):
    assert bad_kfree(m, 0xFFFFC90000123458) == ("BUG: kfree() of 0xffffc90000123458: not an object kmalloc() returned")


def test_kfree_twice_stops_the_machine(m):
    a = m.call("kmalloc", 32, GFP_KERNEL)
    m.call("kfree", a)
    assert bad_kfree(m, a) == f"BUG: double kfree() of 0x{a:x}: the object was already freed"


def test_kfree_of_an_interior_pointer_names_the_object(m):
    a = m.call("kmalloc", 48, GFP_KERNEL)
    assert bad_kfree(m, a + 8) == (
        f"BUG: kfree() of 0x{a + 8:x}: not the start of an object (inside the 48-byte object at 0x{a:x})"
    )
