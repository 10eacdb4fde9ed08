"""klp_ftrace_handler and the func stacks (kernel/livepatch/patch.c), from real guest structs."""

from __future__ import annotations

import pytest
from machine_util import make_machine

from klpemu.errors import KlpemuError
from klpemu.kernel.ftrace.core import REC
from klpemu.kernel.ftrace.ops import FL
from klpemu.kernel.tasks import all_tasks
from klpemu.machine.console import Console

OLD = "cmdline_proc_show"


@pytest.fixture
def m():
    machine = make_machine()
    return machine


def new_func(m, old: str, new: str, nop: bool = False):
    """A klp_func in guest memory, set up as klp_init_func leaves it: a typed pointer to it."""
    f = m.ptr("klp_func", m.heap.kzalloc(m.types.sizeof("klp_func")))
    old_sym = m.image.lookup(old)
    f.old_func = old_sym.addr
    f.old_size = old_sym.size
    f.new_func = old_sym.addr if nop else m.image.addr(new)
    f.new_size = old_sym.size if nop else m.image.lookup(new).size
    f.nop = int(nop)
    return f


def sh_task(m):
    return next(t for t in all_tasks(m) if t.comm == "sh")


def texts(m):
    c = Console(m)
    return {name: c.read_file(f"/proc/{name}") for name in ("cmdline", "version", "uptime")}


def cat(m):
    return Console(m).read_file("/proc/cmdline")


def test_one_patch_redirects_and_unpatching_restores(m):
    klp = m.kernel.klp_patch
    original = cat(m)
    version = Console(m).read_file("/proc/version")
    f = new_func(m, OLD, "version_proc_show")
    klp.patch_func(f)
    old = m.image.addr(OLD)
    assert klp.func_stack(old) == [f]
    fops = klp.ops[old].fops
    ft = m.kernel.ftrace
    want = FL["ENABLED"] | FL["DYNAMIC"] | FL["IPMODIFY"] | FL["PERMANENT"]
    assert ft.flags(fops) & want == want
    assert not ft.flags(fops) & FL["SAVE_REGS"]  # mainline: redirects through ftrace_caller
    assert ft.records.flags(ft.records.find(old)) & REC["IPMODIFY"]
    assert cat(m) == version
    klp.unpatch_func(f)
    assert klp.func_stack(old) == [] and old not in klp.ops
    assert cat(m) == original
    assert m.mem.read(old, 5) == bytes.fromhex("0f1f440000")


def test_newest_func_wins_and_transition_follows_the_task_state(m):
    klp = m.kernel.klp_patch
    t = texts(m)
    a = new_func(m, OLD, "version_proc_show")
    b = new_func(m, OLD, "uptime_proc_show")
    klp.patch_func(a)
    klp.patch_func(b)
    assert klp.func_stack(m.image.addr(OLD)) == [b, a]
    assert cat(m).count(".") == t["uptime"].count(".")  # uptime's format: two decimals
    sh = sh_task(m)
    # b in transition: a task still UNPATCHED runs the previous patch (a), a PATCHED one b.
    m.struct("klp_func", b).transition = 1
    sh.view.patch_state = 0
    assert cat(m) == t["version"]
    sh.view.patch_state = 1
    assert cat(m).count(".") == t["uptime"].count(".")
    # Only a in transition and alone below... take b off: an UNPATCHED task runs the original.
    m.struct("klp_func", b).transition = 0
    klp.unpatch_func(b)
    m.struct("klp_func", a).transition = 1
    sh.view.patch_state = 0
    assert cat(m) == t["cmdline"]
    sh.view.patch_state = -1


def test_a_nop_func_runs_the_original(m):
    klp = m.kernel.klp_patch
    t = texts(m)
    a = new_func(m, OLD, "version_proc_show")
    klp.patch_func(a)
    nop = new_func(m, OLD, OLD, nop=True)
    klp.patch_func(nop)
    assert cat(m) == t["cmdline"]
    # During a replace transition an UNPATCHED task still runs the replaced patch.
    m.struct("klp_func", nop).transition = 1
    sh_task(m).view.patch_state = 0
    assert cat(m) == t["version"]


def test_patching_a_notrace_function_fails_and_changes_nothing(m):
    klp = m.kernel.klp_patch
    f = new_func(m, "__switch_to", "version_proc_show")
    with pytest.raises(KlpemuError) as e:
        klp.patch_func(f)
    assert e.value.errno == 22
    assert "failed to find location for function" in str(e.value)
    assert klp.ops == {} and m.struct("klp_func", f).patched == 0
