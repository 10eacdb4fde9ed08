"""Kprobes and module lifetimes (kprobes_module_callback): probes on init text die when init
memory is freed, probes on a module die when it goes and come back to life on a new probe at
the same address, and a module's own NOKPROBE_SYMBOLs join the blacklist while it is loaded."""

from __future__ import annotations

import shutil

import pytest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.kprobes.core import FLAG
from klpemu.system import System

DEBUGFS = "/sys/kernel/debug/kprobes"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


@pytest.fixture
def system() -> System:
    return booted_system()


def ok(system: System, cmd: str) -> str:
    status, out, err = shell_run(system, cmd)
    assert status == 0 and err == "", (cmd, out, err)
    return out


def build(tmp_path, name: str, source: str):
    from klpemu.modbuild import build_module

    src = tmp_path / f"{name}.c"
    src.write_text(source)
    return build_module(src)


# A module that probes its own __init helper from its init, and unregisters at exit.
INIT_PROBE = r"""
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/kprobes.h>

static unsigned long hits;
module_param(hits, ulong, 0444);

static int total;
noinline int __init initprobe_helper(int x)
{
	total += x;
	return total * 3 + 1;
}

static int count_hit(struct kprobe *p, struct pt_regs *regs)
{
	hits++;
	return 0;
}

static struct kprobe kp = {
	.symbol_name = "initprobe_helper",
	.offset = 5,
	.pre_handler = count_hit,
};

static int __init initprobe_init(void)
{
	int ret = register_kprobe(&kp);

	if (ret)
		return ret;
	initprobe_helper(1);
	return 0;
}

static void __exit initprobe_exit(void)
{
	unregister_kprobe(&kp);
}
module_init(initprobe_init);
module_exit(initprobe_exit);
MODULE_LICENSE("GPL");
"""


@needs_gcc
def test_a_probe_on_init_text_dies_when_init_memory_is_freed(system, tmp_path):
    m = system.machine
    kp = m.kernel.kprobes
    ko = build(tmp_path, "initprobe", INIT_PROBE)
    before = dict(m.heap._sizes)
    ok(system, f"insmod {ko}")
    assert ok(system, "cat /sys/module/initprobe/parameters/hits") == "1\n"
    (p,) = kp.table()
    v = kp.view(p)
    assert v.flags & FLAG["GONE"] and v.ainsn.insn == 0 and not kp.armed(p)
    # Nothing names freed init text any more: %pS has no symbol for it.
    assert ok(system, f"cat {DEBUGFS}/list") == f"{v.addr:016x}  k  0x{v.addr:x} [GONE]\n"
    ok(system, "rmmod initprobe")
    assert kp.table() == [] and ok(system, f"cat {DEBUGFS}/list") == ""
    assert dict(m.heap._sizes) == before
    assert m.oops is None


def test_a_new_probe_revives_a_gone_one_at_the_same_address(system):
    """register_aggr_kprobe on a GONE probe: a new slot, GONE cleared, armed as usual; the old
    probe stays GONE and its handler does not run."""
    m = system.machine
    kp = m.kernel.kprobes
    ok(system, "insmod hello")
    old_hits, new_hits = [], []
    old = kp.add_kprobe("hello_greet", 5, pre_handler=lambda p, r: old_hits.append(r.ip) or 0)
    addr = kp.view(old).addr
    ok(system, "rmmod hello")
    assert kp.view(old).flags & FLAG["GONE"] and kp.view(old).ainsn.insn == 0
    ok(system, "insmod hello")
    assert kp.lookup_name("hello_greet") + 5 == addr  # the module came back where it was
    new = kp.add_kprobe("hello_greet", 5, pre_handler=lambda p, r: new_hits.append(r.ip) or 0)
    (ap,) = kp.table()
    a = kp.view(ap)
    assert kp.is_aggregate(ap) and not a.flags & (FLAG["GONE"] | FLAG["DISABLED"]) and kp.armed(ap)
    assert a.ainsn.insn and kp.view(new).ainsn.insn == a.ainsn.insn
    assert m.mem.read(addr, 1) == b"\xcc"
    ok(system, "insmod hello_friend")  # its init calls hello_greet
    assert new_hits == [addr + 1] and old_hits == []
    kp.unregister(old)
    kp.unregister(new)
    assert kp.table() == [] and m.mem.read(addr, 1) != b"\xcc"


NOKPROBE = r"""
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/kprobes.h>

noinline int nokp_func(int x)
{
	return x * 3 + 1;
}
NOKPROBE_SYMBOL(nokp_func);

noinline int __kprobes nokp_text_func(int x)
{
	return x - 1;
}

noinline int nokp_probeable(int x)
{
	return nokp_func(x) + nokp_text_func(x);
}

static int __init nokp_init(void)
{
	return nokp_probeable(1) == 4 ? 0 : -1;
}

static void __exit nokp_exit(void)
{
}
module_init(nokp_init);
module_exit(nokp_exit);
MODULE_LICENSE("GPL");
"""


@needs_gcc
def test_a_modules_own_blacklist_while_it_is_loaded(system, tmp_path):
    m = system.machine
    kp = m.kernel.kprobes
    ko = build(tmp_path, "nokp", NOKPROBE)
    before = ok(system, f"cat {DEBUGFS}/blacklist")
    ok(system, f"insmod {ko}")
    added = ok(system, f"cat {DEBUGFS}/blacklist")[len(before) :].splitlines()
    func, text_func = m.image.lookup("nokp_func"), m.image.lookup("nokp_text_func")
    assert added == [
        f"0x{func.addr:016x}-0x{func.addr + func.size:016x}\tnokp_func [nokp]",
        f"0x{text_func.addr:016x}-0x{text_func.addr + text_func.size:016x}\tnokp_text_func [nokp]",
    ]
    for name in ("nokp_func", "nokp_text_func"):
        with pytest.raises(KlpemuError) as e:
            kp.add_kprobe(name, pre_handler=lambda p, r: 0)
        assert e.value.errno == 22
    probe = kp.add_kprobe("nokp_probeable", pre_handler=lambda p, r: 0)
    kp.unregister(probe)
    ok(system, "rmmod nokp")
    assert ok(system, f"cat {DEBUGFS}/blacklist") == before
