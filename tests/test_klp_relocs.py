"""Livepatch relocations: test_klp_convert1 reaches statics of vmlinux and of test_klp_convert_mod
through .klp.sym symbols and .klp.rela sections (made from its KLP_MODULE_RELOC annotations by
the build's klp-convert step). The vmlinux ones are written when the livepatch module loads, the
module ones whenever test_klp_convert_mod is there, and zeroed when it goes. Each case is a
golden kernel log (the selftests' filter, tests/klp_selftest.py); the values the module prints
are checked against kallsyms.

A bad .klp.sym is made by editing the shipped module's string table: the kernel's message and
errno, and nothing left behind.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from machine_util import vfs_tree

from klpemu.kernel.module import shipped_module

MOD_LIVEPATCH = "test_klp_convert1"
MOD_TARGET = "test_klp_convert_mod"
MOD_OTHER = "test_klp_callbacks_mod"
SYSFS_KLP_DIR = "/sys/kernel/livepatch"
SIZES = {1: 8, 2: 4, 4: 4, 10: 4, 11: 4, 24: 8}  # bytes written per R_X86_64 type


def addr(value: int) -> str:
    return f"{value:016x}"


def vmlinux_sym(klp, name: str, sympos: int = 0) -> str:
    return addr(klp.machine.image.lookup(name, sympos).addr)


def module_sym(klp, mod: str, name: str) -> str:
    return addr(klp.machine.kernel.modules.find(mod).lookup(name).addr)


def init_lines(klp) -> str:
    """What test_klp_convert1's init prints through its vmlinux relocations."""
    return (
        f"{MOD_LIVEPATCH}: proc_cmdline, 0: {vmlinux_sym(klp, 'proc_cmdline')} /proc/cmdline\n"
        f"{MOD_LIVEPATCH}: get_idle_time, 1: {vmlinux_sym(klp, 'get_idle_time', 1)}"
    )


def target_lines(klp) -> str:
    """What the patched /proc/test_klp_convert_mod shows through the module relocations."""
    return (
        f"{MOD_LIVEPATCH}: driver_name, 0: {module_sym(klp, MOD_TARGET, 'driver_name')} {MOD_TARGET}\n"
        f"{MOD_LIVEPATCH}: get_driver_name(), 0: {module_sym(klp, MOD_TARGET, 'get_driver_name')} "
        f"{MOD_TARGET}"
    )


def klp_sites(klp, objname: str) -> list[tuple[int, int]]:
    """(address, size) of each relocation target of test_klp_convert1's .klp.rela.<objname>.*."""
    mod = klp.machine.kernel.modules.find(MOD_LIVEPATCH)
    elf = ELFFile(io.BytesIO(shipped_module(MOD_LIVEPATCH).read_bytes()))
    sites = []
    for sec in elf.iter_sections():
        if sec.name.startswith(f".klp.rela.{objname}."):
            base = mod.sections[elf.get_section(sec["sh_info"]).name]
            sites += [(base + r["r_offset"], SIZES[r["r_info_type"]]) for r in sec.iter_relocations()]
    assert sites
    return sites


def site_values(klp, objname: str) -> list[bytes]:
    return [klp.machine.mem.read(a, size) for a, size in klp_sites(klp, objname)]


def edited_livepatch(old: str, new: str) -> str:
    """The shipped test_klp_convert1.ko with one string of its string table replaced (new no
    longer than old: the rest is padding). Written to bad/ in the working directory."""
    data = shipped_module(MOD_LIVEPATCH).read_bytes()
    old_b, new_b = old.encode() + b"\0", new.encode() + b"\0"
    assert data.count(old_b) == 1 and len(new_b) <= len(old_b)
    path = Path("bad") / f"{MOD_LIVEPATCH}.ko"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data.replace(old_b, new_b.ljust(len(old_b), b"\0")))
    return str(path)


def load_failing(klp, path: str) -> None:
    """load_failing_mod for a module outside test_modules/."""
    klp.log(f"% insmod {path}")
    status, out = klp.sh(f"insmod {path}")
    assert status != 0, f"{path} unexpectedly loaded"
    klp.log(out.strip())


