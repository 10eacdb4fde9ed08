"""Livepatches for the handler-overhead benchmark (klpemu/bench.py): built with KlpBuilder,
enabled through the livepatch core, their transitions left open or run to the end on the
machine, and taken off again.

The configurations need klp_ftrace_handler in each of its cases, which depend on the state of
the transition and of the calling task: a host call (m.call) runs as the task current on CPU
0. Right after an enable that task is still unpatched, since a running task cannot switch;
once the machine runs, it switches in the idle loop, and the transition completes at the next
once-a-second retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from errno import EINVAL, EIO, ETIMEDOUT
from typing import TYPE_CHECKING

from .errors import KlpemuError
from .kernel.livepatch.builder import KlpBuilder
from .kernel.livepatch.transition import PATCHED, UNPATCHED
from .kernel.tasks import Task

if TYPE_CHECKING:
    from .machine.machine import Machine
    from .machine.types import Pointer

SETTLE_NS = 5_000_000_000  # a transition with no blocker completes at the first retry, after 1 s
STATE_NAMES = {UNPATCHED: "unpatched", PATCHED: "patched"}


class BenchLivepatches:
    """The patches one configuration stacks on a function; `session` takes them all off again."""

    def __init__(self, machine: Machine):
        self.m = machine
        self.lp = machine.kernel.livepatch
        self.builder = KlpBuilder(machine.kernel.livepatch)
        self.patches: list[Pointer] = []  # enabled by this session, oldest first

    # --- the transition ------------------------------------------------------------------------

    def settle(self) -> None:
        """Run the machine until no patch is in transition."""
        transition = self.lp.transition
        if transition.patch is None:
            return
        if not self.m.run(SETTLE_NS, until=lambda: transition.patch is None):
            raise KlpemuError(
                f"the transition of '{self.lp.name(transition.patch)}' did not complete: {transition.blockers()}",
                ETIMEDOUT,
            )

    def current(self, cpu: int = 0) -> Task:
        """The task a host call on that CPU runs as."""
        return Task(self.m, self.m.pcpu(cpu).current_task)

    def switch_current(self, cpu: int = 0) -> None:
        """Run the machine until the task current on the CPU has switched to the transition's
        target, with the transition still open."""
        transition = self.lp.transition
        if transition.patch is None:
            raise KlpemuError("no patch is in transition", EINVAL)
        target = transition.target
        if not self.m.run(SETTLE_NS, until=lambda: self.current(cpu).patch_state == target):
            raise KlpemuError(f"the task on cpu{cpu} did not switch", ETIMEDOUT)
        if transition.patch is None:
            raise KlpemuError("the transition completed before the calling task could be caught switched", EIO)

    def state(self, cpu: int = 0) -> str:
        """The transition and the calling task's place in it, as the path description says it."""
        transition = self.lp.transition
        if transition.patch is None:
            return "no transition"
        task = self.current(cpu)
        return (
            f"'{self.lp.name(transition.patch)}' in transition, calling task "
            f"{task.view.comm.decode()} {STATE_NAMES.get(task.patch_state, task.patch_state)}"
        )

    # --- patches -------------------------------------------------------------------------------

    def enable(self, name: str, old: str, new: str, *, replace: bool = False, settle: bool = True) -> Pointer:
        """A one-function patch of vmlinux's `old` by `new`, enabled; by default its transition
        is run to the end."""
        b = self.builder
        patch = b.patch(name, [b.object(None, [b.func(old, new)])], replace=replace)
        self.lp.enable(patch)
        self.patches.append(patch)
        if settle:
            self.settle()
        return patch

    def func_stack(self, old: str) -> list[str]:
        """The functions on old's func_stack, top first, by what each one runs."""
        m = self.m
        layer = self.lp.patch_layer
        out = []
        for func in layer.func_stack(m.image.addr(old)):
            f = m.struct("klp_func", func)
            if f.nop:
                out.append(f"nop ({old})")
                continue
            new = m.image.function_at(f.new_func)
            assert new is not None  # each new_func here is a function of the image: enable() takes it by name
            out.append(new.name)
        return out

    @contextmanager
    def session(self) -> Iterator[BenchLivepatches]:
        """On the way out: the open transition completes, then every patch still installed is
        disabled, newest first, each transition run to the end."""
        try:
            yield self
        finally:
            self.settle()
            for patch in reversed(self.patches):
                if patch in self.lp.patches:
                    self.lp.disable(patch)
                    self.settle()
            self.patches.clear()
