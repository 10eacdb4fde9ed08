"""The shell as a debugger's inspector: print and ptype through drgn, gdb's syntax kept whole
(`|`, `>`, `&`, quotes belong to the expression), numbered values, drgn's console, a core."""

from __future__ import annotations

import subprocess
import sys

import pytest
from machine_util import booted_system, shell_run

pytest.importorskip("drgn")


@pytest.fixture(scope="module")
def system():
    system = booted_system()
    status, _, err = shell_run(
        system, "insmod livepatch-sample; wait /sys/kernel/livepatch/livepatch_sample/transition 0"
    )
    assert status == 0, err
    return system


def test_print_numbers_its_values_and_keeps_the_expression_whole(system):
    image = system.machine.image
    status, out, err = shell_run(
        system,
        "print 1 | 6; p/x 0x10 > 3; print 'a'; print ftrace_list_end.func; print/x sizeof(struct klp_func)",
    )
    assert (status, err) == (0, "")
    sizeof_klp_func = system.machine.types.sizeof("klp_func")
    assert out.splitlines() == [
        "$1 = (int)7",
        "$2 = (int)0x1",
        "$3 = (char)97",
        f"$4 = (ftrace_func_t)ftrace_stub+0x0 = {image.addr('ftrace_stub'):#x}",
        f"$5 = (unsigned long){sizeof_klp_func:#x}",
    ]


def test_print_reads_the_livepatch_structures_of_a_loaded_module(system):
    mod = system.kernel.modules.find("livepatch_sample")
    _, out, _ = shell_run(system, "print patch.mod; print *patch.objs->funcs->old_name; print patch.enabled")
    assert out.splitlines() == [f"$1 = (struct module *){int(mod.struct):#x}", "$2 = (const char)99", "$3 = (bool)1"]


def test_ptype_and_bad_expressions(system):
    status, out, err = shell_run(system, "ptype struct klp_ops; ptype patch.replace; print nosuch; print/q 1; print")
    assert out.splitlines() == [
        "type = struct klp_ops {",
        "\tstruct list_head node;",
        "\tstruct list_head func_stack;",
        "\tstruct ftrace_ops fops;",
        "}",
        "type = _Bool",
    ]
    assert err.splitlines() == [
        'print: No symbol "nosuch" in current context.',
        'print: undefined output format "q" (one of x, d, u, o, t)',
        "usage: print[/FMT] EXPR",
        "print: an expression is needed (e.g. print ftrace_ops_list->func)",
        "usage: print[/FMT] EXPR",
    ]
    assert status == 1


def test_a_register_in_an_expression_is_the_cpus(system):
    rip = system.machine.cpus[0].reg("rip")
    _, out, _ = shell_run(system, "print/x $rip")
    assert out == f"$1 = (unsigned long){rip:#x}\n"


def test_dump_writes_a_core_and_says_so(system, tmp_path):
    path = tmp_path / "core"
    status, out, _ = shell_run(system, f"dump {path}")
    assert status == 0 and path.stat().st_size > 0
    assert out == f"core of 2 CPUs written to {path} ({path.stat().st_size} bytes)\n"
    status, _, err = shell_run(system, f"dump {tmp_path}/no/such/dir/core")
    assert status == 1 and err == f"dump: {tmp_path}/no/such/dir/core: No such file or directory\n"


def test_klpemu_drgn_opens_the_console_after_the_setup(tmp_path):
    script = 'print(prog["livepatch_cmdline_proc_show"].type_.type_name())\n'
    result = subprocess.run(
        [sys.executable, "-m", "klpemu", "drgn", "--setup", "insmod livepatch-sample"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert ">>> int (struct seq_file *m, void *v)\n" in result.stdout