def snapshot(klp) -> dict:
    m = klp.machine
    heap = m.heap
    return {
        "modules": [(mod.name, m.kernel.modules.refcount(mod)) for mod in m.kernel.modules.list()],
        "patches": list(m.kernel.livepatch.patches),
        "records": len(m.kernel.ftrace.records),
        "heap": [list(r.free) for r in (heap.text, heap.module_data, heap.data)],
        "sysfs": vfs_tree(klp.vfs.lookup(SYSFS_KLP_DIR)),
    }


# --- the relocations at work --------------------------------------------------------------------


def test_relocations_of_a_loaded_target_are_written_at_enable(klp):
    klp.start_test("klp-convert symbols, target module loaded first")

    klp.load_mod(MOD_TARGET)
    klp.load_lp(MOD_LIVEPATCH)
    target = target_lines(klp)
    klp.log_matching(MOD_LIVEPATCH, f"/proc/{MOD_TARGET}")
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)
    klp.unload_mod(MOD_TARGET)

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET}.ko
{MOD_TARGET}: {MOD_TARGET}_init
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
{init_lines(klp)}
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete
{target}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
""")


def test_a_target_loaded_later_gets_them_and_a_reloaded_one_gets_them_again(klp):
    klp.start_test("klp-convert symbols, target module loaded later, unloaded and loaded again")

    klp.load_lp(MOD_LIVEPATCH)
    assert set(site_values(klp, MOD_TARGET)) == {bytes(4)}  # not there yet: nothing written
    vmlinux_sites = site_values(klp, "vmlinux")
    klp.load_mod(MOD_TARGET)
    first = target_lines(klp)
    written = site_values(klp, MOD_TARGET)
    assert bytes(4) not in written
    klp.log_matching(MOD_LIVEPATCH, f"/proc/{MOD_TARGET}")
    klp.unload_mod(MOD_TARGET)
    assert set(site_values(klp, MOD_TARGET)) == {bytes(4)}  # cleared as it went
    klp.load_mod(MOD_OTHER)  # takes the memory the target had
    klp.load_mod(MOD_TARGET)
    second = target_lines(klp)
    assert second != first and site_values(klp, MOD_TARGET) != written
    klp.log_matching(MOD_LIVEPATCH, f"/proc/{MOD_TARGET}")
    assert site_values(klp, "vmlinux") == vmlinux_sites  # the module relocations only
    klp.unload_mod(MOD_TARGET)
    klp.unload_mod(MOD_OTHER)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
{init_lines(klp)}
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_LIVEPATCH}' to loading module '{MOD_TARGET}'
{MOD_TARGET}: {MOD_TARGET}_init
{first}
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
livepatch: reverting patch '{MOD_LIVEPATCH}' on unloading module '{MOD_TARGET}'
% insmod test_modules/{MOD_OTHER}.ko
{MOD_OTHER}: {MOD_OTHER}_init
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_LIVEPATCH}' to loading module '{MOD_TARGET}'
{MOD_TARGET}: {MOD_TARGET}_init
{second}
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
livepatch: reverting patch '{MOD_LIVEPATCH}' on unloading module '{MOD_TARGET}'
% rmmod {MOD_OTHER}
{MOD_OTHER}: {MOD_OTHER}_exit
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")


def test_sympos_picks_one_of_two_same_named_statics(klp):
    """get_idle_time,2 is the other definition: the same module with the position edited."""
    path = edited_livepatch(".klp.sym.vmlinux.get_idle_time,1", ".klp.sym.vmlinux.get_idle_time,2")
    first, second = (klp.machine.image.lookup("get_idle_time", pos).addr for pos in (1, 2))
    assert first != second
    klp.start_test("klp-convert symbols, the second of two")
    klp.log(f"% insmod {path}")
    assert klp.sh(f"insmod {path}") == (0, "")
    klp.check_result(f"""\
