"""Running a livepatch module's callbacks (guest code) from the core (host code).

The core's operations are generators that yield (function, argument) for each callback they need
and receive its return value. From host context (a sysfs write, the retry work, a module load)
the callback runs as a host call. From inside a hypercall (klp_enable_patch in a module's init)
the emulator cannot start the guest again, so the hypercall returns KLP_RUN_CALLBACK with the
request in klp_call_request; the guest makes the call itself and hands the result back with
HC_KLP_CALLBACK_DONE, which resumes the generator. Either way the callback runs in the guest,
in the order the kernel would run it.
"""

from __future__ import annotations

from collections.abc import Generator
from errno import EBUSY, EINVAL
from typing import TYPE_CHECKING

from ...abi import KLP_RUN_CALLBACK  # not an errno: the guest is asked to run klp_call_request
from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.machine import Machine

CallbackGen = Generator[tuple[int, int], int | None, int]


def as_int(value: int) -> int:
    """A callback's `int` return value, from the 64-bit rax."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class GuestCalls:
    def __init__(self, machine: Machine):
        self.m = machine
        self._pending: CallbackGen | None = None
        self._running = 0  # operations being run from host context
        machine.hypercalls.register("HC_KLP_CALLBACK_DONE", self._hc_done)

    @property
    def busy(self) -> bool:
        """An operation is under way (what holding klp_mutex means in Linux)."""
        return self._pending is not None or self._running > 0

    def run(self, gen: CallbackGen):
        """From host context: every callback as a host call, on CPU 0 in its current task."""
        value = None
        self._running += 1
        try:
            while True:
                try:
                    fn, arg = gen.send(value)
                except StopIteration as stop:
                    return stop.value
                value = self.m.call(fn, arg)
        finally:
            self._running -= 1

    def start_in_guest(self, gen: CallbackGen) -> int:
        """From a hypercall: the value the hypercall returns (KLP_RUN_CALLBACK or the result)."""
        if self._pending is not None:
            raise KlpemuError("a livepatch operation is already waiting for a callback", EBUSY)
        self._pending = gen
        return self._advance(None)

    def _hc_done(self, ret: int, *_args) -> int:
        if self._pending is None:
            return -EINVAL
        return self._advance(ret)

    def _advance(self, value: int | None) -> int:
        assert self._pending is not None
        try:
            fn, arg = self._pending.send(value)
        except StopIteration as stop:
            self._pending = None
            return stop.value
        except BaseException:
            self._pending = None
            raise
        req = self.m.var("klp_call_request")
        req.fn = fn
        req.arg = arg
        return KLP_RUN_CALLBACK
