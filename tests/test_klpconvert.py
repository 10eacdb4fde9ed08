"""klp-convert (klpemu/klpconvert.py): KLP_MODULE_RELOC annotations become .klp.sym symbols and
.klp.rela sections, as Documentation/livepatch/module-elf-format.rst lays them out; what it
refuses, with its messages; and that it runs on the standard library alone, as the firmware
Makefile runs it."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from machine_util import booted_system, shell_run

from klpemu.kernel.module import shipped_module
from klpemu.klpconvert import KlpConvertError, convert
from klpemu.machine.machine import shipped_image
from klpemu.modbuild import module_command

REPO = Path(__file__).resolve().parent.parent
SHF_ALLOC, SHF_INFO_LINK, SHF_RELA_LIVEPATCH = 0x2, 0x40, 0x00100000
SHN_LIVEPATCH = 0xFF20
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def elf_of(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


def symbols(elf: ELFFile) -> list:
    symtab = next(s for s in elf.iter_sections() if isinstance(s, SymbolTableSection))
    return list(symtab.iter_symbols())


# --- the shipped livepatch, as the Makefile converted it ----------------------------------------


def test_the_shipped_module_has_klp_sections_and_livepatch_symbols():
    elf = elf_of(shipped_module("test_klp_convert1").read_bytes())
    names = [s.name for s in elf.iter_sections()]
    assert not [n for n in names if "module_relocs" in n]
    klp = {s.name: s for s in elf.iter_sections() if s.name.startswith(".klp.rela.")}
    assert sorted(klp) == [".klp.rela.test_klp_convert_mod..text", ".klp.rela.vmlinux..text"]
    symtab_index = names.index(".symtab")
    for sec in klp.values():
        assert sec["sh_type"] == "SHT_RELA"
        assert sec["sh_flags"] == SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH
        assert (sec["sh_link"], sec["sh_info"]) == (symtab_index, names.index(".text"))
    syms = symbols(elf)
    livepatch = sorted(s.name for s in syms if s["st_shndx"] == SHN_LIVEPATCH)
    assert livepatch == [
        ".klp.sym.test_klp_convert_mod.driver_name,0",
        ".klp.sym.test_klp_convert_mod.get_driver_name,0",
        ".klp.sym.vmlinux.get_idle_time,1",
        ".klp.sym.vmlinux.proc_cmdline,0",
    ]
    assert all(s.name.startswith(".klp.sym.") for s in syms if s["st_shndx"] == SHN_LIVEPATCH)
    # The annotations and their symbols are gone; nothing else is left for the loader to resolve.
    assert not {"vmlinux_relocs", "test_klp_convert_mod_relocs"} & {s.name for s in syms}
    undefined = {s.name for s in syms if s["st_shndx"] == "SHN_UNDEF" and s.name}
    assert undefined == {"__fentry__", "__this_module", "seq_printf", "klp_enable_patch", "printk"}
    # Every relocation against a livepatch symbol is in a klp section, and only those are there.
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_RELA":
            continue
        in_klp = sec.name in klp
        for r in sec.iter_relocations():
            assert (syms[r["r_info_sym"]]["st_shndx"] == SHN_LIVEPATCH) == in_klp, (sec.name, r)


def test_objects_without_annotations_and_converted_ones_are_left_as_they_are():
    for name in ("hello", "test_klp_livepatch", "test_klp_convert1"):
        data = shipped_module(name).read_bytes()
        assert convert(data) == data


def test_it_needs_only_the_standard_library(tmp_path):
    """As the firmware Makefile runs it: python -m klpemu.klpconvert with the tree on the path and
    no site-packages (-S: no pyelftools); the result is the shipped module."""
    out = tmp_path / "out.ko"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [sys.executable, "-S", "-m", "klpemu.klpconvert", str(shipped_module("hello")), str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert (res.returncode, res.stderr) == (0, "")
    assert out.read_bytes() == shipped_module("hello").read_bytes()
    check = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import sys, klpemu.klpconvert; print(sorted(m for m in sys.modules if m.split('.')[0] == 'elftools'))",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert check.stdout == "[]\n"


def test_a_file_that_is_not_an_object_is_refused(tmp_path):
    with pytest.raises(KlpConvertError) as e:
        convert(shipped_image().read_bytes())  # linked: ET_EXEC
    assert e.value.messages == ["not an x86_64 relocatable object (gcc -c output)"]
    with pytest.raises(KlpConvertError) as e:
        convert(b"\x7fELF" + bytes(60))
    assert e.value.messages == ["not a little-endian ELF64 object"]
    res = subprocess.run(
        [sys.executable, "-m", "klpemu.klpconvert", str(tmp_path / "none.o"), str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1
    assert res.stderr == f"klp-convert: {tmp_path / 'none.o'}: No such file or directory\n"
    assert not (tmp_path / "x").exists()


# --- annotations it refuses (compiled with the kernel's flags) ----------------------------------

HEADER = """\
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/proc_fs.h>

extern const struct proc_dir_entry proc_cmdline;
extern unsigned long get_idle_time(int cpu);
"""


def compile_object(tmp_path: Path, body: str, name: str = "annotated") -> bytes:
    src = tmp_path / f"{name}.c"
    src.write_text(HEADER + body)
    out = tmp_path / f"{name}.o"
    subprocess.run(module_command(src, out), check=True, capture_output=True)
    return out.read_bytes()


def refusal(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(KlpConvertError) as e:
        convert(compile_object(tmp_path, body))
    return e.value.messages


@needs_gcc
def test_two_positions_for_one_symbol_conflict(tmp_path):
    assert refusal(
        tmp_path,
        """
