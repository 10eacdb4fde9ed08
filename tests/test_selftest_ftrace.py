"""Linux's tools/testing/selftests/livepatch/test-ftrace.sh, case by case: the kernel log of each
case, through the script's filter, must be the script's expected text line for line.

The livepatch's ftrace_ops is PERMANENT: it cannot be registered while the ftrace_enabled sysctl
is 0, and while it is registered the sysctl refuses 0. The function tracer and the livepatch share
cmdline_proc_show's fentry site, in either order, and neither gets in the other's way.
"""

from __future__ import annotations

import pytest
from klp_selftest import SYSFS_KLP_DIR

MOD_LIVEPATCH = "test_klp_livepatch"
PATCHED = f"{MOD_LIVEPATCH}: this has been live patched"

PATCH_AND_UNPATCH = f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete
livepatch: ok
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
"""


@pytest.fixture
def klp(klp):
    """The script's prologue."""
    klp.setup_config()
    return klp


def cmdline(klp) -> str:
    return klp.cat("/proc/cmdline").rstrip("\n")


def test_ftrace_enabled_sysctl(klp):
    """ftrace_enabled=0 keeps a livepatch out; with a livepatch in, ftrace_enabled stays 1.

    The script's second branch is for kernels whose sysctl is deprecated and refuses 0 with
    EOPNOTSUPP whatever is registered; this machine's sysctl is the one that takes 0, so the
    first branch is the one that runs.
    """
    klp.start_test("livepatch interaction with ftrace_enabled sysctl")

    if klp.ftrace_disable_supported():
        klp.set_ftrace_enabled(0)
        klp.load_failing_mod(MOD_LIVEPATCH)

        klp.set_ftrace_enabled(1)
        klp.load_lp(MOD_LIVEPATCH)
        if cmdline(klp) != PATCHED:
            klp.die("livepatch kselftest(s) failed")

        # the patch's PERMANENT ops keeps ftrace on, and the patch in effect
        klp.set_ftrace_enabled(0, fail=True)
        if cmdline(klp) != PATCHED:
            klp.die("livepatch kselftest(s) failed")
        klp.disable_lp(MOD_LIVEPATCH)
        klp.unload_lp(MOD_LIVEPATCH)

        klp.check_result(f"""\
livepatch: kernel.ftrace_enabled = 0
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
livepatch: kernel.ftrace_enabled = 1
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete
livepatch: sysctl: setting key "kernel.ftrace_enabled": Device or resource busy
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")
    else:
        klp.set_ftrace_enabled(0, fail=True)
        klp.check_result("""\
livepatch: sysctl: setting key "kernel.ftrace_enabled": Operation not supported
""")


def test_trace_livepatched_function(klp):
    """The function tracer traces the replacement function, and the patch stays in effect."""
    klp.start_test("trace livepatched function and check that the live patch remains in effect")

    function_name = "livepatch_cmdline_proc_show"

    klp.load_lp(MOD_LIVEPATCH)
    klp.trace_function(function_name)

    if cmdline(klp) == PATCHED:
        klp.log("livepatch: ok")

    klp.check_traced_functions(function_name)

    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(PATCH_AND_UNPATCH)


def test_livepatch_traced_function(klp):
    """A livepatch of a traced function takes effect, and the tracer still sees the old function."""
    klp.start_test("livepatch a traced function and check that the live patch remains in effect")

    function_name = "cmdline_proc_show"

    klp.trace_function(function_name)
    klp.load_lp(MOD_LIVEPATCH)

    if cmdline(klp) == PATCHED:
        klp.log("livepatch: ok")

    klp.check_traced_functions(function_name)

    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(PATCH_AND_UNPATCH)
    assert {c.rule for c in klp.machine.kernel.conflicts.records} == {"livepatch-function-tracer"}
