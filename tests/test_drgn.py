"""drgn on the live machine: the guest's memory with the image's types, read as it is now."""

from __future__ import annotations

import pytest
from machine_util import booted_system

from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.tasks import all_tasks

drgn = pytest.importorskip("drgn")
list_for_each_entry = pytest.importorskip("drgn.helpers.linux.list").list_for_each_entry

from klpemu.machine.drgn_program import drgn_program  # noqa: E402


@pytest.fixture(scope="module")
def system():
    return booted_system()


@pytest.fixture(scope="module")
def prog(system):
    return drgn_program(system.machine)


def test_the_current_task_of_each_cpu_is_the_one_the_host_sees(system, prog):
    m = system.machine
    for cpu in range(len(m.cpus)):
        task = prog["pcpu_hot"][cpu].current_task
        assert (task.pid.value_(), task.comm.string_().decode()) == m.task_on(cpu)


def test_symbols_are_the_images(system, prog):
    addr = system.machine.image.addr("cmdline_proc_show")
    assert prog.symbol(addr).name == "cmdline_proc_show"
    assert prog.symbol(addr + 5).name == "cmdline_proc_show"
    assert prog.function("cmdline_proc_show").address_ == addr


def test_an_unmapped_address_is_a_fault(prog):
    with pytest.raises(drgn.FaultError):
        prog.read(0x1000, 8)


def test_a_livepatch_func_stack_read_through_drgn(system, prog):
    """A patch enabled after the Program was made: drgn reads memory live, with the types of
    klp_ops and klp_func, and its list helper walks func_stack as the host does."""
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    patch = b.patch("p1", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])])
    lp.enable(patch)
    (func,) = lp.all_funcs(patch)
    ops = lp.patch_layer.ops[func.old_func]
    klp_ops = drgn.Object(prog, "struct klp_ops *", ops.addr)
    stack = list(list_for_each_entry("struct klp_func", klp_ops.func_stack.address_of_(), "stack_node"))
    assert [f.value_() for f in stack] == [int(func)]
    assert prog.read(stack[0].old_name.value_(), 18) == b"cmdline_proc_show\0"
    assert stack[0].new_func.value_() == system.machine.image.addr("version_proc_show")
    assert drgn.Object(prog, "struct klp_patch *", int(patch)).enabled.value_() == 1


def test_every_task_the_host_lists_is_a_task_struct_drgn_reads(system, prog):
    for task in all_tasks(system.machine):
        obj = drgn.Object(prog, "struct task_struct *", task.addr)
        assert (obj.pid.value_(), obj.comm.string_().decode()) == (task.pid, task.comm)
