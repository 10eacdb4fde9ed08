"""struct list_head in guest memory, manipulated by the host as list.h does in the guest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..abi import LIST_HEAD_OFFSET

if TYPE_CHECKING:
    from ..machine.memory import GuestMemory

NEXT, PREV = LIST_HEAD_OFFSET["next"], LIST_HEAD_OFFSET["prev"]


class GuestList:
    """Operations on lists whose heads and nodes live in guest memory. The one 8-byte store
    that publishes a node comes last, so machine code walking the list sees it whole."""

    def __init__(self, mem: GuestMemory):
        self.mem = mem

    def init(self, head: int) -> None:
        self.mem.write_u64(head + NEXT, head)
        self.mem.write_u64(head + PREV, head)

    def next(self, node: int) -> int:
        return self.mem.read_u64(node + NEXT)

    def prev(self, node: int) -> int:
        return self.mem.read_u64(node + PREV)

    def _link(self, node: int, prev: int, nxt: int) -> None:
        self.mem.write_u64(node + NEXT, nxt)
        self.mem.write_u64(node + PREV, prev)
        self.mem.write_u64(nxt + PREV, node)
        self.mem.write_u64(prev + NEXT, node)  # publish

    def add(self, node: int, head: int) -> None:
        """list_add: at the head."""
        self._link(node, head, self.next(head))

    def add_tail(self, node: int, head: int) -> None:
        self._link(node, self.prev(head), head)

    def delete(self, node: int) -> None:
        """list_del_init."""
        nxt, prev = self.next(node), self.prev(node)
        self.mem.write_u64(nxt + PREV, prev)
        self.mem.write_u64(prev + NEXT, nxt)
        self.init(node)

    def delete_rcu(self, node: int) -> None:
        """list_del_rcu: unlinked, with its next pointer kept for a reader standing on it."""
        nxt, prev = self.next(node), self.prev(node)
        self.mem.write_u64(nxt + PREV, prev)
        self.mem.write_u64(prev + NEXT, nxt)

    def delete_rcu_from_neighbours(self, node: int, head: int, limit: int = 1 << 16) -> None:
        """list_del_rcu without reading node's own pointers, which may be damaged: its
        predecessor is found walking forwards from head, its successor walking backwards."""
        prev = head
        for other in self.nodes(head, limit):
            if other == node:
                break
            prev = other
        else:
            return  # not on the list
        succ = head
        for _ in range(limit):
            before = self.prev(succ)
            if before == node:
                break
            if before == prev:  # back at its predecessor: nobody points back at node
                break
            succ = before
        self.mem.write_u64(succ + PREV, prev)
        self.mem.write_u64(prev + NEXT, succ)

    def empty(self, head: int) -> bool:
        return self.next(head) == head

    def nodes(self, head: int, limit: int = 1 << 16) -> Iterator[int]:
        node = self.next(head)
        while node != head and limit:
            yield node
            node = self.next(node)
            limit -= 1
