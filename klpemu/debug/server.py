"""`klpemu gdbserver`: a booted machine served to gdb over TCP, one client at a time.

The setup commands run before gdb attaches and the machine is stopped when it connects; the
run commands run once gdb first resumes it, then the machine idles on (timer ticks) until gdb
kills it. After a detach the machine keeps running and the next client may attach.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import sys
from errno import EACCES, EINVAL
from typing import TextIO

from ..errors import KlpemuError
from ..shell import Shell
from ..system import System
from .breakpoints import Debugger
from .gdbstub import GdbSession, Killed

IDLE_SLICE_NS = 10_000_000  # how much emulated time runs between looks at the listening socket


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise KlpemuError(f"--listen wants HOST:PORT, not {text!r}", EINVAL)
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int, allow_remote: bool = False) -> socket.socket:
    """Whoever reaches the port controls the machine: only loopback unless asked."""
    if not is_loopback(host) and not allow_remote:
        raise KlpemuError(
            f"refusing to listen on {host}: whoever reaches the port controls the machine "
            "(use a loopback address, or --allow-remote)",
            EACCES,
        )
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        raise KlpemuError(f"cannot listen on {host}:{port}: {e.strerror}", e.errno or EINVAL) from None


class GdbServer:
    def __init__(self, system: System, listener: socket.socket, out: TextIO = sys.stdout):
        self.system = system
        self.m = system.machine
        self.listener = listener
        self.shell = Shell(system, out, out)
        self.out = out

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def serve(self, run: str | None = None) -> int:
        """Serve clients until one kills the machine (0) or the guest crashes (1)."""
        conn, _ = self.listener.accept()  # the machine waits stopped for the first client
        try:
            while True:
                session = self._attach(conn)
                session.serve_stopped()
                if run is not None:
                    cmds, run = run, None
                    self.shell.run_line(cmds)
                while not session.detached and not self.m.stopped:
                    self.m.run(IDLE_SLICE_NS)
                if self.m.stopped:
                    return self._crashed(session)
                conn = self._accept_while_running()
        except Killed:
            return 0
        finally:
            self.listener.close()

    def _attach(self, conn: socket.socket) -> GdbSession:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        dbg = Debugger(self.m)
        session = GdbSession(self.m, conn, dbg)
        dbg.on_stop = session.on_stop
        dbg.attach()
        return session

    def _accept_while_running(self) -> socket.socket:
        while True:
            ready, _, _ = select.select([self.listener], [], [], 0)
            if ready:
                return self.listener.accept()[0]
            self.m.run(IDLE_SLICE_NS)
            if self.m.stopped:
                print(self.m.oops, file=self.out)
                raise Killed

    def _crashed(self, session: GdbSession) -> int:
        print(self.m.oops, file=self.out)
        if not session.detached:
            session.stop_reader()
            try:
                session.send(b"X0b")  # SIGSEGV: the guest oopsed
            except OSError:
                pass
            session.leave()
        return 1


def gdbserver(
    system: System,
    listen_on: str,
    *,
    setup: str | None = None,
    run: str | None = None,
    allow_remote: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    host, port = parse_listen(listen_on)
    listener = listen(host, port, allow_remote)
    server = GdbServer(system, listener, out)
    if setup is not None and server.shell.run_line(setup) != 0:
        listener.close()
        return 1
    print(f"Listening on port {server.port}", file=out, flush=True)
    return server.serve(run)
