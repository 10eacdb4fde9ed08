"""Linux's tools/testing/selftests/livepatch/test-state.sh, case by case: cumulative livepatches
that change a system state (console_loglevel) and hand it over through klp_state, and the
refusal of a patch that is not compatible with the states already installed.

Beyond the script's log checks, each case reads console_loglevel (/proc/sys/kernel/printk) to
see the change itself: 15 while a patch holds it, the boot value once the last one is gone.
"""

from __future__ import annotations

MOD_LIVEPATCH = "test_klp_state"
MOD_LIVEPATCH2 = "test_klp_state2"
MOD_LIVEPATCH3 = "test_klp_state3"
SYSFS_KLP_DIR = "/sys/kernel/livepatch"
MOTORMOUTH = "15"  # CONSOLE_LOGLEVEL_MOTORMOUTH


def console_loglevel(klp) -> str:
    return klp.cat("/proc/sys/kernel/printk").split()[0]


def test_system_state_modification(klp):
    """One patch changes the state in its callbacks and puts it back."""
    klp.start_test("system state modification")
    boot_level = console_loglevel(klp)

    klp.load_lp(MOD_LIVEPATCH)
    assert console_loglevel(klp) == MOTORMOUTH
    klp.disable_lp(MOD_LIVEPATCH)
    assert console_loglevel(klp) == boot_level
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH}: allocate_loglevel_state: allocating space to store console_loglevel
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
{MOD_LIVEPATCH}: fix_console_loglevel: fixing console_loglevel
livepatch: '{MOD_LIVEPATCH}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: restore_console_loglevel: restoring console_loglevel
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: free_loglevel_state: freeing space for the stored console_loglevel
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")


def test_taking_over_system_state_modification(klp):
    """A version 2 cumulative patch replaces version 1 and takes the state over; the replaced
    patch's callbacks never run, and the state goes back when the new patch is disabled."""
    klp.start_test("taking over system state modification")
    boot_level = console_loglevel(klp)

    klp.load_lp(MOD_LIVEPATCH)
    klp.load_lp(MOD_LIVEPATCH2)
    assert console_loglevel(klp) == MOTORMOUTH
    klp.unload_lp(MOD_LIVEPATCH)
    klp.disable_lp(MOD_LIVEPATCH2)
    assert console_loglevel(klp) == boot_level
    klp.unload_lp(MOD_LIVEPATCH2)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH}: allocate_loglevel_state: allocating space to store console_loglevel
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
{MOD_LIVEPATCH}: fix_console_loglevel: fixing console_loglevel
livepatch: '{MOD_LIVEPATCH}': patching complete
% insmod test_modules/{MOD_LIVEPATCH2}.ko
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
{MOD_LIVEPATCH2}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH2}: allocate_loglevel_state: space to store console_loglevel already allocated
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
{MOD_LIVEPATCH2}: post_patch_callback: vmlinux
{MOD_LIVEPATCH2}: fix_console_loglevel: taking over the console_loglevel change
livepatch: '{MOD_LIVEPATCH2}': patching complete
% rmmod {MOD_LIVEPATCH}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH2}/enabled
livepatch: '{MOD_LIVEPATCH2}': initializing unpatching transition
{MOD_LIVEPATCH2}: pre_unpatch_callback: vmlinux
{MOD_LIVEPATCH2}: restore_console_loglevel: restoring console_loglevel
livepatch: '{MOD_LIVEPATCH2}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH2}': completing unpatching transition
{MOD_LIVEPATCH2}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH2}: free_loglevel_state: freeing space for the stored console_loglevel
livepatch: '{MOD_LIVEPATCH2}': unpatching complete
% rmmod {MOD_LIVEPATCH2}
""")


def test_compatible_cumulative_livepatches(klp):
    """Patches with the same state version replace each other in any order."""
    klp.start_test("compatible cumulative livepatches")
    boot_level = console_loglevel(klp)

    klp.load_lp(MOD_LIVEPATCH2)
    klp.load_lp(MOD_LIVEPATCH3)
    klp.unload_lp(MOD_LIVEPATCH2)
    klp.load_lp(MOD_LIVEPATCH2)
    assert console_loglevel(klp) == MOTORMOUTH
    klp.disable_lp(MOD_LIVEPATCH2)
    assert console_loglevel(klp) == boot_level
    klp.unload_lp(MOD_LIVEPATCH2)
    klp.unload_lp(MOD_LIVEPATCH3)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH2}.ko
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
{MOD_LIVEPATCH2}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH2}: allocate_loglevel_state: allocating space to store console_loglevel
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
{MOD_LIVEPATCH2}: post_patch_callback: vmlinux
{MOD_LIVEPATCH2}: fix_console_loglevel: fixing console_loglevel
livepatch: '{MOD_LIVEPATCH2}': patching complete
% insmod test_modules/{MOD_LIVEPATCH3}.ko
livepatch: enabling patch '{MOD_LIVEPATCH3}'
livepatch: '{MOD_LIVEPATCH3}': initializing patching transition
{MOD_LIVEPATCH3}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH3}: allocate_loglevel_state: space to store console_loglevel already allocated
livepatch: '{MOD_LIVEPATCH3}': starting patching transition
livepatch: '{MOD_LIVEPATCH3}': completing patching transition
{MOD_LIVEPATCH3}: post_patch_callback: vmlinux
{MOD_LIVEPATCH3}: fix_console_loglevel: taking over the console_loglevel change
livepatch: '{MOD_LIVEPATCH3}': patching complete
% rmmod {MOD_LIVEPATCH2}
% insmod test_modules/{MOD_LIVEPATCH2}.ko
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
{MOD_LIVEPATCH2}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH2}: allocate_loglevel_state: space to store console_loglevel already allocated
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
{MOD_LIVEPATCH2}: post_patch_callback: vmlinux
{MOD_LIVEPATCH2}: fix_console_loglevel: taking over the console_loglevel change
livepatch: '{MOD_LIVEPATCH2}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH2}/enabled
livepatch: '{MOD_LIVEPATCH2}': initializing unpatching transition
{MOD_LIVEPATCH2}: pre_unpatch_callback: vmlinux
{MOD_LIVEPATCH2}: restore_console_loglevel: restoring console_loglevel
livepatch: '{MOD_LIVEPATCH2}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH2}': completing unpatching transition
{MOD_LIVEPATCH2}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH2}: free_loglevel_state: freeing space for the stored console_loglevel
livepatch: '{MOD_LIVEPATCH2}': unpatching complete
% rmmod {MOD_LIVEPATCH2}
% rmmod {MOD_LIVEPATCH3}
""")


