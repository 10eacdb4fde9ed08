"""Linux's tools/testing/selftests/livepatch/test-livepatch.sh, case by case: the kernel log of
each case, through the script's filter, must be the script's expected text line for line.

The one difference from the script: in "atomic replace livepatch" the script checks that
/sys/kernel/livepatch holds three patches with a shell glob; here the directory is listed.
test_klp_syscall patches sys_getpid, this kernel's name for Linux's __x64_sys_getpid.
"""

from __future__ import annotations

MOD_LIVEPATCH1 = "test_klp_livepatch"
MOD_LIVEPATCH2 = "test_klp_syscall"
MOD_LIVEPATCH3 = "test_klp_callbacks_demo"
MOD_REPLACE = "test_klp_atomic_replace"
MOD_TARGET = "test_klp_mod_target"
MOD_TARGET_PATCH = "test_klp_mod_patch"
SYSFS_KLP_DIR = "/sys/kernel/livepatch"


def live_patched(klp) -> None:
    """grep 'live patched' /proc/cmdline > /dev/kmsg; grep 'live patched' /proc/meminfo > /dev/kmsg"""
    klp.log_matching("live patched", "/proc/cmdline")
    klp.log_matching("live patched", "/proc/meminfo")


def klp_dir_entries(klp) -> list[str]:
    return [n.name for n in klp.vfs.listdir(SYSFS_KLP_DIR)]


def test_basic_function_patching(klp):
    """Load a livepatch of cmdline_proc_show, see /proc/cmdline change, then remove it."""
    klp.start_test("basic function patching")

    klp.load_lp(MOD_LIVEPATCH1)
    assert klp.cat("/proc/cmdline") == f"{MOD_LIVEPATCH1}: this has been live patched\n"
    klp.disable_lp(MOD_LIVEPATCH1)
    klp.unload_lp(MOD_LIVEPATCH1)
    assert klp.cat("/proc/cmdline") == f"{klp.machine.config.cmdline}\n"

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH1}.ko
livepatch: enabling patch '{MOD_LIVEPATCH1}'
livepatch: '{MOD_LIVEPATCH1}': initializing patching transition
livepatch: '{MOD_LIVEPATCH1}': starting patching transition
livepatch: '{MOD_LIVEPATCH1}': completing patching transition
livepatch: '{MOD_LIVEPATCH1}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH1}/enabled
livepatch: '{MOD_LIVEPATCH1}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH1}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH1}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH1}': unpatching complete
% rmmod {MOD_LIVEPATCH1}
""")


def test_multiple_livepatches(klp):
    """Two patches of two functions at once; remove the second, then the first."""
    klp.start_test("multiple livepatches")

    klp.load_lp(MOD_LIVEPATCH1)
    live_patched(klp)
    klp.load_lp(MOD_REPLACE, "replace=0")
    live_patched(klp)
    klp.disable_lp(MOD_REPLACE)
    klp.unload_lp(MOD_REPLACE)
    live_patched(klp)
    klp.disable_lp(MOD_LIVEPATCH1)
    klp.unload_lp(MOD_LIVEPATCH1)
    live_patched(klp)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH1}.ko
livepatch: enabling patch '{MOD_LIVEPATCH1}'
livepatch: '{MOD_LIVEPATCH1}': initializing patching transition
livepatch: '{MOD_LIVEPATCH1}': starting patching transition
livepatch: '{MOD_LIVEPATCH1}': completing patching transition
livepatch: '{MOD_LIVEPATCH1}': patching complete
{MOD_LIVEPATCH1}: this has been live patched
% insmod test_modules/{MOD_REPLACE}.ko replace=0
livepatch: enabling patch '{MOD_REPLACE}'
livepatch: '{MOD_REPLACE}': initializing patching transition
livepatch: '{MOD_REPLACE}': starting patching transition
livepatch: '{MOD_REPLACE}': completing patching transition
livepatch: '{MOD_REPLACE}': patching complete
{MOD_LIVEPATCH1}: this has been live patched
{MOD_REPLACE}: this has been live patched
% echo 0 > {SYSFS_KLP_DIR}/{MOD_REPLACE}/enabled
livepatch: '{MOD_REPLACE}': initializing unpatching transition
livepatch: '{MOD_REPLACE}': starting unpatching transition
livepatch: '{MOD_REPLACE}': completing unpatching transition
livepatch: '{MOD_REPLACE}': unpatching complete
% rmmod {MOD_REPLACE}
{MOD_LIVEPATCH1}: this has been live patched
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH1}/enabled
livepatch: '{MOD_LIVEPATCH1}': initializing unpatching transition
livepatch: '{MOD_LIVEPATCH1}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH1}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH1}': unpatching complete
% rmmod {MOD_LIVEPATCH1}
""")


