"""The console device: how the shell asks the guest's `sh` process to read or write a file.

The host writes a request into the guest's console_mbox and raises the console interrupt;
`sh`, asleep in the console_wait system call, wakes and does the work with ordinary system
calls (open, read, write), so a `cat /proc/cmdline` runs in a real task like Linux's `cat`.
insmod and rmmod go the same way: sh calls init_module or delete_module, so a module's init
and exit run in sh's context.
"""

from __future__ import annotations

from errno import E2BIG, EIO, ENAMETOOLONG, ETIMEDOUT
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .kstr import kbytes, kstr

if TYPE_CHECKING:
    from .machine import Machine

NS_PER_SEC = 1_000_000_000


class Console:
    def __init__(self, machine: Machine):
        self.m = machine

    def _request(self, op: str, path: str, data: bytes, timeout_ns: int) -> bytes:
        status, out = self._exchange(op, path, data, timeout_ns)
        if status < 0:
            raise KlpemuError(path, -status)
        return out

    def _exchange(self, op: str, path: str, data: bytes, timeout_ns: int, what: str = "") -> tuple[int, bytes]:
        """One request: (the status sh reported, what it wrote to stdout)."""
        what = what or path
        m = self.m
        m.check_running()
        mbox = m.var("console_mbox")
        req = mbox.req
        path_b = kbytes(path)
        path_max = req.type.member("path")[1].size
        data_max = req.type.member("data")[1].size
        if len(path_b) >= path_max:
            raise KlpemuError(f"{path}: File name too long", ENAMETOOLONG)
        if len(data) > data_max:
            raise KlpemuError(f"write of {len(data)} bytes is more than the console carries ({data_max})", E2BIG)
        req.op = m.types.enum(op)
        req.len = len(data)
        m.mem.write(req.addr_of("path"), path_b + b"\0")
        m.mem.write(req.addr_of("data"), data)
        mbox.done = 0
        mbox.pending = 1
        m.raise_irq(0, m.types.enum("CONSOLE_VECTOR"))
        if not m.run_until(lambda: mbox.done == 1, timeout_ns):
            if m.oops is not None:
                raise KlpemuError(f"{what}: the machine crashed:\n{m.oops}", EIO)
            raise KlpemuError(f"{what}: no answer from the guest within {timeout_ns / NS_PER_SEC:g}s", ETIMEDOUT)
        return mbox.status, m.mem.read(mbox.addr_of("out"), mbox.out_len)

    def read_file(self, path: str, timeout_ns: int = 5 * NS_PER_SEC) -> str:
        return kstr(self._request("CONSOLE_READ_FILE", path, b"", timeout_ns))

    def write_file(self, path: str, data: str | bytes, timeout_ns: int = 5 * NS_PER_SEC) -> None:
        self._request("CONSOLE_WRITE_FILE", path, kbytes(data), timeout_ns)

    def init_module(self, mod: int, name: str, timeout_ns: int = 5 * NS_PER_SEC) -> int:
        """sh calls init_module(2) on the struct module at mod, which the host has loaded, so the
        module's init runs in a process as under insmod. Returns the result: 0 or -errno."""
        status, _ = self._exchange(
            "CONSOLE_INIT_MODULE", "", mod.to_bytes(8, "little"), timeout_ns, f"init_module {name}"
        )
        return status

    def delete_module(self, name: str | bytes, timeout_ns: int = 5 * NS_PER_SEC) -> int:
        """sh calls delete_module(2) with the module's name, as rmmod does; returns 0 or -errno."""
        status, _ = self._exchange(
            "CONSOLE_DELETE_MODULE", "", kbytes(name) + b"\0", timeout_ns, f"delete_module {kstr(kbytes(name))}"
        )
        return status