KLP_MODULE_RELOC(vmlinux) a[] = { KLP_SYMPOS(get_idle_time, 1) };
KLP_MODULE_RELOC(vmlinux) b[] = { KLP_SYMPOS(get_idle_time, 2) };
unsigned long f(void) { return get_idle_time(0); }
""",
    ) == ["Conflicting KLP_SYMPOS definition: vmlinux.get_idle_time 1 vs. 2."]


@needs_gcc
def test_an_annotation_nothing_uses_is_refused(tmp_path):
    assert refusal(
        tmp_path,
        """
KLP_MODULE_RELOC(vmlinux) a[] = { KLP_SYMPOS(get_idle_time, 1), KLP_SYMPOS(proc_cmdline, 0) };
unsigned long f(void) { return get_idle_time(0); }
""",
    ) == ["Couldn't find rela for annotated symbol: proc_cmdline"]


@needs_gcc
def test_init_code_cannot_hold_klp_relocations(tmp_path):
    """Init memory is freed after init, before a module object's relocations may be written."""
    assert refusal(
        tmp_path,
        """
KLP_MODULE_RELOC(vmlinux) a[] = { KLP_SYMPOS(get_idle_time, 1) };
static int __init f(void) { return get_idle_time(0); }
module_init(f);
""",
    ) == ["Conversion not supported for symbol: get_idle_time section: .rela.init.text object: vmlinux"]


@needs_gcc
def test_a_symbol_the_module_defines_is_refused(tmp_path):
    assert refusal(
        tmp_path,
        """
int mine;
KLP_MODULE_RELOC(vmlinux) a[] = { KLP_SYMPOS(mine, 0) };
int f(void) { return mine; }
""",
    ) == ["KLP_SYMPOS(mine) names a symbol this object defines"]


# --- klpemu build-module ------------------------------------------------------------------------

MODULE = """
KLP_MODULE_RELOC(vmlinux) relocs[] = {
	KLP_SYMPOS(proc_cmdline, 0),
	KLP_SYMPOS(get_idle_time, 2),
};

static struct klp_func funcs[] = { { } };
static struct klp_object objs[] = { { .funcs = funcs }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int my_init(void)
{
	int ret = klp_enable_patch(&patch);

	if (!ret)
		pr_info("%s %px\\n", proc_cmdline.name, get_idle_time);
	return ret;
}

static void my_exit(void)
{
}

module_init(my_init);
module_exit(my_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
"""


@needs_gcc
def test_build_module_converts_and_the_module_loads(tmp_path):
    src = tmp_path / "my-convert.c"
    src.write_text(HEADER + MODULE)
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "build-module", str(src)], capture_output=True, text=True, check=False
    )
    assert (res.returncode, res.stderr) == (0, "")
    ko = tmp_path / "my-convert.ko"
    klp = [s.name for s in elf_of(ko.read_bytes()).iter_sections() if s.name.startswith(".klp.")]
    assert klp == [".klp.rela.vmlinux..text"]
    system = booted_system()
    m = system.machine
    status, _, err = shell_run(system, f"insmod {ko}; wait /sys/kernel/livepatch/my_convert/transition 0")
    assert (status, err) == (0, "")
    second = m.image.lookup("get_idle_time", 2).addr
    _, out, _ = shell_run(system, "dmesg")
    assert f"/proc/cmdline {second:016x}" in out.splitlines()[-3]


@needs_gcc
def test_build_module_reports_klp_convert_and_leaves_no_module(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text(HEADER + "KLP_MODULE_RELOC(vmlinux) a[] = { KLP_SYMPOS(get_idle_time, 1) };\n")
    res = subprocess.run(
        [sys.executable, "-m", "klpemu", "build-module", str(src)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 1
    assert res.stderr == (
        f"klp-convert: Couldn't find rela for annotated symbol: get_idle_time\nklpemu: {src}: klp-convert failed\n"
    )
    assert not (tmp_path / "bad.ko").exists()


# --- the firmware Makefile ----------------------------------------------------------------------


@needs_gcc
def test_the_makefile_converts_with_the_system_python(tmp_path):
    """make builds test_klp_convert1.ko through klp-convert with python3 from a PATH without this
    venv; with the gcc that built the images, the result is the shipped module byte for byte."""
    python3 = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if shutil.which("make") is None or python3 is None:
        pytest.skip("make or a system python3 is not installed")
    env = dict(os.environ, PATH=f"{Path(python3).parent}:/usr/bin:/bin")
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    out = tmp_path / "build"
    target = out / "modules" / "test_klp_convert1.ko"
    res = subprocess.run(
        ["make", "-s", "-C", str(REPO / "firmware"), f"O={out}", str(target)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    built = target.read_bytes()
    assert [s.name for s in elf_of(built).iter_sections() if s.name.startswith(".klp.rela.")]
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    if gcc == (REPO / "klpemu/images/vmlinux.gcc").read_text().strip():
        assert built == shipped_module("test_klp_convert1").read_bytes()
