"""Typed guest objects in drgn's shape: a pointer member keeps its type, reads and writes go
through it, and container_of / list_for_each_entry take their offsets from DWARF."""

from __future__ import annotations

import copy

import pytest
from machine_util import booted_system

from klpemu.errors import KlpemuError
from klpemu.kernel.tasks import all_tasks
from klpemu.machine.types import Pointer


@pytest.fixture(scope="module")
def system():
    return booted_system()


def test_a_pointer_member_is_typed_and_is_still_the_address(system):
    m = system.machine
    task = m.pcpu(0).current_task
    assert isinstance(task, Pointer) and task.target_type.name == "task_struct"
    assert int(task) == m.mem.read_u64(m.pcpu(0).addr_of("current_task"))
    assert f"{task:x}" == f"{int(task):x}" and str(task) == str(int(task))
    assert {task: 1}[int(task)] == 1  # hashes and compares as the int
    assert (task.pid, task.comm.decode()) == m.task_on(0)  # p->member
    assert task.deref().pid == task.pid
    assert task.addr_of("comm") == int(task) + m.types.offsetof("task_struct", "comm")


def test_writes_go_through_a_pointer(system):
    m = system.machine
    task = m.pcpu(1).current_task
    before = task.patch_state
    task.patch_state = 7
    assert m.struct("task_struct", task).patch_state == 7
    task.patch_state = before


def test_a_null_pointer_refuses_to_be_dereferenced(system):
    m = system.machine
    null = m.ptr("klp_patch", 0)
    assert not null
    with pytest.raises(KlpemuError, match="null dereference of a klp_patch pointer") as e:
        null.objs  # noqa: B018
    assert e.value.errno == 14  # EFAULT


def test_container_of_and_list_for_each_entry_walk_the_task_list(system):
    m = system.machine
    listed = [t for t in all_tasks(m) if not t.is_idle]  # idle tasks are on no list
    first = m.ptr("task_struct", listed[0].addr)
    assert m.container_of(first.addr_of("tasks"), "task_struct", "tasks") == first
    walked = list(m.list_for_each_entry("task_struct", m.var_addr("task_list"), "tasks"))
    assert [int(t) for t in walked] == [t.addr for t in listed]
    assert all(isinstance(t, Pointer) and t.target_type.name == "task_struct" for t in walked)
    assert walked[0].tasks.prev == m.var_addr("task_list")  # the head, from DWARF's list_head


def test_a_copied_pointer_stays_on_the_same_memory_unless_the_machine_is_copied(system):
    m = system.machine
    task = m.pcpu(0).current_task
    assert copy.deepcopy(task).pid == task.pid
    assert copy.copy(task) is task
