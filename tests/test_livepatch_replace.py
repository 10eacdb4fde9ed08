"""Atomic replace and system states, with patches built from Python: nops, what is left after a
cumulative patch completes or is reversed, stack_order, and the state compatibility rule."""

from __future__ import annotations

import re

import pytest
from machine_util import booted_system, vfs_tree

from klpemu.errors import KlpemuError
from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.printk import records
from klpemu.kernel.tasks import all_tasks

SEC = 1_000_000_000
LP = "/sys/kernel/livepatch"
NOP5 = bytes.fromhex("0f1f440000")


@pytest.fixture
def system():
    return booted_system()


def settle(m):
    lp = m.kernel.livepatch
    assert m.run_until(lambda: lp.transition.patch is None, 5 * SEC)


def enable(m, name, pairs, replace=False, states=()):
    b = KlpBuilder(m.kernel.livepatch)
    patch = b.patch(name, [b.object(None, [b.func(o, n) for o, n in pairs])], replace=replace, states=states)
    m.kernel.livepatch.enable(patch)
    return patch


def site(m, name):
    return m.mem.read(m.image.addr(name), 5)


def snapshot(system):
    """Everything a failed enable must leave alone."""
    m = system.machine
    lp = m.kernel.livepatch
    stacks = {old: lp.patch_layer.func_stack(old) for old in lp.patch_layer.ops}
    return (
        [m.mem.read(ip, 5) for ip in m.kernel.ftrace.records.ips()],
        stacks,
        list(lp.patches),
        vfs_tree(system.vfs.lookup(LP)),
    )


def test_replace_drops_what_the_new_patch_does_not_change(system):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    meminfo = system.console.read_file("/proc/meminfo")
    p1 = enable(m, "p1", [("cmdline_proc_show", "version_proc_show")])
    settle(m)
    p2 = enable(m, "p2", [("meminfo_proc_show", "version_proc_show")])
    settle(m)
    assert site(m, "meminfo_proc_show") != NOP5
    p3 = enable(m, "p3", [("cmdline_proc_show", "uptime_proc_show")], replace=True)
    # In transition: a nop sits on top of meminfo_proc_show's stack, above p2's func.
    stack = lp.patch_layer.func_stack(m.image.addr("meminfo_proc_show"))
    assert len(stack) == 2 and m.struct("klp_func", stack[0]).nop and stack[1] == lp.all_funcs(p2)[0]
    assert vfs.exists(f"{LP}/p3/vmlinux/meminfo_proc_show,1")
    settle(m)
    # The replaced patches are disabled and freed, the nops discarded, the site a NOP5 again.
    assert lp.patches == [p3]
    assert not m.struct("klp_patch", p1).enabled and not m.struct("klp_patch", p2).enabled
    assert [d.name for d in vfs.listdir(LP)] == ["p3"] and vfs.read(f"{LP}/p3/stack_order") == "1\n"
    assert not vfs.exists(f"{LP}/p3/vmlinux/meminfo_proc_show,1")
    assert site(m, "meminfo_proc_show") == NOP5
    assert lp.patch_layer.func_stack(m.image.addr("cmdline_proc_show")) == lp.all_funcs(p3)
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d\n", system.console.read_file("/proc/cmdline"))  # uptime's
    assert system.console.read_file("/proc/meminfo").splitlines()[0] == meminfo.splitlines()[0]
    assert vfs.read(f"{LP}/p3/replace") == "1\n"


def test_replace_output_and_disable_restores_the_original(system):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    original = system.console.read_file("/proc/cmdline")
    version = system.console.read_file("/proc/version")
    enable(m, "p1", [("cmdline_proc_show", "version_proc_show")])
    settle(m)
    p2 = enable(m, "p2", [("cmdline_proc_show", "version_proc_show")], replace=True)
    settle(m)
    assert system.console.read_file("/proc/cmdline") == version
    lp.disable(p2)
    settle(m)
    assert lp.patches == [] and vfs.listdir(LP) == []
    assert site(m, "cmdline_proc_show") == NOP5
    assert system.console.read_file("/proc/cmdline") == original


