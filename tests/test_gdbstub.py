"""The GDB stub, driven by the real gdb in batch mode over a machine with livepatch-sample on."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from machine_util import booted_system

from klpemu import cli
from klpemu.debug.gdb_unwinder import write_unwinder
from klpemu.debug.gdbstub import escape_binary, unescape_binary
from klpemu.debug.server import GdbServer, gdbserver, listen
from klpemu.debug.symbols import add_symbol_file_lines
from klpemu.debug.target import REGNUM, target_xml
from klpemu.machine.machine import shipped_image

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="needs gdb")
LP = "/sys/kernel/livepatch/livepatch_sample"
SETUP = f"insmod livepatch-sample.ko; wait {LP}/transition 0"


def _script(port: int, symbols: str, unwinder: str) -> str:
    # Steps from the site until the new function, printing each pc; a backtrace once in the
    # handler; then the run goes on (the machine runs `cat`) until gdb interrupts it.
    return f"""
set pagination off
set confirm off
target remote 127.0.0.1:{port}
info threads
{symbols}
source {unwinder}
break *cmdline_proc_show
continue
echo @STOP\\n
info threads
x/i $pc
set $n = 0
while $n < 500 && $pc != (unsigned long)livepatch_cmdline_proc_show
  stepi
  echo @STEP\\n
  x/i $pc
  if $pc == (unsigned long)klp_ftrace_handler + 4
    bt
  end
  set $n = $n + 1
