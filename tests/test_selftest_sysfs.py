"""Linux's tools/testing/selftests/livepatch/test-sysfs.sh, case by case: the modes and values
of the files under /sys/kernel/livepatch/<patch>/, and each case's log as the script expects it.

Modes are read from `ls -l` of the parent directory, where the script runs `stat --format %A`.
"""

from __future__ import annotations

MOD_LIVEPATCH = "test_klp_livepatch"
MOD_LIVEPATCH2 = "test_klp_callbacks_demo"
MOD_LIVEPATCH3 = "test_klp_syscall"
MOD_REPLACE = "test_klp_atomic_replace"
MOD_TARGET = "test_klp_callbacks_mod"
SYSFS_KLP_DIR = "/sys/kernel/livepatch"

RO = "-r--r--r--"


def test_sysfs(klp):
    """A loaded patch's directory and files: modes, and the values an idle patch shows."""
    klp.start_test("sysfs test")

    klp.load_lp(MOD_LIVEPATCH)
    klp.check_sysfs_rights(MOD_LIVEPATCH, "", "drwxr-xr-x")
    klp.check_sysfs_rights(MOD_LIVEPATCH, "enabled", "-rw-r--r--")
    klp.check_sysfs_value(MOD_LIVEPATCH, "enabled", "1")
    klp.check_sysfs_rights(MOD_LIVEPATCH, "force", "--w-------")
    klp.check_sysfs_rights(MOD_LIVEPATCH, "replace", RO)
    klp.check_sysfs_rights(MOD_LIVEPATCH, "stack_order", RO)
    klp.check_sysfs_value(MOD_LIVEPATCH, "stack_order", "1")
    klp.check_sysfs_rights(MOD_LIVEPATCH, "transition", RO)
    klp.check_sysfs_value(MOD_LIVEPATCH, "transition", "0")
    klp.check_sysfs_rights(MOD_LIVEPATCH, "vmlinux/patched", RO)
    klp.check_sysfs_value(MOD_LIVEPATCH, "vmlinux/patched", "1")
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
livepatch: '{MOD_LIVEPATCH}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")


def test_sysfs_object_patched(klp):
    """<patch>/<module>/patched follows the target module as it loads and unloads."""
    klp.start_test("sysfs test object/patched")

    klp.load_lp(MOD_LIVEPATCH2)
    klp.check_sysfs_value(MOD_LIVEPATCH2, f"{MOD_TARGET}/patched", "0")
    klp.load_mod(MOD_TARGET)
    klp.check_sysfs_value(MOD_LIVEPATCH2, f"{MOD_TARGET}/patched", "1")
    klp.unload_mod(MOD_TARGET)
    klp.check_sysfs_value(MOD_LIVEPATCH2, f"{MOD_TARGET}/patched", "0")
    klp.disable_lp(MOD_LIVEPATCH2)
    klp.unload_lp(MOD_LIVEPATCH2)

    klp.check_result(f"""\
% insmod test_modules/test_klp_callbacks_demo.ko
livepatch: enabling patch 'test_klp_callbacks_demo'
livepatch: 'test_klp_callbacks_demo': initializing patching transition
test_klp_callbacks_demo: pre_patch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': starting patching transition
livepatch: 'test_klp_callbacks_demo': completing patching transition
test_klp_callbacks_demo: post_patch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': patching complete
% insmod test_modules/test_klp_callbacks_mod.ko
livepatch: applying patch 'test_klp_callbacks_demo' to loading module 'test_klp_callbacks_mod'
test_klp_callbacks_demo: pre_patch_callback: test_klp_callbacks_mod -> [MODULE_STATE_COMING] Full formed, running module_init
test_klp_callbacks_demo: post_patch_callback: test_klp_callbacks_mod -> [MODULE_STATE_COMING] Full formed, running module_init
test_klp_callbacks_mod: test_klp_callbacks_mod_init
% rmmod test_klp_callbacks_mod
test_klp_callbacks_mod: test_klp_callbacks_mod_exit
test_klp_callbacks_demo: pre_unpatch_callback: test_klp_callbacks_mod -> [MODULE_STATE_GOING] Going away
livepatch: reverting patch 'test_klp_callbacks_demo' on unloading module 'test_klp_callbacks_mod'
test_klp_callbacks_demo: post_unpatch_callback: test_klp_callbacks_mod -> [MODULE_STATE_GOING] Going away
% echo 0 > {SYSFS_KLP_DIR}/test_klp_callbacks_demo/enabled
livepatch: 'test_klp_callbacks_demo': initializing unpatching transition
test_klp_callbacks_demo: pre_unpatch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': starting unpatching transition
livepatch: 'test_klp_callbacks_demo': completing unpatching transition
test_klp_callbacks_demo: post_unpatch_callback: vmlinux
livepatch: 'test_klp_callbacks_demo': unpatching complete
% rmmod test_klp_callbacks_demo
""")


