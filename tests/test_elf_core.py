"""An ELF core of the machine, opened post mortem by the real gdb: a thread per CPU, their
backtraces through the kernel's frames, and the kernel's variables as they were."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest
from machine_util import booted_system

from klpemu.debug.elf_core import write_core
from klpemu.machine.machine import shipped_image

needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    system = booted_system()
    path = tmp_path_factory.mktemp("core") / "core"
    write_core(system.machine, path)
    return system, path


def test_the_core_has_one_prstatus_note_per_cpu(core):
    system, path = core
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and struct.unpack_from("<HH", data, 16) == (4, 62)  # ET_CORE, EM_X86_64
    (phoff,) = struct.unpack_from("<Q", data, 32)
    p_type, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff)
    assert p_type == 4  # PT_NOTE first
    notes = data[offset : offset + filesz]
    pids, rips = [], []
    while notes:
        _namesz, descsz, note_type = struct.unpack_from("<III", notes)
        desc = notes[12 + 8 : 12 + 8 + descsz]
        assert (notes[12:16], note_type, descsz) == (b"CORE", 1, 336)
        pids.append(struct.unpack_from("<i", desc, 32)[0])
        rips.append(struct.unpack_from("<Q", desc, 112 + 16 * 8)[0])
        notes = notes[12 + 8 + descsz :]
    assert pids == [1, 2]
    assert rips == [cpu.reg("rip") for cpu in system.machine.cpus]


@needs_gdb
def test_gdb_opens_the_core_with_a_thread_per_cpu_and_their_backtraces(core):
    system, path = core
    result = subprocess.run(
        ["gdb", "-nx", "-batch", str(shipped_image()), str(path)]
        + ["-ex", "info threads", "-ex", "thread apply all bt", "-ex", "print nr_tasks"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout
    assert re.findall(r"^\*?\s+(\d)\s+LWP (\d)", out, re.M) == [("1", "1"), ("2", "2")]
    for cpu in system.machine.cpus:  # each thread's frame 0 is where the host has that CPU
        function = system.machine.image.function_at(cpu.reg("rip"))
        assert function is not None
        assert re.search(
            rf"^\*?\s+{cpu.index + 1}\s+LWP {cpu.index + 1}\s+(?:0x[0-9a-f]+ in )?{function.name} \(", out, re.M
        )
    # the second CPU is idle: its stack unwinds to the secondary CPU's entry
    thread2 = out[out.index("Thread 2 (LWP 2)") :]
    frames = re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\w+) \(", thread2, re.M)
    assert frames[:4] == ["arch_cpu_idle", "do_idle", "cpu_startup_entry", "start_secondary"]
    assert f"$1 = {system.machine.read_var_int('nr_tasks')}" in out
