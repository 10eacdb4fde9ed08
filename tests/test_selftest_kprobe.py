"""Linux's tools/testing/selftests/livepatch/test-kprobe.sh, case by case: the kernel log of each
case, through the script's filter, must be the script's expected text line for line.

test_klp_kprobe puts a kprobe on cmdline_proc_show, the function test_klp_livepatch replaces.
With a post handler the kprobe needs IPMODIFY, which only one ftrace_ops of a function may have,
so the livepatch is refused; without one the two share the function.

Beyond the script, each case checks what the conflict record says, and the second that the kprobe
still fires while the patch is in effect.
"""

from __future__ import annotations

import pytest
from klp_selftest import SYSFS_KLP_DIR, SYSFS_KPROBES_DIR

MOD_LIVEPATCH = "test_klp_livepatch"
MOD_KPROBE = "test_klp_kprobe"


@pytest.fixture
def klp(klp):
    """The script's prologue: it needs kprobes on ftrace, then setup_config."""
    klp.require_symbol("kprobe_ftrace_ops", "test-kprobe requires CONFIG_KPROBES_ON_FTRACE")
    klp.setup_config()
    return klp


def test_kprobed_function_with_post_handler(klp):
    """A kprobe with a post handler holds IPMODIFY on cmdline_proc_show: the livepatch is refused."""
    klp.start_test("livepatch interaction with kprobed function with post_handler")

    status, out = klp.sh(f"echo 1 > {SYSFS_KPROBES_DIR}/enabled")
    assert status == 0, out

    klp.load_mod(MOD_KPROBE, "has_post_handler=true")
    klp.load_failing_mod(MOD_LIVEPATCH)
    klp.unload_mod(MOD_KPROBE)

    klp.check_result(f"""\
% insmod test_modules/test_klp_kprobe.ko has_post_handler=true
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: failed to register ftrace handler for function 'cmdline_proc_show' (-16)
livepatch: failed to patch object 'vmlinux'
livepatch: failed to enable patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': canceling patching transition, going to unpatch
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
insmod: ERROR: could not insert module test_modules/{MOD_LIVEPATCH}.ko: Device or resource busy
% rmmod test_klp_kprobe
""")
    (c,) = klp.machine.kernel.conflicts.records
    assert (c.rule, c.errno) == ("livepatch-kprobe-post", -16)


def test_kprobed_function_without_post_handler(klp):
    """A kprobe without a post handler does not modify the ip: the livepatch loads beside it."""
    klp.start_test("livepatch interaction with kprobed function without post_handler")

    klp.load_mod(MOD_KPROBE, "has_post_handler=false")
    klp.load_lp(MOD_LIVEPATCH)

    pre_calls = f"/sys/module/{MOD_KPROBE}/parameters/pre_calls"
    before = int(klp.cat(pre_calls))
    assert klp.cat("/proc/cmdline") == f"{MOD_LIVEPATCH}: this has been live patched\n"
    assert int(klp.cat(pre_calls)) == before + 1

    klp.unload_mod(MOD_KPROBE)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/test_klp_kprobe.ko has_post_handler=false
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete
% rmmod test_klp_kprobe
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")
    (c,) = klp.machine.kernel.conflicts.records
    assert (c.rule, c.errno) == ("livepatch-kprobe", 0)
