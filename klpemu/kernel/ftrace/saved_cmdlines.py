"""saved_cmdlines (kernel/trace/trace.c): while tracing records (an event on, or a function
tracer), the guest saves the comm of each task it switches from and to in a table the host
allocates, so that `trace` names a record's task even after the task is gone. The files
saved_cmdlines and saved_cmdlines_size show and size the table."""

from __future__ import annotations

from errno import EINVAL
from typing import TYPE_CHECKING

from ...abi import EVENT_ENABLED_CMDLINE, SAVED_CMDLINES_PID_MAP, TASK_COMM_LEN
from ...errors import KlpemuError

if TYPE_CHECKING:
    from ...machine.machine import Machine

DEFAULT_CMDLINES = 128  # SAVED_CMDLINES_DEFAULT
PID_MAX_DEFAULT = 0x8000


class SavedCmdlines:
    def __init__(self, machine: Machine):
        self.m = machine
        self.size = DEFAULT_CMDLINES
        self.users = 0  # tracing_start_cmdline_record's count
        self._mem: list[int] = []

    def _table(self):
        return self.m.var("savedcmd")

    def _allocate(self, num: int) -> None:
        """allocate_cmdlines_buffer: empty tables of num entries."""
        m = self.m
        t = self._table()
        t.cmdline_num = 0
        for addr in self._mem:
            m.heap.free(addr)
        pids = m.heap.kzalloc(4 * num)
        comms = m.heap.kzalloc(TASK_COMM_LEN * num)
        self._mem = [pids, comms]
        m.mem.write(t.addr_of("map_pid_to_cmdline"), bytes(4 * SAVED_CMDLINES_PID_MAP))
        t.map_cmdline_to_pid, t.saved_cmdlines = pids, comms
        t.cmdline_idx = 0
        t.cmdline_num = num

    def start(self) -> None:
        """tracing_start_cmdline_record."""
        self.users += 1
        if self.users == 1:
            if not self._mem:
                self._allocate(self.size)
            self._switch(True)

    def stop(self) -> None:
        """tracing_stop_cmdline_record."""
        self.users -= 1
        if self.users == 0:
            self._switch(False)

    def _switch(self, on: bool) -> None:
        f = self.m.var("event_sched_switch")
        f.enabled = (int(f.enabled) & ~EVENT_ENABLED_CMDLINE) | (EVENT_ENABLED_CMDLINE if on else 0)

    def saved(self) -> list[tuple[int, str]]:
        """(pid, comm) of each saved slot, in slot order."""
        if not self._mem:
            return []
        t = self._table()
        num = int(t.cmdline_num)
        pids = self.m.mem.read(self._mem[0], 4 * num)
        comms = self.m.mem.read(self._mem[1], TASK_COMM_LEN * num)
        out = []
        for i in range(num):
            pid = int.from_bytes(pids[4 * i : 4 * i + 4], "little", signed=True)
            if pid > 0:
                raw = comms[TASK_COMM_LEN * i : TASK_COMM_LEN * (i + 1)]
                out.append((pid, raw.split(b"\0", 1)[0].decode(errors="replace")))
        return out

    def comms(self) -> dict[int, str]:
        return dict(self.saved())

    def text(self) -> str:
        return "".join(f"{pid} {comm}\n" for pid, comm in self.saved())

    def size_text(self) -> str:
        return f"{self.size}\n"

    def write_size(self, data: str) -> None:
        """saved_cmdlines_size: 1 to PID_MAX_DEFAULT entries; the saved ones are dropped."""
        try:
            n = int(data.strip(), 0)
        except ValueError:
            raise KlpemuError(f"saved_cmdlines_size: {data.strip()!r} is not a number", EINVAL) from None
        if not 1 <= n <= PID_MAX_DEFAULT:
            raise KlpemuError("saved_cmdlines_size: out of range", EINVAL)
        self.size = n
        if self._mem:
            self._allocate(n)
