"""A GDB remote-protocol session over one connection: the machine's CPUs are gdb's threads
(thread id = CPU + 1), the machine stops as a whole (all-stop), and a step runs one CPU while
the others stay frozen.

The session answers packets while the machine is stopped (`serve_stopped`); a resume packet
returns from it, and the caller runs the machine until the debugger reports the next stop.
While the machine runs, a reader thread watches the connection for gdb's interrupt byte.
"""

from __future__ import annotations

import binascii
import select
import socket
import threading
from errno import EFAULT, EINVAL, ENOENT
from typing import TYPE_CHECKING

from ..errors import KlpemuError
from .breakpoints import Debugger, StopReport
from .target import REGS, read_reg, reg_size, target_xml, write_reg

if TYPE_CHECKING:
    from ..machine.machine import Machine

PACKET_SIZE = 0x4000  # the longest packet we take, '$', '#' and checksum included
SIGINT, SIGTRAP = 2, 5
WATCH_REASON = {"write": "watch", "read": "rwatch", "access": "awatch"}
Z_KINDS = {2: "write", 3: "read", 4: "access"}


class Detached(Exception):
    """gdb detached: the machine runs on without it."""


class Killed(Exception):
    """gdb killed the target: the server ends."""


class _Resume(Exception):
    """A packet resumed the machine: the stopped state ends."""


def _err(errno: int) -> bytes:
    return b"E%02x" % (errno & 0xFF)


