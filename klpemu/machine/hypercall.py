"""The hypercall table: the numbered crossings from the guest to the host.

The guest makes a hypercall with one `out` to HYPERCALL_PORT, its number in rax (the numbers are
the firmware's enum klpemu_hypercall, read from DWARF). Each number has one owner, which
registers it once; tests and benchmarks that watch or stand in for a handler do it for a while,
through `override` and `observe`, and the table is as before when they end.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from ..errors import KlpemuError

Handler = Callable[..., int | None]


class HypercallTable(Mapping[int, Handler]):
    def __init__(self, numbers: Mapping[str, int]):
        self._numbers = numbers  # the enumerators, by name
        self._handlers: dict[int, Handler] = {}
        self._observers: list[Callable[[int], None]] = []

    def number(self, name: str) -> int:
        try:
            return self._numbers[name]
        except KeyError:
            raise KlpemuError(f"no hypercall {name} in the image's debug info", errno.EINVAL) from None

    def register(self, name: str, handler: Handler) -> None:
        """Serve hypercall `name` (HC_*) with handler; a number has one owner."""
        nr = self.number(name)
        if nr in self._handlers:
            raise KlpemuError(f"hypercall {name} is already served", errno.EEXIST)
        self._handlers[nr] = handler

    def dispatch(self, nr: int, args: list[int]) -> int | None:
        for observe in self._observers:
            observe(nr)
        return self._handlers[nr](*args)

    @contextmanager
    def override(self, nr: int, handler: Handler) -> Iterator[None]:
        """Serve nr with handler while the block runs (a test standing in for the owner)."""
        saved = self._handlers.get(nr)
        self._handlers[nr] = handler
        try:
            yield
        finally:
            if saved is None:
                del self._handlers[nr]
            else:
                self._handlers[nr] = saved

    @contextmanager
    def observe(self, observer: Callable[[int], None]) -> Iterator[None]:
        """Call observer(nr) before each hypercall the block makes (counting, tracing)."""
        self._observers.append(observer)
        try:
            yield
        finally:
            self._observers.remove(observer)

    def __getitem__(self, nr: int) -> Handler:
        return self._handlers[nr]

    def __iter__(self) -> Iterator[int]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
