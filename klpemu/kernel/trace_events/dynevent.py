"""kprobe_events and dynamic_events (kernel/trace/trace_dynevent.c): a write is a list of
commands, one a line, `#` starting a comment; each is run in turn and the first failure ends
the write, with what went before kept. Opening either file with O_TRUNC (`>`) first deletes
every event of its kind, or fails with EBUSY and deletes none if one is in use."""

from __future__ import annotations

from collections.abc import Callable
from errno import EINVAL, ENOENT
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from .trace_kprobe import Cancelled

if TYPE_CHECKING:
    from .trace_kprobe import TraceKprobes


def commands(data: str) -> list[list[str]]:
    """trace_parse_run_command: each line without its comment, split on whitespace; blank
    lines are skipped."""
    out = []
    for line in data.split("\n"):
        line = line.split("#", 1)[0]
        argv = line.split()
        if argv:
            out.append(argv)
    return out


class DynamicEvents:
    def __init__(self, kprobes: TraceKprobes, reset: Callable[[], None]):
        self.kprobes = kprobes
        # tracing_reset_all_online_cpus: a deletion empties the ring, whose records of the
        # deleted events nobody could print any more.
        self.reset = reset

    def _run(self, argv: list[str]) -> None:
        if argv[0].startswith("-"):
            self._release(argv)
            return
        try:
            self.kprobes.create(argv)
        except Cancelled as e:
            # No other dynamic event type here takes what kprobes cancel.
            raise KlpemuError(str(e), EINVAL) from None

    def _release(self, argv: list[str]) -> None:
        """dyn_event_release: `-:[GRP/]EVENT [PLACE [ARGS]]`."""
        if argv[0][1:2] != ":":
            raise KlpemuError(f"{argv[0]}: a deletion is -:[GROUP/]EVENT", EINVAL)
        target = argv[0][2:]
        group = None
        if "/" in target:
            group, target = target.split("/", 1)
        if group is None and not target:
            raise KlpemuError("no event to delete", EINVAL)
        matches = [
            e
            for e in list(self.kprobes.events.values())
            if (not target or e.name == target)
            and (group is None or e.group == group)
            and any(self.kprobes.probe_matches(tk, argv[1:]) for tk in e.probes)
        ]
        if not matches:
            raise KlpemuError(f"{argv[0][2:]}: no such event", ENOENT)
        try:
            for e in matches:
                self.kprobes.remove_probes(e, argv[1:])
        finally:
            self.reset()

    def write(self, data: str, *, append: bool) -> None:
        """kprobe_events and dynamic_events alike: kprobe events are the only dynamic events
        this kernel has."""
        if not append:
            self.kprobes.remove_all()
            self.reset()
        for argv in commands(data):
            self._run(argv)

    def text(self) -> str:
        return self.kprobes.definitions()