def escape_binary(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b in b"#$}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape_binary(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise ValueError("escape at the end of the data")
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def _thread_id(text: bytes) -> int:
    """A thread-id: -1 (all), 0 (any) or a CPU's id."""
    if text == b"-1":
        return -1
    return int(text, 16)


class GdbSession:
    def __init__(self, machine: Machine, sock: socket.socket, debugger: Debugger):
        self.m = machine
        self.sock = sock
        self.dbg = debugger
        self.noack = False
        self.g_cpu = 0  # Hg: the CPU registers and memory are read through
        self.c_cpu = -1  # Hc: the CPU `s` and `c` resume (-1: all, or the one that stopped)
        self._buf = bytearray()
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        self.closed = False
        self.detached = False  # gdb left (detached or went away): the machine runs on

    # --- framing ---------------------------------------------------------------------------------

    def _recv(self) -> bytes:
        data = self.sock.recv(4096)
        if not data:
            self.closed = True
            raise Detached
        return data

    def read_packet(self) -> bytes | None:
        """The next packet's body, acknowledged; None for an interrupt byte. A bad checksum gets
        a NAK, an overlong packet an error reply; neither ends the session."""
        while True:
            while not self._buf:
                self._buf += self._recv()
            b = self._buf[0]
            if b == 0x03:
                del self._buf[0]
                return None
            if b != ord("$"):
                del self._buf[0]  # acks, and noise between packets
                continue
            body = bytearray()
            total = 0
            i = 1
            overlong = False
            while True:
                while i >= len(self._buf):
                    self._buf += self._recv()
                c = self._buf[i]
                i += 1
                if c == ord("#"):
                    break
                total += c
                if len(body) < PACKET_SIZE:
                    body.append(c)
                else:
                    overlong = True
            while i + 2 > len(self._buf):
                self._buf += self._recv()
            given = bytes(self._buf[i : i + 2])
            del self._buf[: i + 2]
            try:
                good = int(given, 16) == total & 0xFF
            except ValueError:
                good = False
            if not self.noack:
                self.sock.sendall(b"+" if good else b"-")
            if not good:
                continue
            if overlong:
                self.send(_err(EINVAL))
                continue
            return bytes(body)

    def send(self, body: bytes) -> None:
        frame = b"$" + body + b"#%02x" % (sum(body) & 0xFF)
        for _ in range(8):
            self.sock.sendall(frame)
            if self.noack:
                return
            ack = self._wait_ack()
            if ack:
                return

    def _wait_ack(self) -> bool:
        while True:
            while not self._buf:
                self._buf += self._recv()
            b = self._buf[0]
            if b in b"+-":
                del self._buf[0]
                return b == ord("+")
            if b == 0x03:
                del self._buf[0]
                continue
            return True  # gdb went on with a new packet: take it as acknowledged

    # --- running and stopping --------------------------------------------------------------------

    def stop_reply(self, r: StopReport) -> bytes:
        # gdb takes the thread a stop names as selected, without an H packet.
        self.g_cpu = r.cpu
        sig = SIGINT if r.reason == "interrupt" else SIGTRAP
        reply = b"T%02x" % sig
        if r.watch is not None:
            reply += b"%s:%x;" % (WATCH_REASON[r.watch[0]].encode(), r.watch[1])
        return reply + b"thread:%x;" % (r.cpu + 1)

    def start_reader(self) -> None:
        """While the machine runs: an interrupt byte, or the connection closing, stops it."""
        self._reader_stop.clear()
        self._reader = threading.Thread(target=self._read_while_running, name="gdb-interrupt", daemon=True)
        self._reader.start()

    def stop_reader(self) -> None:
        if self._reader is not None:
            self._reader_stop.set()
            self._reader.join()
            self._reader = None

    def _read_while_running(self) -> None:
        while not self._reader_stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.02)
            if not ready:
                continue
            try:
                data = self.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                self.m.request_stop()
                return
            if 0x03 in data:
                data = data.replace(b"\x03", b"", 1)
                self.m.request_stop()
            self._buf += data
            if 0x03 not in data and not self.m._stop_requested:
                continue
            return

    def on_stop(self, r: StopReport) -> None:
        """The debugger's stop: tell gdb, then serve it until it resumes (raises Detached or
        Killed when it leaves)."""
        self.stop_reader()
        try:
            if self.closed:
                raise Detached
            self.send(self.stop_reply(r))
        except (Detached, OSError):
            self.leave()
            return
        self.serve_stopped()

    def leave(self) -> None:
        """gdb is gone: no breakpoint stays behind, and the machine runs on."""
        self.stop_reader()
        self.detached = True
        self.dbg.detach()
        try:
            self.sock.close()
        except OSError:
            pass

    def serve_stopped(self) -> None:
        """Answer packets until one resumes the machine; steps are served here. Returns also
        when gdb detaches or goes away (then `detached` is set)."""
        try:
            self._serve()
        except (Detached, OSError):
            self.leave()

    def _serve(self) -> None:
        while True:
            body = self.read_packet()
            if body is None:
                continue  # an interrupt while stopped: nothing to stop
            try:
                reply = self.handle(body)
            except _Resume:
                self.start_reader()
                return
            except (Detached, Killed):
                raise
            except KlpemuError as e:
                reply = _err(e.errno or EINVAL)
            except Exception:  # a malformed packet: an error reply, never the end of the stub
                reply = _err(EINVAL)
            if reply is not None:
                self.send(reply)

    # --- packets ---------------------------------------------------------------------------------

    def _cpu(self, tid: int) -> int:
        if tid in (0, -1):
            return self.g_cpu
        cpu = tid - 1
        if not 0 <= cpu < len(self.m.cpus) or not self.m.cpus[cpu].online:
            raise KlpemuError(f"no thread {tid:x}", ENOENT)
        return cpu

    def handle(self, body: bytes) -> bytes | None:
        cmd = body[:1]
        args = body[1:]
        if cmd == b"?":
            last = self.dbg.last or self.dbg.report(self.g_cpu, "attach")
            return self.stop_reply(last)
        if cmd == b"q" or cmd == b"Q":
            return self._query(body)
        if cmd == b"H":
            tid = _thread_id(args[1:])
            cpu = self._cpu(tid) if tid not in (0, -1) else None
            if args[:1] == b"g":
                if cpu is not None:
                    self.g_cpu = cpu
            elif args[:1] == b"c":
                self.c_cpu = -1 if cpu is None else cpu
            else:
                return _err(EINVAL)
            return b"OK"
        if cmd == b"T":
            self._cpu(_thread_id(args))
            return b"OK"
        if cmd == b"g":
            ctx = self.m.cpus[self.g_cpu].ctx
            return binascii.hexlify(b"".join(read_reg(ctx, i) for i in range(len(REGS))))
        if cmd == b"G":
            data = binascii.unhexlify(args)
            if len(data) != sum(reg_size(i) for i in range(len(REGS))):
                return _err(EINVAL)
            ctx = self.m.cpus[self.g_cpu].ctx
            off = 0
            for i in range(len(REGS)):
                write_reg(ctx, i, data[off : off + reg_size(i)])
                off += reg_size(i)
            return b"OK"
        if cmd == b"p":
            n = int(args, 16)
            if n >= len(REGS):
                return _err(EINVAL)
            return binascii.hexlify(read_reg(self.m.cpus[self.g_cpu].ctx, n))
        if cmd == b"P":
            num, value = args.split(b"=", 1)
            n = int(num, 16)
            data = binascii.unhexlify(value)
            if n >= len(REGS) or len(data) != reg_size(n):
                return _err(EINVAL)
            return b"OK" if write_reg(self.m.cpus[self.g_cpu].ctx, n, data) else _err(EINVAL)
        if cmd == b"m":
            addr, length = (int(v, 16) for v in args.split(b","))
            if length > PACKET_SIZE // 2 - 8:
                length = PACKET_SIZE // 2 - 8
            data = self._read_memory(addr, length)
            return binascii.hexlify(data) if data or not length else _err(EFAULT)
        if cmd == b"M":
            where, hexdata = args.split(b":", 1)
            addr, length = (int(v, 16) for v in where.split(b","))
            data = binascii.unhexlify(hexdata)
            return self._write_memory(addr, length, data)
        if cmd == b"X":
            where, bindata = args.split(b":", 1)
            addr, length = (int(v, 16) for v in where.split(b","))
            return self._write_memory(addr, length, unescape_binary(bindata))
        if cmd in (b"Z", b"z"):
            return self._z(cmd == b"Z", args)
        if cmd in (b"c", b"C"):
            return self._resume(None)
        if cmd in (b"s", b"S"):
            return self._step(self.c_cpu if self.c_cpu >= 0 else (self.dbg.last.cpu if self.dbg.last else 0))
        if cmd == b"v":
            return self._v(body)
        if cmd == b"D":
            self.send(b"OK")
            raise Detached
        if cmd == b"k":
            self.sock.close()
            raise Killed
        return b""

    def _query(self, body: bytes) -> bytes | None:
        if body.startswith(b"qSupported"):
            return b"PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;vContSupported+" % PACKET_SIZE
        if body == b"QStartNoAckMode":
            self.send(b"OK")
            self.noack = True
            return None  # answered already
        if body.startswith(b"qXfer:features:read:"):
            annex, span = body[len(b"qXfer:features:read:") :].split(b":", 1)
            if annex != b"target.xml":
                return b"E00"
            offset, length = (int(v, 16) for v in span.split(b","))
            doc = target_xml().encode()
            chunk = doc[offset : offset + min(length, PACKET_SIZE // 2)]
            return (b"l" if offset + len(chunk) >= len(doc) else b"m") + escape_binary(chunk)
        if body == b"qfThreadInfo":
            return b"m" + b",".join(b"%x" % (c.index + 1) for c in self.m.cpus if c.online)
        if body == b"qsThreadInfo":
            return b"l"
        if body == b"qC":
            cpu = self.dbg.last.cpu if self.dbg.last else 0
            return b"QC%x" % (cpu + 1)
        if body.startswith(b"qThreadExtraInfo,"):
            cpu = self._cpu(_thread_id(body.split(b",", 1)[1]))
            c = self.m.cpus[cpu]
            pid, comm = self.m.task_on(cpu)
            state = "halted" if c.halted else "user" if c.user_mode else "kernel"
            return binascii.hexlify(f'CPU#{cpu} [{state}] task {pid} "{comm}"'.encode())
        if body == b"qAttached":
            return b"1"
        if body == b"qOffsets":
            return b"Text=0;Data=0;Bss=0"
        return b""

    def _read_memory(self, addr: int, length: int) -> bytes:
        """As much as is readable from addr on (a short read stops at the first unmapped page)."""
        out = bytearray()
        mem = self.m.mem
        while len(out) < length:
            a = (addr + len(out)) & (2**64 - 1)
            n = min(length - len(out), 0x1000 - (a & 0xFFF))
            if not mem.is_mapped(a):
                break
            out += mem.read(a, n)
        return bytes(out)

    def _write_memory(self, addr: int, length: int, data: bytes) -> bytes:
        if len(data) != length:
            return _err(EINVAL)
        if not length:
            return b"OK"
        if not all(self.m.mem.is_mapped(a) for a in range(addr & ~0xFFF, addr + length, 0x1000)):
            return _err(EFAULT)
        self.m.mem.write(addr, data)
        self.m.uc.ctl_remove_cache(addr, addr + length)  # the bytes may be code someone runs
        return b"OK"

    def _z(self, insert: bool, args: bytes) -> bytes:
        kind_s, addr_s, size_s = args.split(b",")[:3]
        kind, addr, size = int(kind_s), int(addr_s, 16), int(size_s.split(b";")[0], 16)
        if kind in (0, 1):
            if insert:
                self.dbg.insert_breakpoint(addr)
            else:
                self.dbg.remove_breakpoint(addr)
            return b"OK"
        if kind in Z_KINDS:
            if insert:
                self.dbg.insert_watchpoint(addr, size, Z_KINDS[kind])
            else:
                self.dbg.remove_watchpoint(Z_KINDS[kind], addr, size)
            return b"OK"
        return b""

    def _v(self, body: bytes) -> bytes:
        if body == b"vCont?":
            return b"vCont;c;C;s;S"
        if body.startswith(b"vCont;"):
            step = None
            for action in body[len(b"vCont;") :].split(b";"):
                verb, _, tid = action.partition(b":")
                if verb[:1] in (b"s", b"S"):
                    cpu = self._cpu(_thread_id(tid)) if tid else self.g_cpu
                    if step is None:
                        step = cpu
                elif verb[:1] not in (b"c", b"C"):
                    return _err(EINVAL)
            if step is not None:
                return self._step(step)
            return self._resume(None)
        return b""

    def _step(self, cpu: int) -> bytes:
        if self.m.stopped:
            return b"X%02x" % 9  # the machine crashed (an oops): nothing more to run
        return self.stop_reply(self.dbg.step(cpu))

    def _resume(self, _addr: int | None) -> bytes:
        if self.m.stopped:
            return b"X%02x" % 9
        raise _Resume