def test_atomic_replace_livepatch(klp):
    """Three patches, then a cumulative one that replaces all three: they are disabled without
    running any of their callbacks, their modules can go, and only the replacement remains."""
    klp.start_test("atomic replace livepatch")

    klp.load_lp(MOD_LIVEPATCH1)
    live_patched(klp)
    for mod in (MOD_LIVEPATCH2, MOD_LIVEPATCH3):
        klp.load_lp(mod)
    assert len(klp_dir_entries(klp)) == 3, klp_dir_entries(klp)
    klp.load_lp(MOD_REPLACE, "replace=1")
    live_patched(klp)
    assert klp.loop_until(lambda: len(klp_dir_entries(klp)) == 1), klp_dir_entries(klp)
    # the atomic replace disabled these
    for mod in (MOD_LIVEPATCH3, MOD_LIVEPATCH2, MOD_LIVEPATCH1):
        klp.unload_lp(mod)
    live_patched(klp)
    klp.disable_lp(MOD_REPLACE)
    klp.unload_lp(MOD_REPLACE)
    live_patched(klp)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH1}.ko
livepatch: enabling patch '{MOD_LIVEPATCH1}'
livepatch: '{MOD_LIVEPATCH1}': initializing patching transition
livepatch: '{MOD_LIVEPATCH1}': starting patching transition
livepatch: '{MOD_LIVEPATCH1}': completing patching transition
livepatch: '{MOD_LIVEPATCH1}': patching complete
{MOD_LIVEPATCH1}: this has been live patched
% insmod test_modules/{MOD_LIVEPATCH2}.ko
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
livepatch: '{MOD_LIVEPATCH2}': patching complete
% insmod test_modules/{MOD_LIVEPATCH3}.ko
livepatch: enabling patch '{MOD_LIVEPATCH3}'
livepatch: '{MOD_LIVEPATCH3}': initializing patching transition
{MOD_LIVEPATCH3}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH3}': starting patching transition
livepatch: '{MOD_LIVEPATCH3}': completing patching transition
{MOD_LIVEPATCH3}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH3}': patching complete
% insmod test_modules/{MOD_REPLACE}.ko replace=1
livepatch: enabling patch '{MOD_REPLACE}'
livepatch: '{MOD_REPLACE}': initializing patching transition
livepatch: '{MOD_REPLACE}': starting patching transition
livepatch: '{MOD_REPLACE}': completing patching transition
livepatch: '{MOD_REPLACE}': patching complete
{MOD_REPLACE}: this has been live patched
% rmmod {MOD_LIVEPATCH3}
% rmmod {MOD_LIVEPATCH2}
% rmmod {MOD_LIVEPATCH1}
{MOD_REPLACE}: this has been live patched
% echo 0 > {SYSFS_KLP_DIR}/{MOD_REPLACE}/enabled
livepatch: '{MOD_REPLACE}': initializing unpatching transition
livepatch: '{MOD_REPLACE}': starting unpatching transition
livepatch: '{MOD_REPLACE}': completing unpatching transition
livepatch: '{MOD_REPLACE}': unpatching complete
% rmmod {MOD_REPLACE}
""")
    # Nothing patched any more: both files are the kernel's own again.
    assert klp.cat("/proc/cmdline") == f"{klp.machine.config.cmdline}\n"
    assert "live patched" not in klp.cat("/proc/meminfo")


def test_module_function_patching(klp):
    """A patch of a function in a loaded module (test_klp_mod_target's /proc show function)."""
    klp.start_test("module function patching")

    klp.load_mod(MOD_TARGET)
    assert klp.cat(f"/proc/{MOD_TARGET}") == f"{MOD_TARGET}: original output\n"
    klp.load_lp(MOD_TARGET_PATCH)
    assert klp.cat(f"/proc/{MOD_TARGET}") == f"{MOD_TARGET_PATCH}: this has been live patched\n"
    klp.disable_lp(MOD_TARGET_PATCH)
    klp.unload_lp(MOD_TARGET_PATCH)
    assert klp.cat(f"/proc/{MOD_TARGET}") == f"{MOD_TARGET}: original output\n"
    klp.unload_mod(MOD_TARGET)
    assert not klp.vfs.exists(f"/proc/{MOD_TARGET}")  # the module's exit removed its file

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET}.ko
{MOD_TARGET}: test_klp_mod_target_init
% insmod test_modules/{MOD_TARGET_PATCH}.ko
livepatch: enabling patch '{MOD_TARGET_PATCH}'
livepatch: '{MOD_TARGET_PATCH}': initializing patching transition
livepatch: '{MOD_TARGET_PATCH}': starting patching transition
livepatch: '{MOD_TARGET_PATCH}': completing patching transition
livepatch: '{MOD_TARGET_PATCH}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_TARGET_PATCH}/enabled
livepatch: '{MOD_TARGET_PATCH}': initializing unpatching transition
livepatch: '{MOD_TARGET_PATCH}': starting unpatching transition
livepatch: '{MOD_TARGET_PATCH}': completing unpatching transition
livepatch: '{MOD_TARGET_PATCH}': unpatching complete
% rmmod {MOD_TARGET_PATCH}
% rmmod {MOD_TARGET}
{MOD_TARGET}: test_klp_mod_target_exit
""")


def test_module_function_patching_livepatch_first(klp):
    """The patch comes first; the module is patched as it loads (klp_module_coming)."""
    klp.start_test("module function patching (livepatch first)")

    klp.load_lp(MOD_TARGET_PATCH)
    klp.load_mod(MOD_TARGET)
    assert klp.cat(f"/proc/{MOD_TARGET}") == f"{MOD_TARGET_PATCH}: this has been live patched\n"
    klp.disable_lp(MOD_TARGET_PATCH)
    klp.unload_lp(MOD_TARGET_PATCH)
    assert klp.cat(f"/proc/{MOD_TARGET}") == f"{MOD_TARGET}: original output\n"
    klp.unload_mod(MOD_TARGET)

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET_PATCH}.ko
livepatch: enabling patch '{MOD_TARGET_PATCH}'
livepatch: '{MOD_TARGET_PATCH}': initializing patching transition
livepatch: '{MOD_TARGET_PATCH}': starting patching transition
livepatch: '{MOD_TARGET_PATCH}': completing patching transition
livepatch: '{MOD_TARGET_PATCH}': patching complete
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_TARGET_PATCH}' to loading module '{MOD_TARGET}'
{MOD_TARGET}: test_klp_mod_target_init
% echo 0 > {SYSFS_KLP_DIR}/{MOD_TARGET_PATCH}/enabled
livepatch: '{MOD_TARGET_PATCH}': initializing unpatching transition
livepatch: '{MOD_TARGET_PATCH}': starting unpatching transition
livepatch: '{MOD_TARGET_PATCH}': completing unpatching transition
livepatch: '{MOD_TARGET_PATCH}': unpatching complete
% rmmod {MOD_TARGET_PATCH}
% rmmod {MOD_TARGET}
{MOD_TARGET}: test_klp_mod_target_exit
""")