def test_incompatible_cumulative_livepatches(klp):
    """A patch with an older version of an installed state is refused, -EINVAL, and nothing of
    it is left; the installed patch is untouched."""
    klp.start_test("incompatible cumulative livepatches")

    klp.load_lp(MOD_LIVEPATCH2)
    klp.load_failing_mod(MOD_LIVEPATCH)
    assert not klp.vfs.exists(f"/sys/module/{MOD_LIVEPATCH}")
    assert console_loglevel(klp) == MOTORMOUTH
    klp.disable_lp(MOD_LIVEPATCH2)
    klp.unload_lp(MOD_LIVEPATCH2)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH2}.ko
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
{MOD_LIVEPATCH2}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH2}: allocate_loglevel_state: allocating space to store console_loglevel
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
{MOD_LIVEPATCH2}: post_patch_callback: vmlinux
{MOD_LIVEPATCH2}: fix_console_loglevel: fixing console_loglevel
livepatch: '{MOD_LIVEPATCH2}': patching complete
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: Livepatch patch ({MOD_LIVEPATCH}) is not compatible with the already installed livepatches.
insmod: ERROR: could not insert module test_modules/{MOD_LIVEPATCH}.ko: Invalid parameters
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH2}/enabled
livepatch: '{MOD_LIVEPATCH2}': initializing unpatching transition
{MOD_LIVEPATCH2}: pre_unpatch_callback: vmlinux
{MOD_LIVEPATCH2}: restore_console_loglevel: restoring console_loglevel
livepatch: '{MOD_LIVEPATCH2}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH2}': completing unpatching transition
{MOD_LIVEPATCH2}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH2}: free_loglevel_state: freeing space for the stored console_loglevel
livepatch: '{MOD_LIVEPATCH2}': unpatching complete
% rmmod {MOD_LIVEPATCH2}
""")
