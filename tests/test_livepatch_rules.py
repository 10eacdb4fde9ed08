"""Smaller rules of the livepatch core where Linux is specific: how arrays end, duplicate sysfs
names, the order errors are found in, kstrtobool, and the transition's one queued retry."""

from __future__ import annotations

import pytest
from machine_util import booted_system

from klpemu.errors import KlpemuError
from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.kernel.printk import records

SEC = 1_000_000_000
LP = "/sys/kernel/livepatch"


@pytest.fixture
def system():
    return booted_system()


def klp_lines(m, start=0):
    return [r.text for r in records(m)[start:] if r.text.startswith(("livepatch:", "sysfs:", "kobject:"))]


def settle(m):
    lp = m.kernel.livepatch
    assert m.run_until(lambda: lp.transition.patch is None, 5 * SEC)


def test_an_object_with_a_name_and_no_funcs_is_refused(system):
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    patch = b.patch(
        "p",
        [
            b.object(None, [b.func("cmdline_proc_show", "version_proc_show")]),
            b.object("some_module", [b.func("f", "version_proc_show")]),
        ],
    )
    second = m.struct("klp_patch", patch).objs + m.types.sizeof("klp_object")
    m.struct("klp_object", second).funcs = 0  # named, but no funcs: not the end of the array
    with pytest.raises(KlpemuError) as e:
        m.kernel.livepatch.enable(patch)
    assert e.value.errno == 22 and m.kernel.livepatch.patches == []


def test_a_func_with_new_func_but_no_old_name_is_refused_not_taken_for_the_end(system):
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    patch = b.patch(
        "p",
        [
            b.object(
                None,
                [b.func("cmdline_proc_show", "version_proc_show"), b.func("meminfo_proc_show", "version_proc_show")],
            )
        ],
    )
    funcs = m.struct("klp_object", m.struct("klp_patch", patch).objs).funcs
    m.struct("klp_func", funcs + m.types.sizeof("klp_func")).old_name = 0
    with pytest.raises(KlpemuError) as e:
        m.kernel.livepatch.enable(patch)
    assert e.value.errno == 22


def test_an_empty_replace_patch_reverts_everything(system):
    m = system.machine
    lp = m.kernel.livepatch
    b = KlpBuilder(m.kernel.livepatch)
    original = system.console.read_file("/proc/cmdline")
    lp.enable(b.patch("p1", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])]))
    settle(m)
    assert system.console.read_file("/proc/cmdline") != original
    revert = b.patch("revert", [], replace=True)
    lp.enable(revert)
    settle(m)
    assert lp.patches == [revert]
    assert system.console.read_file("/proc/cmdline") == original
    assert m.mem.read(m.image.addr("cmdline_proc_show"), 5) == bytes.fromhex("0f1f440000")


def test_duplicate_sysfs_names_are_refused_with_eexist(system):
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    patch = b.patch(
        "dup",
        [
            b.object(
                None,
                [b.func("cmdline_proc_show", "version_proc_show"), b.func("cmdline_proc_show", "uptime_proc_show")],
            )
        ],
    )
    start = len(records(m))
    with pytest.raises(KlpemuError) as e:
        m.kernel.livepatch.enable(patch)
    assert e.value.errno == 17
    assert klp_lines(m, start) == [
        "sysfs: cannot create duplicate filename '/kernel/livepatch/dup/vmlinux/cmdline_proc_show,1'",
        "kobject: kobject_add_internal failed for cmdline_proc_show,1 with -EEXIST, don't try to register "
        "things with the same name in the same directory.",
    ]
    assert m.kernel.livepatch.patches == [] and m.kernel.klp_patch.ops == {}


def test_objects_are_checked_one_after_the_other(system):
    """klp_init_object runs per object: the first object's unknown symbol is what is reported,
    although a later object has a func without new_func."""
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    patch = b.patch(
        "order",
        [
            b.object(None, [b.func("no_such_function", "version_proc_show")]),
            b.object("test_klp_callbacks_mod", [b.func("x", 0)]),
        ],
    )
    start = len(records(m))
    with pytest.raises(KlpemuError) as e:
        m.kernel.livepatch.enable(patch)
    assert e.value.errno == 22
    assert klp_lines(m, start) == ["livepatch: symbol 'no_such_function' not found in symbol table"]


def test_a_data_symbol_is_found_but_has_no_fentry_site(system):
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    start = len(records(m))
    with pytest.raises(KlpemuError) as e:
        m.kernel.livepatch.enable(b.patch("data", [b.object(None, [b.func("jiffies", "version_proc_show")])]))
    assert e.value.errno == 22
    assert klp_lines(m, start)[:3] == [
        "livepatch: enabling patch 'data'",
        "livepatch: 'data': initializing patching transition",
        "livepatch: failed to find location for function 'jiffies'",
    ]


@pytest.mark.parametrize("word, enabled", [("no", 0), ("false\n", 0), ("oFf", 0), ("disable", 0), ("1x", 1)])
def test_enabled_takes_what_kstrtobool_takes(system, word, enabled):
    m = system.machine
    b = KlpBuilder(m.kernel.livepatch)
    m.kernel.livepatch.enable(b.patch("p", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])]))
    settle(m)
    if enabled:
        with pytest.raises(KlpemuError) as e:  # "1x" means 1, which it already is
            system.vfs.write(f"{LP}/p/enabled", word)
        assert e.value.errno == 22
        return
    system.vfs.write(f"{LP}/p/enabled", word)
    settle(m)
    assert m.kernel.livepatch.patches == []


def test_one_queued_retry_after_force_disable_and_a_new_transition(system):
    """force does not attempt completion itself; the queued retry does. Transitions after it
    keep to one queued retry, so the next stuck one signals at its 16th attempt (about 15 s)."""
    m = system.machine
    lp = m.kernel.livepatch
    b = KlpBuilder(m.kernel.livepatch)
    p1 = b.patch("p1", [b.object(None, [b.func("watchdog", "version_proc_show")])])
    lp.enable(p1)
    m.run(SEC * 5 // 2)
    system.vfs.write(f"{LP}/p1/force", "1")
    assert lp.transition.patch is not None and system.vfs.read(f"{LP}/p1/transition") == "1\n"
    settle(m)
    lp.disable(p1)
    settle(m)
    # khungtaskd still sleeps in the original watchdog: a new patch of it is stuck again.
    lp.enable(b.patch("p2", [b.object(None, [b.func("watchdog", "uptime_proc_show")])]))
    m.run(SEC * 29 // 2)
    assert "livepatch: signaling remaining tasks" not in klp_lines(m)
    m.run(SEC)
    assert klp_lines(m).count("livepatch: signaling remaining tasks") == 1


def test_the_retry_waits_while_an_operation_holds_klp_mutex(system):
    m = system.machine
    lp = m.kernel.livepatch
    b = KlpBuilder(m.kernel.livepatch)
    lp.enable(b.patch("p1", [b.object(None, [b.func("watchdog", "version_proc_show")])]))
    attempts = lp.transition.signals_cnt
    lp.calls._running += 1  # as while a module's pre_patch callback runs under klp_mutex
    m.run(3 * SEC + SEC // 2)
    assert lp.transition.signals_cnt == attempts
    lp.calls._running -= 1
    m.run(SEC + SEC // 10)
    assert lp.transition.signals_cnt == attempts + 1
