"""set_ftrace_pid and set_ftrace_notrace_pid (kernel/trace/ftrace.c, FTRACE_OPS_FL_PID).

The lists live in guest memory as sorted arrays; while either holds a pid, every ops with
FTRACE_OPS_FL_PID (the function tracer's) has ftrace_pid_func in its func and its own handler in
saved_func, so the check runs in the guest on each call (kernel/trace/ftrace_pid.c), and an ops
pays nothing for it while both lists are empty.
"""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from .ops import FL

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .core import Ftrace
    from .ops import FtraceOps

PID_MAX = 1 << 22  # PID_MAX_LIMIT on 64-bit: a larger pid is refused


def parse_pids(text: str) -> set[int]:
    """trace_pid_write: whitespace-separated decimal pids."""
    pids = set()
    for word in text.split():
        if not word.isdigit() or int(word) >= PID_MAX:
            raise KlpemuError(f"{word}: not a pid", EINVAL)
        pids.add(int(word))
    return pids


class FtracePid:
    def __init__(self, machine: Machine, ftrace: Ftrace):
        self.m = machine
        self.ft = ftrace
        self.pids: set[int] = set()
        self.notrace_pids: set[int] = set()

    def write(self, text: str, *, append: bool, notrace: bool = False) -> None:
        pids = parse_pids(text)
        current = self.notrace_pids if notrace else self.pids
        new = current | pids if append else pids
        if notrace:
            self.notrace_pids = new
        else:
            self.pids = new
        self._write_list("ftrace_notrace_pids" if notrace else "ftrace_pids", new)
        self._update_pid_func()

    def text(self, *, notrace: bool = False) -> str:
        pids = self.notrace_pids if notrace else self.pids
        if not pids:
            return "no pid\n"
        return "".join(f"{pid}\n" for pid in sorted(pids))

    def _write_list(self, var: str, pids: set[int]) -> None:
        m = self.m
        slot = m.var_addr(var)
        old = m.mem.read_u64(slot)
        new = 0
        if pids:
            pids_at = m.types.offsetof("trace_pid_list", "pids")
            new = m.heap.kzalloc(pids_at + 4 * len(pids))
            m.mem.write_u64(new, len(pids))
            m.mem.write(new + pids_at, b"".join(p.to_bytes(4, "little") for p in sorted(pids)))
        m.mem.write_u64(slot, new)  # one store: a CPU sees the old list or the new
        if old:
            m.heap.free(old)

    def set_func(self, ops: FtraceOps, func: int) -> None:
        """Give a PID ops a new handler (a tracer changing what its ops calls): into saved_func
        while ftrace_pid_func stands in front of it. The caller re-registers a registered ops."""
        view = ops.struct
        if view.func == self.m.image.addr("ftrace_pid_func"):
            view.saved_func = func
        else:
            view.func = func

    def _update_pid_func(self) -> None:
        """ftrace_update_pid_func: the PID ops call ftrace_pid_func while a list is set. A
        registered one is registered again, so its trampoline calls the new func."""
        pid_func = self.m.image.addr("ftrace_pid_func")
        filtering = bool(self.pids or self.notrace_pids)
        for ops in self.ft.known_ops():
            view = ops.struct
            if not self.ft.flags(ops) & FL["PID"] or (view.func == pid_func) == filtering:
                continue
            registered = ops in self.ft.ops
            with self.ft.batched_update():
                if registered:
                    self.ft.unregister(ops)
                if filtering:
                    view.saved_func = view.func
                    view.func = pid_func
                else:
                    view.func = view.saved_func
                    view.saved_func = 0
                if registered:
                    self.ft.register(ops)