% insmod {path}
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
{MOD_LIVEPATCH}: proc_cmdline, 0: {vmlinux_sym(klp, "proc_cmdline")} /proc/cmdline
{MOD_LIVEPATCH}: get_idle_time, 1: {addr(second)}
""")


# --- bad .klp.sym symbols -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, case, line",
    [
        (
            ".klp.sym.vmlinux.proc_cmdline,0",
            ".klp.sym.vmlinux.proc_cmdlinX,0",
            "unknown vmlinux symbol",
            "livepatch: symbol 'proc_cmdlinX' not found in symbol table",
        ),
        (
            ".klp.sym.vmlinux.get_idle_time,1",
            ".klp.sym.vmlinux.get_idle_time,3",
            "sympos past the last",
            "livepatch: symbol position 3 for symbol 'get_idle_time' in object 'vmlinux' not found",
        ),
        (
            ".klp.sym.vmlinux.get_idle_time,1",
            ".klp.sym.vmlinux.get_idle_time,0",
            "ambiguous symbol",
            "livepatch: unresolvable ambiguity for symbol 'get_idle_time' in object '(null)'",
        ),
        (
            ".klp.sym.vmlinux.proc_cmdline,0",
            ".klp.sym.vmlinux.proc_cmdline",
            "no sympos",
            "livepatch: symbol .klp.sym.vmlinux.proc_cmdline has an incorrectly formatted name",
        ),
    ],
)
def test_a_bad_vmlinux_klp_symbol_fails_the_load(klp, old, new, case, line):
    path = edited_livepatch(old, new)
    before = snapshot(klp)
    klp.start_test(f"klp-convert symbols, {case}")
    load_failing(klp, path)
    klp.check_result(f"""\
% insmod {path}
{line}
insmod: ERROR: could not insert module {path}: Invalid parameters
""")
    assert snapshot(klp) == before


def test_an_unknown_module_symbol_fails_the_enable(klp):
    path = edited_livepatch(f".klp.sym.{MOD_TARGET}.driver_name,0", f".klp.sym.{MOD_TARGET}.driver_namX,0")
    klp.load_mod(MOD_TARGET)
    before = snapshot(klp)
    klp.start_test("klp-convert symbols, unknown module symbol, module loaded")
    load_failing(klp, path)
    klp.check_result(f"""\
% insmod {path}
livepatch: symbol 'driver_namX' not found in symbol table
insmod: ERROR: could not insert module {path}: Invalid parameters
""")
    assert snapshot(klp) == before
    assert klp.cat(f"/proc/{MOD_TARGET}") == f"{MOD_TARGET}: original output\n"


def test_an_unknown_module_symbol_refuses_the_module_that_comes_later(klp):
    path = edited_livepatch(f".klp.sym.{MOD_TARGET}.driver_name,0", f".klp.sym.{MOD_TARGET}.driver_namX,0")
    klp.log(f"% insmod {path}")
    assert klp.sh(f"insmod {path}") == (0, "")
    assert klp.sh(f"wait {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/transition 0")[0] == 0
    before = snapshot(klp)
    klp.start_test("klp-convert symbols, unknown module symbol, module loaded later")
    klp.load_failing_mod(MOD_TARGET)
    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET}.ko
livepatch: symbol 'driver_namX' not found in symbol table
livepatch: failed to initialize patch '{MOD_LIVEPATCH}' for module '{MOD_TARGET}' (-22)
livepatch: patch '{MOD_LIVEPATCH}' failed for module '{MOD_TARGET}', refusing to load module '{MOD_TARGET}'
insmod: ERROR: could not insert module test_modules/{MOD_TARGET}.ko: Invalid parameters
""")
    assert snapshot(klp) == before
    assert set(site_values(klp, MOD_TARGET)) == {bytes(4)}  # not one relocation written


def test_a_module_section_may_not_reach_into_vmlinux(klp):
    path = edited_livepatch(f".klp.sym.{MOD_TARGET}.driver_name,0", ".klp.sym.vmlinux.driver_name,0")
    klp.load_mod(MOD_TARGET)
    before = snapshot(klp)
    klp.start_test("klp-convert symbols, vmlinux symbol in a module section")
    load_failing(klp, path)
    klp.check_result(f"""\
% insmod {path}
livepatch: invalid access to vmlinux symbol 'driver_name' from module-specific livepatch relocation section
insmod: ERROR: could not insert module {path}: Invalid parameters
""")
    assert snapshot(klp) == before