def _replace_case(klp, replace: str) -> None:
    klp.load_lp(MOD_REPLACE, f"replace={replace}")
    klp.check_sysfs_rights(MOD_REPLACE, "replace", RO)
    klp.check_sysfs_value(MOD_REPLACE, "replace", replace)
    klp.disable_lp(MOD_REPLACE)
    klp.unload_lp(MOD_REPLACE)

    klp.check_result(f"""\
% insmod test_modules/{MOD_REPLACE}.ko replace={replace}
livepatch: enabling patch '{MOD_REPLACE}'
livepatch: '{MOD_REPLACE}': initializing patching transition
livepatch: '{MOD_REPLACE}': starting patching transition
livepatch: '{MOD_REPLACE}': completing patching transition
livepatch: '{MOD_REPLACE}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_REPLACE}/enabled
livepatch: '{MOD_REPLACE}': initializing unpatching transition
livepatch: '{MOD_REPLACE}': starting unpatching transition
livepatch: '{MOD_REPLACE}': completing unpatching transition
livepatch: '{MOD_REPLACE}': unpatching complete
% rmmod {MOD_REPLACE}
""")


def test_sysfs_replace_enabled(klp):
    """replace reads 1 for a cumulative patch."""
    klp.start_test("sysfs test replace enabled")
    _replace_case(klp, "1")


def test_sysfs_replace_disabled(klp):
    """replace reads 0 for a patch that stacks on the others."""
    klp.start_test("sysfs test replace disabled")
    _replace_case(klp, "0")


def test_sysfs_stack_order_value(klp):
    """stack_order is each patch's place among the installed ones, and closes up when one goes."""
    klp.start_test("sysfs test stack_order value")

    klp.load_lp(MOD_REPLACE)
    klp.check_sysfs_value(MOD_REPLACE, "stack_order", "1")
    klp.load_lp(MOD_LIVEPATCH2)
    klp.check_sysfs_value(MOD_LIVEPATCH2, "stack_order", "2")
    klp.load_lp(MOD_LIVEPATCH3)
    klp.check_sysfs_value(MOD_LIVEPATCH3, "stack_order", "3")
    klp.disable_lp(MOD_LIVEPATCH2)
    klp.unload_lp(MOD_LIVEPATCH2)
    klp.check_sysfs_value(MOD_REPLACE, "stack_order", "1")
    klp.check_sysfs_value(MOD_LIVEPATCH3, "stack_order", "2")
    klp.disable_lp(MOD_LIVEPATCH3)
    klp.unload_lp(MOD_LIVEPATCH3)
    klp.disable_lp(MOD_REPLACE)
    klp.unload_lp(MOD_REPLACE)

    klp.check_result(f"""\
% insmod test_modules/{MOD_REPLACE}.ko
livepatch: enabling patch '{MOD_REPLACE}'
livepatch: '{MOD_REPLACE}': initializing patching transition
livepatch: '{MOD_REPLACE}': starting patching transition
livepatch: '{MOD_REPLACE}': completing patching transition
livepatch: '{MOD_REPLACE}': patching complete
% insmod test_modules/{MOD_LIVEPATCH2}.ko
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
{MOD_LIVEPATCH2}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
{MOD_LIVEPATCH2}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': patching complete
% insmod test_modules/{MOD_LIVEPATCH3}.ko
livepatch: enabling patch '{MOD_LIVEPATCH3}'
livepatch: '{MOD_LIVEPATCH3}': initializing patching transition
livepatch: '{MOD_LIVEPATCH3}': starting patching transition
livepatch: '{MOD_LIVEPATCH3}': completing patching transition
livepatch: '{MOD_LIVEPATCH3}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH2}/enabled
livepatch: '{MOD_LIVEPATCH2}': initializing unpatching transition
{MOD_LIVEPATCH2}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH2}': completing unpatching transition
{MOD_LIVEPATCH2}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': unpatching complete
% rmmod {MOD_LIVEPATCH2}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH3}/enabled
livepatch: '{MOD_LIVEPATCH3}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH3}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH3}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH3}': unpatching complete
% rmmod {MOD_LIVEPATCH3}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_REPLACE}/enabled
livepatch: '{MOD_REPLACE}': initializing unpatching transition
livepatch: '{MOD_REPLACE}': starting unpatching transition
livepatch: '{MOD_REPLACE}': completing unpatching transition
livepatch: '{MOD_REPLACE}': unpatching complete
% rmmod {MOD_REPLACE}
""")
