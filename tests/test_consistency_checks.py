"""check_consistency: every host cache of guest state is checked against guest memory, and a
disagreement is reported (the randomised tests call it after every step)."""

from __future__ import annotations

import pytest
from machine_util import booted_system, shell_run

from klpemu.kernel.ftrace.ops import FL
from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.module import shipped_module


@pytest.fixture
def system():
    return booted_system()


def test_a_booted_kernel_is_consistent(system):
    assert system.kernel.check_consistency() == []


def test_a_filter_hash_changed_behind_the_hosts_back_is_reported(system):
    ft = system.kernel.ftrace
    ops = ft.ops_python("mine", lambda ip, parent_ip, regs: None, FL["SAVE_REGS"])
    ft.set_filter(ops, ["cmdline_proc_show"])
    ft.register(ops)
    assert system.kernel.check_consistency() == []
    m = system.machine
    m.struct("ftrace_hash", m.struct("ftrace_ops", ops.addr).filter_hash).count = 0
    assert system.kernel.check_consistency() == ["ftrace: mine: filter_hash differs from the host's set"]


def test_a_module_memory_moved_behind_the_hosts_back_is_reported(system):
    mod = system.kernel.modules.load(shipped_module("hello"))
    assert system.kernel.check_consistency() == []
    m = system.machine
    m.struct("module", mod.addr).mem[m.types.enum("MOD_TEXT")].base = 0
    (problem,) = system.kernel.check_consistency()
    assert problem.startswith("module hello: MOD_TEXT is ")


def test_a_func_unpatched_behind_the_hosts_back_is_reported(system):
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    patch = b.patch("p1", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])])
    lp.enable(patch)
    assert system.kernel.check_consistency() == []
    (func,) = lp.all_funcs(patch)
    func.patched = 0
    assert system.kernel.check_consistency() == [
        f"klp_ops of {func.old_func:#x}: func {func:#x} is not a patched func of it"
    ]


def test_an_int3_removed_behind_the_hosts_back_is_reported(system):
    status, _, err = shell_run(system, "kprobe cmdline_proc_show+5; kprobe cmdline_proc_show")
    assert (status, err) == (0, "")
    assert system.kernel.check_consistency() == []
    m = system.machine
    addr = m.image.addr("cmdline_proc_show") + 5
    m.mem.write(addr, b"\x90")  # as if the int3 had been taken out by someone else
    assert system.kernel.check_consistency() == [f"kprobe at {addr:#x}: armed, but no int3 in the text there"]
