"""Modules: the sample modules load, run init in a process, show their parameters and ftrace
records, and go away completely; every refused load leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from machine_util import booted_system, shell_run

from klpemu.kernel.module import ModuleError, shipped_module
from klpemu.kernel.printk import records
from klpemu.kernel.tasks import all_tasks
from klpemu.kernel.text_poke import NOP5
from klpemu.machine.machine import shipped_image
from klpemu.system import System

HELLO = shipped_module("hello")
TRACING = "/sys/kernel/tracing"


@pytest.fixture
def system() -> System:
    return booted_system()


def run(system: System, cmd: str) -> tuple[int, str, str]:
    return shell_run(system, cmd)


def ok(system: System, cmd: str) -> str:
    status, out, err = run(system, cmd)
    assert status == 0 and err == "", (cmd, out, err)
    return out


def log_since(system: System, seq: int) -> list[str]:
    return [r.text for r in records(system.machine, seq)]


def next_seq(system: System) -> int:
    return system.machine.var("printk_rb").next_seq


def snapshot(system: System) -> dict:
    """Everything a module could leave behind."""
    m = system.machine
    head = m.var_addr("modules")
    return {
        "records": m.kernel.ftrace.records.ips(),
        "heap": {
            name: list(r.free)
            for name, r in (("text", m.heap.text), ("module_data", m.heap.module_data), ("data", m.heap.data))
        },
        "allocations": dict(m.heap._sizes),
        "kallsyms": list(m.image.module_kallsyms),
        "loaded": list(m.kernel.modules.loaded),
        "guest_list_empty": m.mem.read_u64(head) == head and m.mem.read_u64(head + 8) == head,
        "sysfs": [n.name for n in system.vfs.listdir("/sys/module")],
        "proc_modules": system.vfs.read("/proc/modules"),
    }


def assert_nothing_loaded(system: System, before: dict) -> None:
    after = snapshot(system)
    assert after == before
    assert after["loaded"] == [] and after["sysfs"] == [] and after["proc_modules"] == ""
    assert after["guest_list_empty"]


# --- loading and unloading ---------------------------------------------------------------------


def test_insmod_runs_init_in_the_shell_process(system):
    seq = next_seq(system)
    ok(system, "insmod hello count=2 whom=klpemu")
    assert log_since(system, seq) == ["hello: hello, klpemu (greeting 1)", "hello: hello, klpemu (greeting 2)"]
    sh = next(t for t in all_tasks(system.machine) if t.comm == "sh")
    assert {r.caller_id for r in records(system.machine, seq)} == {sh.pid}  # printed by sh's task
    m = system.machine
    mod = m.kernel.modules.find("hello")
    view = m.struct("module", mod.addr)
    assert view.name == b"hello" and m.kernel.modules.state(mod) == "MODULE_STATE_LIVE"
    assert view.init and not m.is_kernel_text(view.init)  # it pointed into init text, freed after init
    assert view.exit == mod.lookup("hello_exit").addr
    assert m.mem.read_u64(m.var_addr("modules")) == view.addr_of("list")
    size = mod.core_size
    assert ok(system, "lsmod") == f"Module                  Size  Used by\nhello               {size:>8}  0\n"
    base = mod.mem["MOD_TEXT"][0]
    assert system.vfs.read("/proc/modules") == f"hello {size} 0 - Live 0x{base:016x}\n"
    assert system.vfs.read("/sys/module/hello/initstate") == "live\n"
    assert system.vfs.read("/sys/module/hello/refcnt") == "0\n"
    assert system.vfs.read("/sys/module/hello/taint") == "\n"  # in-tree, GPL
    assert system.vfs.read("/sys/module/hello/coresize") == f"{size}\n"
    assert system.vfs.read("/sys/module/hello/sections/.text") == f"0x{base:016x}\n"


def test_rmmod_runs_exit_and_frees_everything(system):
    before = snapshot(system)
    ok(system, "insmod hello")
    m = system.machine
    mod = m.kernel.modules.find("hello")
    text = mod.mem["MOD_TEXT"]
    assert m.is_kernel_text(text[0])
    seq = next_seq(system)
    ok(system, "rmmod hello")
    assert log_since(system, seq) == ["hello: goodbye, world (1 greetings)"]
    assert_nothing_loaded(system, before)
    assert m.mem.read(text[0], text[1]) == b"\xcc" * text[1]  # freed text traps
    assert not m.is_kernel_text(text[0])
    assert m.image.function_at(text[0]) is None


def test_second_load_and_missing_module(system):
    ok(system, "insmod hello")
    assert run(system, "insmod hello") == (1, "", "insmod: ERROR: could not insert module hello: File exists\n")
    ok(system, "rmmod hello")
    assert run(system, "rmmod hello") == (1, "", "rmmod: ERROR: Module hello is not currently loaded\n")
    assert run(system, "insmod nosuch") == (
        1,
        "",
        "insmod: ERROR: could not load module nosuch: No such file or directory\n",
    )


def test_a_module_in_use_cannot_be_removed(system):
    before = snapshot(system)
    ok(system, "insmod hello; insmod hello_friend")
    size = system.machine.kernel.modules.find("hello").core_size
    assert f"hello               {size:>8}  1 hello_friend\n" in ok(system, "lsmod")
    assert f"hello {size} 1 hello_friend, Live" in system.vfs.read("/proc/modules")
    assert system.vfs.read("/sys/module/hello/refcnt") == "1\n"
    assert [n.name for n in system.vfs.listdir("/sys/module/hello/holders")] == ["hello_friend"]
    assert run(system, "rmmod hello") == (1, "", "rmmod: ERROR: Module hello is in use by: hello_friend\n")
    ok(system, "rmmod hello_friend")
    m = system.machine
    mod = m.kernel.modules.find("hello")
    assert m.call("try_module_get", mod.addr) == 1  # a reference taken by guest code
    assert system.vfs.read("/sys/module/hello/refcnt") == "1\n"
    assert run(system, "rmmod hello") == (1, "", "rmmod: ERROR: Module hello is in use\n")
    m.call("module_put", mod.addr)
    ok(system, "rmmod hello")
    assert_nothing_loaded(system, before)


# --- parameters --------------------------------------------------------------------------------


def test_parameters_under_sys_module(system):
    ok(system, "insmod hello whom=klpemu")
    m = system.machine
    mod = m.kernel.modules.find("hello")
    listing = ok(system, "ls -l /sys/module/hello/parameters")
    assert listing == (
        "-rw-r--r-- 1 root root 0 Jan  1 00:00 count\n"
        "-r--r--r-- 1 root root 0 Jan  1 00:00 greetings\n"
        "-rw-r--r-- 1 root root 0 Jan  1 00:00 whom\n"
    )
    assert (
        ok(
            system,
            "cat /sys/module/hello/parameters/count /sys/module/hello/parameters/whom "
            "/sys/module/hello/parameters/greetings",
        )
        == "1\nklpemu\n1\n"
    )
    ok(system, "echo 0x10 > /sys/module/hello/parameters/count")
    count = mod.lookup("count").addr
    assert struct.unpack("<i", m.mem.read(count, 4))[0] == 16  # the guest variable itself
    ok(system, "echo -3 > /sys/module/hello/parameters/count")
    assert ok(system, "cat /sys/module/hello/parameters/count") == "-3\n"
    assert run(system, "echo abc > /sys/module/hello/parameters/count")[2] == "echo: write error: Invalid argument\n"
    assert (
        run(system, "echo 99999999999 > /sys/module/hello/parameters/count")[2]
        == "echo: write error: Numerical result out of range\n"
    )
    assert (
        run(system, "echo 5 > /sys/module/hello/parameters/greetings")[2]
        == "klpemu: /sys/module/hello/parameters/greetings: Permission denied\n"
    )
    # charp keeps what was written, newline included, as param_set_charp does
    ok(system, "echo you > /sys/module/hello/parameters/whom")
    assert ok(system, "cat /sys/module/hello/parameters/whom") == "you\n\n"
    seq = next_seq(system)
    before_free = dict(m.heap._sizes)
    ok(system, "rmmod hello")
    assert log_since(system, seq) == ["hello: goodbye, you", " (1 greetings)"]
    assert len(m.heap._sizes) < len(before_free)  # the charp copy went with the module


def test_bad_parameters_at_load(system):
    before = snapshot(system)
    seq = next_seq(system)
    assert run(system, "insmod hello count=abc") == (
        1,
        "",
        "insmod: ERROR: could not insert module hello: Invalid parameters\n",
    )
    assert log_since(system, seq) == ["hello: `abc' invalid for parameter `count'"]
    assert (
        run(system, "insmod hello count=4294967296")[2]
        == "insmod: ERROR: could not insert module hello: Numerical result out of range\n"
    )
    assert run(system, "insmod hello whom=x count=1x")[0] == 1  # a charp set before the bad one is freed
    assert_nothing_loaded(system, before)
    seq = next_seq(system)
    ok(system, "insmod hello bogus=1")
    assert log_since(system, seq)[0] == "hello: unknown parameter 'bogus' ignored"


# --- ftrace --------------------------------------------------------------------------------------


def test_module_functions_are_ftrace_locations(system):
    m = system.machine
    ft = m.kernel.ftrace
    n = len(ft.records)
    ok(system, "insmod hello")
    mod = m.kernel.modules.find("hello")
    greet = mod.lookup("hello_greet")
    assert greet.module == "hello"
    assert ft.records.find(greet.addr) is not None
    assert m.mem.read(greet.addr, 5) == NOP5
    # hello_init's record went with the init text; hello_greet and hello_exit stay
    assert sorted(mod.records) == sorted([greet.addr, mod.lookup("hello_exit").addr])
    assert len(ft.records) == n + 2
    ips = ft.records.ips()
    assert ips == sorted(ips)
    funcs = system.vfs.read(f"{TRACING}/available_filter_functions").splitlines()
    assert funcs[-2:] == ["hello_greet [hello]", "hello_exit [hello]"]
    assert m.image.symbolize(greet.addr + 3) == f"hello_greet+0x3/0x{greet.size:x} [hello]"
    assert m.kernel.modules.find_symbol("hello", "hello_greet") == greet
    assert m.image.lookup("hello_greet") == greet  # names vmlinux lacks fall back to modules


def test_function_tracer_traces_a_module_function(system):
    m = system.machine
    ok(system, "insmod hello")
    ok(system, f"echo hello_greet > {TRACING}/set_ftrace_filter; echo function > {TRACING}/current_tracer")
    assert ok(system, f"cat {TRACING}/set_ftrace_filter") == "hello_greet [hello]\n"
    assert ok(system, f"cat {TRACING}/enabled_functions").startswith("hello_greet [hello] (1)")
    greet = m.kernel.modules.find("hello").lookup("hello_greet").addr
    assert m.mem.read(greet, 1) == b"\xe8"  # the site calls a trampoline now
    ok(system, "insmod hello_friend")  # its init calls hello_greet
    trace = ok(system, f"cat {TRACING}/trace")
    assert " hello_greet <-" in trace and trace.count("hello_greet") == 1
    ok(system, "rmmod hello_friend; rmmod hello")
    # the module's records are gone; the filter keeps a cleared entry, so it matches nothing
    assert ok(system, f"cat {TRACING}/set_ftrace_filter") == ""
    assert ok(system, f"cat {TRACING}/enabled_functions") == ""
    assert m.kernel.function_tracer.ops.filter == {0}
    ok(system, "insmod hello")  # at the same address again: not traced
    assert ok(system, f"cat {TRACING}/enabled_functions") == ""
    ok(system, f"echo nop > {TRACING}/current_tracer; echo > {TRACING}/set_ftrace_filter")
    assert ok(system, f"cat {TRACING}/set_ftrace_filter") == "#### all functions enabled ####\n"


def test_a_module_loaded_while_tracing_everything_is_traced(system):
    m = system.machine
    ok(system, f"echo function > {TRACING}/current_tracer")
    ok(system, "insmod hello")
    greet = m.kernel.modules.find("hello").lookup("hello_greet").addr
    assert m.mem.read(greet, 1) == b"\xe8"
    assert "hello_greet [hello] (1)" in ok(system, f"cat {TRACING}/enabled_functions")
    ok(system, "rmmod hello")
    assert "[hello]" not in ok(system, f"cat {TRACING}/enabled_functions")
    ok(system, f"echo nop > {TRACING}/current_tracer")


# --- refused loads leave nothing -----------------------------------------------------------------


def test_init_returning_an_error(system):
    before = snapshot(system)
    seq = next_seq(system)
    assert run(system, "insmod init_fail") == (
        1,
        "",
        "insmod: ERROR: could not insert module init_fail: Invalid parameters\n",
    )
    assert log_since(system, seq) == ["init_fail: refusing to load"]
    assert_nothing_loaded(system, before)


def patched(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for off, new in edits:
        out[off : off + len(new)] = new
    return bytes(out)


def strtab_edit(data: bytes, old: bytes, new: bytes) -> tuple[int, bytes]:
    import io

    sec = ELFFile(io.BytesIO(data)).get_section_by_name(".strtab")
    off = sec["sh_offset"] + sec.data().index(old + b"\0")
    return off, new


def rela_offset(data: bytes, section: str, symbol: str) -> int:
    """File offset of the first relocation in section against symbol."""
    import io

    elf = ELFFile(io.BytesIO(data))
    sec = elf.get_section_by_name(section)
    symtab = elf.get_section_by_name(".symtab")
    for i, rel in enumerate(sec.iter_relocations()):
        if symtab.get_symbol(rel["r_info_sym"]).name == symbol:
            return sec["sh_offset"] + i * sec["sh_entsize"]
    raise AssertionError(f"no relocation against {symbol}")


def refused(system: System, data: bytes, errno: int) -> list[str]:
    """Load data, expect errno, return the log lines; nothing may stay behind."""
    before = snapshot(system)
    seq = next_seq(system)
    with pytest.raises(ModuleError) as e:
        system.machine.kernel.modules.load(data, filename="hello.ko")
    assert e.value.errno == errno
    assert_nothing_loaded(system, before)
    return log_since(system, seq)


def test_unknown_symbol(system):
    data = patched(HELLO.read_bytes(), [strtab_edit(HELLO.read_bytes(), b"snprintf", b"snprintX")])
    assert refused(system, data, 2) == ["hello: Unknown symbol snprintX (err -2)"]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"klpemu-test-{os.getpid()}-hello.ko"
    path.write_bytes(data)
    try:
        assert (
            run(system, f"insmod {path}")[2]
            == f"insmod: ERROR: could not insert module {path}: Unknown symbol in module\n"
        )
    finally:
        path.unlink()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_unknown_symbol_in_a_module_built_here(system, tmp_path):
    from klpemu.modbuild import build_module

    src = tmp_path / "missing.c"
    src.write_text(
        "#include <linux/module.h>\nint klpemu_no_such_function(void);\n"
        "static int __init missing_init(void) { return klpemu_no_such_function(); }\n"
        'module_init(missing_init);\nMODULE_LICENSE("GPL");\n'
    )
    ko = build_module(src)
    before = snapshot(system)
    seq = next_seq(system)
    assert run(system, f"insmod {ko}")[2] == f"insmod: ERROR: could not insert module {ko}: Unknown symbol in module\n"
    assert log_since(system, seq) == [
        "missing: loading out-of-tree module taints kernel.",
        "missing: Unknown symbol klpemu_no_such_function (err -2)",
    ]
    assert_nothing_loaded(system, before)


def test_malformed_elf(system):
    good = HELLO.read_bytes()
    assert refused(system, shipped_image().read_bytes(), 8) == ["Invalid ELF header type: 2 != 1"]
    assert refused(system, patched(good, [(18, struct.pack("<H", 183))]), 8) == [
        "Invalid architecture in ELF header: 183"
    ]
    assert refused(system, good[:40], 8) == ["Invalid ELF header len 40"]
    assert refused(system, b"\x7fELG" + good[4:], 8) == ["Invalid ELF header magic: != \x7fELF"]
    assert refused(system, good[: len(good) // 2], 8) == ["Invalid ELF section header overflow"]
    _, _, err = run(system, f"insmod {shipped_image()}")
    assert err == f"insmod: ERROR: could not insert module {shipped_image()}: Invalid module format\n"


def test_relocation_overflow_and_unknown_relocation(system):
    good = HELLO.read_bytes()
    rel = rela_offset(good, ".rela.text", "snprintf")  # R_X86_64_PLT32: a 32-bit displacement
    lines = refused(system, patched(good, [(rel + 16, struct.pack("<q", 1 << 40))]), 8)
    assert len(lines) == 2 and lines[0].startswith("overflow in relocation type 4 val ")
    assert lines[1] == "`hello' likely not compiled with -mcmodel=kernel"
    info = struct.unpack_from("<Q", good, rel + 8)[0]
    bad_type = patched(good, [(rel + 8, struct.pack("<Q", (info & ~0xFFFFFFFF) | 99))])
    assert refused(system, bad_type, 8) == ["hello: Unknown rela relocation: 99"]


# --- build-module ----------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_build_module_builds_a_loadable_module(system, tmp_path):
    src = tmp_path / "my-hello.c"
    src.write_text((Path(__file__).resolve().parent.parent / "firmware/modules/hello.c").read_text())
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "build-module", str(src)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    ko = tmp_path / "my-hello.ko"
    assert res.stdout == f"  CC [M]  {ko}\n"
    seq = next_seq(system)
    ok(system, f"insmod {ko} whom=there")
    assert log_since(system, seq) == [
        "my_hello: loading out-of-tree module taints kernel.",
        "my_hello: hello, there (greeting 1)",
    ]
    assert system.vfs.read("/sys/module/my_hello/taint") == "O\n"
    assert "(O)" in system.vfs.read("/proc/modules")


def test_build_module_without_gcc(tmp_path):
    src = tmp_path / "m.c"
    src.write_text("")
    env = dict(os.environ, PATH=str(tmp_path))  # no gcc there
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "build-module", str(src)], capture_output=True, text=True, check=False, env=env
    )
    assert res.returncode == 1
    assert res.stderr == ("klpemu build-module needs gcc (not found on PATH); the shipped modules need no compiler\n")
    assert not (tmp_path / "m.ko").exists()


def test_shipped_modules_are_package_data():
    from importlib import resources

    mods = resources.files("klpemu").joinpath("images", "modules")
    assert {p.name for p in mods.iterdir()} >= {"hello.ko", "hello_friend.ko", "init_fail.ko"}
    inc = resources.files("klpemu").joinpath("images", "include", "linux", "module.h")
    assert inc.is_file()
    assert "-mcmodel=kernel" in resources.files("klpemu").joinpath("images", "module.cflags").read_text()


def test_shipped_headers_match_the_sources():
    """images/include (a symlink in the tree, files in a wheel) holds firmware/include."""
    src = Path(__file__).resolve().parent.parent / "firmware" / "include"
    if not src.is_dir():
        pytest.skip("no firmware sources here")
    from klpemu.modbuild import images_dir

    shipped = images_dir() / "include"
    names = sorted(p.relative_to(src) for p in src.rglob("*.h"))
    assert names == sorted(p.relative_to(shipped) for p in shipped.rglob("*.h")), "run make -C firmware"
    for name in names:
        assert (shipped / name).read_bytes() == (src / name).read_bytes(), f"{name}: run make -C firmware"
