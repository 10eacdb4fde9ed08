"""Guest list_heads from the host: a node whose own pointers were overwritten is still unlinked
cleanly, from its neighbours' pointers (a damaged module's init can write its own struct module)."""

from __future__ import annotations

import pytest
from machine_util import booted_system

from klpemu.kernel.guestlist import NEXT, PREV, GuestList


@pytest.fixture
def ring():
    system = booted_system()
    m = system.machine
    lst = GuestList(m.mem)
    head, *nodes = (m.heap.kzalloc(16) for _ in range(4))
    lst.init(head)
    for node in nodes:
        lst.add_tail(node, head)
    return m, lst, head, nodes


def walk(lst: GuestList, head: int) -> tuple[list[int], list[int]]:
    forwards = list(lst.nodes(head))
    backwards, node = [], lst.prev(head)
    while node != head:
        backwards.append(node)
        node = lst.prev(node)
    return forwards, backwards


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_node_with_damaged_pointers_is_unlinked_from_its_neighbours(ring, which):
    m, lst, head, nodes = ring
    m.mem.write_u64(nodes[which] + NEXT, 0)
    m.mem.write_u64(nodes[which] + PREV, 0xDEAD)
    lst.delete_rcu_from_neighbours(nodes[which], head)
    rest = [n for i, n in enumerate(nodes) if i != which]
    assert walk(lst, head) == (rest, rest[::-1])


def test_a_node_not_on_the_list_changes_nothing(ring):
    m, lst, head, nodes = ring
    stray = m.heap.kzalloc(16)
    lst.delete_rcu_from_neighbours(stray, head)
    assert walk(lst, head) == (nodes, nodes[::-1])