end
echo @NEW\\n
bt
info registers rip gs_base
delete
shell (sleep 0.5; kill -INT $PPID) &
continue
echo @INT\\n
detach
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One gdb session over one machine: (gdb's output, the server's output, server, thread)."""
    system = booted_system()
    out = io.StringIO()
    server = GdbServer(system, listen("127.0.0.1", 0), out)
    assert server.shell.run_line(SETUP) == 0
    symbols = add_symbol_file_lines(system.kernel)
    thread = threading.Thread(target=server.serve, kwargs={"run": "cat /proc/cmdline"}, daemon=True)
    thread.start()
    tmp = tmp_path_factory.mktemp("gdb")
    unwinder = write_unwinder(tmp / "klpemu_unwind.py")
    script = tmp / "session.gdb"
    script.write_text(_script(server.port, "\n".join(symbols), str(unwinder)))
    t0 = time.perf_counter()
    gdb = subprocess.run(
        ["gdb", "-nx", "-batch", "-x", str(script), str(shipped_image())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return gdb.stdout, out, server, thread, time.perf_counter() - t0, symbols


def _section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def test_info_threads_lists_one_thread_per_cpu(session):
    out = session[0]
    first = out.split("@STOP")[0]
    assert re.search(r'\* 1 +Thread 1 \(CPU#0 \[halted\] task 0 "swapper/0"\)', first)
    assert re.search(r'  2 +Thread 2 \(CPU#1 \[halted\] task 0 "swapper/1"\)', first)


def test_the_breakpoint_stops_sh_at_the_site_calling_the_trampoline(session, image):
    stop = _section(session[0], "@STOP", "@STEP")
    assert re.search(r'\* 2 +Thread 2 \(CPU#1 \[kernel\] task 7 "sh"\) .*cmdline_proc_show', stop)
    site = image.addr("cmdline_proc_show")
    assert re.search(rf"=> {site:#x} <cmdline_proc_show>:\tcall   0xffffffffa0000060\n", stop)


def test_stepi_goes_site_trampoline_handler_trampoline_new_function(session):
    steps = session[0].split("@STOP", 1)[1].split("@NEW")[0].split("@STEP")[1:]
    where = []
    for step in steps:
        m = re.search(r"=> 0x([0-9a-f]+)(?: <([\w.]+)\+?\d*>)?:", step)
        assert m, step
        name = m.group(2) or ("trampoline" if m.group(1).startswith("ffffffffa0000") else m.group(1))
        if name != "trampoline" and not name.startswith("livepatch_") and name != "klp_ftrace_handler":
            name = "handler callee"
        if not where or where[-1] != name:
            where.append(name)
    assert where[:2] == ["trampoline", "klp_ftrace_handler"]
    assert where[-3:] == ["klp_ftrace_handler", "trampoline", "livepatch_cmdline_proc_show"]


def test_backtraces_in_the_handler_and_the_new_function(session, image):
    out = session[0]
    # From the handler through the trampoline (the unwinder follows its frame pointers) to the
    # site in the old function and on to sh's system call.
    handler, site = image.addr("klp_ftrace_handler"), image.addr("cmdline_proc_show")
    assert re.search(
        rf"#0  {handler + 4:#x} in klp_ftrace_handler \(.*\n"
        r"#1  0xffffffffa00000f9 in \?\? \(\)\n"
        rf"#2  {site + 5:#x} in cmdline_proc_show \(.*\n"
        r"#3  0x\w+ in seq_read_iter \(.*\n"
        r"#4  0x\w+ in do_syscall_64 ",
        out,
    )
    new = _section(out, "@NEW", "rip")
    assert re.search(
        r"#0  livepatch_cmdline_proc_show \(.*at modules/livepatch-sample.c:12\n#1  0x\w+ in seq_read_iter", new
    )
    assert "do_syscall_64" in new


def test_gs_base_is_the_cpus_per_cpu_area(session):
    system_m = session[2].m
    m = re.search(r"gs_base +0x([0-9a-f]+)", session[0])
    assert m and int(m.group(1), 16) == system_m.pcpu(1).addr_of()


def test_continue_runs_cat_to_the_patched_text_and_an_interrupt_stops_the_machine(session):
    out, server_out = session[0], session[1]
    assert server_out.getvalue() == "this has been live patched\n"
    interrupted = _section(out, "@NEW", "@INT")
    assert "received signal SIGINT, Interrupt." in interrupted
    assert "[Inferior 1 (Remote target) detached]" in out.split("@INT")[1]
    assert session[4] < 30


def test_after_detach_the_machine_runs_and_a_raw_client_is_answered_despite_garbage(session, image):
    server, thread = session[2], session[3]
    now = server.m.now
    time.sleep(0.3)
    assert server.m.now > now  # detached: the machine idles on
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        f = s.makefile("rb")

        def packet(body: bytes) -> bytes:
            s.sendall(b"$" + body + b"#%02x" % (sum(body) & 0xFF))
            assert f.read(1) == b"+"
            return _reply(f)

        s.sendall(os.urandom(256).replace(b"$", b"").replace(b"\x03", b""))
        s.sendall(b"$g#00")  # bad checksum
        assert f.read(1) == b"-"
        big = b"m" + b"0" * 0x5000
        s.sendall(b"$" + big + b"#%02x" % (sum(big) & 0xFF))
        assert f.read(1) == b"+"
        assert _reply(f) == b"E16"
        s.sendall(b"+")
        assert packet(b"?").startswith(b"T05thread:")
        s.sendall(b"+")
        assert packet(b"qAttached") == b"1"
        s.sendall(b"+")
        assert packet(b"Hg9") == b"E02"
        s.sendall(b"+")
        # The site's true bytes: the call to the private trampoline, never an int3.
        site = image.addr("cmdline_proc_show")
        call = b"\xe8" + ((0xFFFFFFFFA0000060 - (site + 5)) & 0xFFFFFFFF).to_bytes(4, "little")
        assert packet(f"m{site:x},5".encode()) == call.hex().encode()
        s.sendall(b"+")
        assert packet(b"mzz,4") == b"E16"  # malformed
        s.sendall(b"+")
        assert packet(b"Z2,0,3") == b"E16"  # a watchpoint of 3 bytes
        for bad in (b"Gzz", b"P999=00", b"X0,1:", b"vCont;x", b"Z0,,"):
            s.sendall(b"+")
            assert packet(bad) == b"E16", bad
        s.sendall(b"+")
        assert packet(b"qXfer:features:read:other.xml:0,10") == b"E00"
        s.sendall(b"+")
        assert packet(b"vMustReplyEmpty") == b""
        s.sendall(b"+$k#6b")
    thread.join(10)
    assert not thread.is_alive()


def _reply(f) -> bytes:
    while (c := f.read(1)) != b"$":
        assert c, "connection closed"
    body = b""
    while (c := f.read(1)) != b"#":
        body += c
    f.read(2)
    return body


def test_target_xml_numbers_fs_base_after_the_sse_registers():
    xml = target_xml()
    assert "<architecture>i386:x86-64</architecture>" in xml
    assert REGNUM["rip"] == 16 and REGNUM["eflags"] == 17 and REGNUM["mxcsr"] == 56 and REGNUM["gs_base"] == 58
    assert '<reg name="fs_base" bitsize="64" type="int" regnum="57"/>' in xml


def test_binary_escapes_round_trip():
    data = bytes(range(256))
    escaped = escape_binary(data)
    assert not any(c in escaped.replace(b"}\x03", b"").replace(b"}\x04", b"") for c in b"#$")
    assert unescape_binary(escaped) == data


def test_listening_beyond_loopback_needs_allow_remote(capsys):
    assert cli.main(["gdbserver", "--listen", "0.0.0.0:0"]) == 1
    assert capsys.readouterr().err == (
        "klpemu: refusing to listen on 0.0.0.0: whoever reaches the port controls the machine "
        "(use a loopback address, or --allow-remote)\n"
    )


def test_image_path_prints_the_shipped_image(capsys):
    assert cli.main(["image-path"]) == 0
    assert capsys.readouterr().out == f"{shipped_image()}\n"


def test_gdbserver_runs_the_setup_then_waits_stopped_for_a_client():
    system = booted_system()
    out = io.StringIO()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(gdbserver(system, "127.0.0.1:0", setup="cat /proc/cmdline", out=out)),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 30
    while "Listening" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    text = out.getvalue()
    m = re.fullmatch(r"console=ttyS0 root=/dev/vda ro quiet\nListening on port (\d+)\n", text)
    assert m, text
    now = system.machine.now
    with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as s:
        s.sendall(b"$?#3f")
        f = s.makefile("rb")
        assert f.read(1) == b"+"
        assert _reply(f).startswith(b"T05thread:")
        assert system.machine.now == now  # stopped while gdb is attached
        s.sendall(b"+$k#6b")
    thread.join(10)
    assert result == [0]


def test_the_gdbserver_command_serves_gdb_until_it_kills_the_machine(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(cli.__file__).parents[1]))
    server = subprocess.Popen(
        [sys.executable, "-m", "klpemu", "gdbserver", "--listen", "127.0.0.1:0", "--cpus", "1", "--setup", "echo hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == "hi\n"
        port = re.fullmatch(r"Listening on port (\d+)\n", server.stdout.readline())
        assert port, server.stderr.read() if server.stderr else ""
        gdb = subprocess.run(
            ["gdb", "-nx", "-batch", "-ex", f"target remote 127.0.0.1:{port.group(1)}"]
            + ["-ex", "info threads", "-ex", "kill"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert re.search(r'\* 1 +Thread 1 \(CPU#0 \[\w+\] task \d+ "[^"]+"\)', gdb.stdout)
        assert "[Inferior 1 (Remote target) killed]" in gdb.stdout
        assert server.wait(10) == 0
    finally:
        server.kill()