def test_reversing_a_replace_keeps_the_old_patches(system):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    p1 = enable(m, "p1", [("meminfo_proc_show", "version_proc_show")])
    settle(m)
    before = site(m, "meminfo_proc_show")
    # khungtaskd sleeps in watchdog for good: the replace stays in transition until reversed.
    p2 = enable(m, "p2", [("watchdog", "version_proc_show")], replace=True)
    m.run(2 * SEC)
    assert lp.transition.patch == p2
    vfs.write(f"{LP}/p2/enabled", "0")
    settle(m)
    assert lp.patches == [p1] and m.struct("klp_patch", p1).enabled
    assert lp.patch_layer.func_stack(m.image.addr("meminfo_proc_show")) == lp.all_funcs(p1)
    assert site(m, "meminfo_proc_show") == before and site(m, "watchdog") == NOP5
    assert all(t.patch_state == -1 for t in all_tasks(m))


def test_forced_replace_pins_the_replaced_patches(system):
    m, vfs = system.machine, system.vfs
    lp = m.kernel.livepatch
    p1 = enable(m, "p1", [("meminfo_proc_show", "version_proc_show")])
    settle(m)
    p2 = enable(m, "p2", [("watchdog", "version_proc_show")], replace=True)
    m.run(2 * SEC)
    vfs.write(f"{LP}/p2/force", "1")
    settle(m)
    assert lp.transition.patch is None and lp.patches == [p2]
    assert m.struct("klp_patch", p1).forced and not m.struct("klp_patch", p2).forced


@pytest.mark.parametrize(
    "installed, new, replace, ok",
    [
        ([(1, 1)], [], False, True),  # a patch that does not replace need not know the state
        ([(1, 1)], [], True, False),  # a replacing one must take it over
        ([(1, 2)], [(1, 1)], True, False),  # not at an older version
        ([(1, 2)], [(1, 2)], True, True),
        ([(1, 2)], [(1, 3), (7, 1)], True, True),  # new ids are always welcome
    ],
)
def test_state_compatibility(system, installed, new, replace, ok):
    m = system.machine
    lp = m.kernel.livepatch
    enable(m, "old", [("meminfo_proc_show", "version_proc_show")], states=installed)
    settle(m)
    before = snapshot(system)
    if ok:
        enable(m, "new", [("cmdline_proc_show", "version_proc_show")], replace=replace, states=new)
        settle(m)
        assert lp.patches[-1] != before[2][-1]
        return
    with pytest.raises(KlpemuError) as e:
        enable(m, "new", [("cmdline_proc_show", "version_proc_show")], replace=replace, states=new)
    assert e.value.errno == 22
    assert snapshot(system) == before
    assert records(m)[-1].text == (
        "livepatch: Livepatch patch (new) is not compatible with the already installed livepatches."
    )


def test_klp_get_prev_state_reads_the_guest_lists(system):
    """klp_get_state / klp_get_prev_state are guest code over klp_patches and klp_transition_patch."""
    m = system.machine
    lp = m.kernel.livepatch
    p1 = enable(m, "p1", [("meminfo_proc_show", "version_proc_show")], states=[(5, 1)])
    settle(m)
    first = m.struct("klp_patch", p1).states
    assert m.call("klp_get_state", p1, 5) == first
    assert m.call("klp_get_state", p1, 6) == 0
    assert m.call("klp_get_prev_state", 5) == 0  # no transition: NULL (and a warning)
    p2 = enable(m, "p2", [("watchdog", "version_proc_show")], replace=True, states=[(5, 2)])
    assert lp.transition.patch == p2
    assert m.call("klp_get_prev_state", 5) == first
    assert m.call("klp_get_prev_state", 9) == 0


def test_second_transition_is_refused_and_changes_nothing(system):
    m = system.machine
    lp = m.kernel.livepatch
    enable(m, "p1", [("watchdog", "version_proc_show")])
    before = snapshot(system)
    with pytest.raises(KlpemuError) as e:
        enable(m, "p2", [("cmdline_proc_show", "version_proc_show")])
    assert e.value.errno == 16
    assert snapshot(system) == before
    assert lp.transition.patch == before[2][0]
