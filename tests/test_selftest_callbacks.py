"""Linux's tools/testing/selftests/livepatch/test-callbacks.sh, case by case: which (un)patch
callbacks run, in which order and with which module state, as livepatches and the modules they
patch come and go. Each case's log, through the script's filter, must be the script's text."""

from __future__ import annotations

MOD_LIVEPATCH = "test_klp_callbacks_demo"
MOD_LIVEPATCH2 = "test_klp_callbacks_demo2"
MOD_TARGET = "test_klp_callbacks_mod"
MOD_TARGET_BUSY = "test_klp_callbacks_busy"
SYSFS_KLP_DIR = "/sys/kernel/livepatch"

LIVE = "[MODULE_STATE_LIVE] Normal state"
COMING = "[MODULE_STATE_COMING] Full formed, running module_init"
GOING = "[MODULE_STATE_GOING] Going away"


def test_target_module_before_livepatch(klp):
    """Target module first: enabling runs pre_patch, then post_patch, for vmlinux and the module;
    disabling runs pre_unpatch and post_unpatch for both."""
    klp.start_test("target module before livepatch")

    klp.load_mod(MOD_TARGET)
    klp.load_lp(MOD_LIVEPATCH)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)
    klp.unload_mod(MOD_TARGET)

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET}.ko
{MOD_TARGET}: {MOD_TARGET}_init
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
{MOD_LIVEPATCH}: post_patch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: pre_unpatch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
""")


def test_module_coming_notifier(klp):
    """Livepatch first: enabling covers vmlinux only; the target module gets its pre_patch and
    post_patch when it loads (klp_module_coming), before its init runs."""
    klp.start_test("module_coming notifier")

    klp.load_lp(MOD_LIVEPATCH)
    klp.load_mod(MOD_TARGET)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)
    klp.unload_mod(MOD_TARGET)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': patching complete
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_LIVEPATCH}' to loading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET} -> {COMING}
{MOD_LIVEPATCH}: post_patch_callback: {MOD_TARGET} -> {COMING}
{MOD_TARGET}: {MOD_TARGET}_init
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: pre_unpatch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
""")


def test_module_going_notifier(klp):
    """The target module leaves while patched: only its object is reverted, after its exit
    (klp_module_going); disabling later covers vmlinux only."""
    klp.start_test("module_going notifier")

    klp.load_mod(MOD_TARGET)
    klp.load_lp(MOD_LIVEPATCH)
    klp.unload_mod(MOD_TARGET)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET}.ko
{MOD_TARGET}: {MOD_TARGET}_init
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
{MOD_LIVEPATCH}: post_patch_callback: {MOD_TARGET} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': patching complete
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
{MOD_LIVEPATCH}: pre_unpatch_callback: {MOD_TARGET} -> {GOING}
livepatch: reverting patch '{MOD_LIVEPATCH}' on unloading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET} -> {GOING}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")


def test_module_coming_and_module_going_notifiers(klp):
    """Livepatch first, then the target module comes and goes while the patch stays."""
    klp.start_test("module_coming and module_going notifiers")

    klp.load_lp(MOD_LIVEPATCH)
    klp.load_mod(MOD_TARGET)
    klp.unload_mod(MOD_TARGET)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': patching complete
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_LIVEPATCH}' to loading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET} -> {COMING}
{MOD_LIVEPATCH}: post_patch_callback: {MOD_TARGET} -> {COMING}
{MOD_TARGET}: {MOD_TARGET}_init
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
{MOD_LIVEPATCH}: pre_unpatch_callback: {MOD_TARGET} -> {GOING}
livepatch: reverting patch '{MOD_LIVEPATCH}' on unloading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET} -> {GOING}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")


def test_target_module_not_present(klp):
    """No target module ever: only vmlinux's callbacks run."""
    klp.start_test("target module not present")

    klp.load_lp(MOD_LIVEPATCH)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")


def test_pre_patch_callback_enodev(klp):
    """vmlinux's pre_patch fails with -ENODEV: the transition is cancelled before it starts, no
    other callback runs, and insmod of the livepatch fails with that error."""
    klp.start_test("pre-patch callback -ENODEV")

    klp.load_mod(MOD_TARGET)
    klp.load_failing_mod(MOD_LIVEPATCH, "pre_patch_ret=-19")
    klp.unload_mod(MOD_TARGET)

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET}.ko
{MOD_TARGET}: {MOD_TARGET}_init
% insmod test_modules/{MOD_LIVEPATCH}.ko pre_patch_ret=-19
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
livepatch: pre-patch callback failed for object 'vmlinux'
livepatch: failed to enable patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': canceling patching transition, going to unpatch
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
livepatch: '{MOD_LIVEPATCH}': unpatching complete
insmod: ERROR: could not insert module test_modules/{MOD_LIVEPATCH}.ko: No such device
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
""")
    assert not klp.vfs.exists(f"{SYSFS_KLP_DIR}/{MOD_LIVEPATCH}")
    assert not klp.vfs.exists(f"/sys/module/{MOD_LIVEPATCH}")


def test_module_coming_pre_patch_callback_enodev(klp):
    """The patch is enabled; then its pre_patch fails for a loading target module: the module
    is refused with that error and none of its other callbacks run."""
    klp.start_test("module_coming + pre-patch callback -ENODEV")

    klp.load_lp(MOD_LIVEPATCH)
    klp.set_pre_patch_ret(MOD_LIVEPATCH, -19)
    klp.load_failing_mod(MOD_TARGET)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': patching complete
% echo -19 > /sys/module/{MOD_LIVEPATCH}/parameters/pre_patch_ret
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_LIVEPATCH}' to loading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET} -> {COMING}
livepatch: pre-patch callback failed for object '{MOD_TARGET}'
livepatch: patch '{MOD_LIVEPATCH}' failed for module '{MOD_TARGET}', refusing to load module '{MOD_TARGET}'
insmod: ERROR: could not insert module test_modules/{MOD_TARGET}.ko: No such device
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
""")
    assert not klp.vfs.exists(f"/sys/module/{MOD_TARGET}")


def test_multiple_target_modules(klp):
    """A "busy" target module whose work function returns at once, the livepatch, then a second
    target module: every transition completes straight away."""
    klp.start_test("multiple target modules")

    klp.load_mod(MOD_TARGET_BUSY, "block_transition=N")
    klp.load_lp(MOD_LIVEPATCH)
    klp.load_mod(MOD_TARGET)
    klp.unload_mod(MOD_TARGET)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)
    klp.unload_mod(MOD_TARGET_BUSY)

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET_BUSY}.ko block_transition=N
{MOD_TARGET_BUSY}: {MOD_TARGET_BUSY}_init
{MOD_TARGET_BUSY}: busymod_work_func enter
{MOD_TARGET_BUSY}: busymod_work_func exit
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET_BUSY} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
{MOD_LIVEPATCH}: post_patch_callback: {MOD_TARGET_BUSY} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': patching complete
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_LIVEPATCH}' to loading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET} -> {COMING}
{MOD_LIVEPATCH}: post_patch_callback: {MOD_TARGET} -> {COMING}
{MOD_TARGET}: {MOD_TARGET}_init
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
{MOD_LIVEPATCH}: pre_unpatch_callback: {MOD_TARGET} -> {GOING}
livepatch: reverting patch '{MOD_LIVEPATCH}' on unloading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET} -> {GOING}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: pre_unpatch_callback: {MOD_TARGET_BUSY} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET_BUSY} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
% rmmod {MOD_TARGET_BUSY}
{MOD_TARGET_BUSY}: {MOD_TARGET_BUSY}_exit
""")


def test_busy_target_module(klp):
    """The busy module's worker sits in busymod_work_func, which the patch replaces, so the
    transition stalls. A target module loaded meanwhile gets no post_patch, and on unloading no
    pre_unpatch; disabling reverses the transition, with no pre_unpatch for anyone."""
    klp.start_test("busy target module")

    klp.load_mod(MOD_TARGET_BUSY, "block_transition=Y")
    klp.load_lp_nowait(MOD_LIVEPATCH)
    # stalled on test_klp_callbacks_busy's busymod_work_func
    if klp.sh(f"wait {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/transition 1 60s")[0]:
        klp.die("failed to stall transition")
    klp.load_mod(MOD_TARGET)
    klp.unload_mod(MOD_TARGET)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH)
    klp.unload_mod(MOD_TARGET_BUSY)

    klp.check_result(f"""\
% insmod test_modules/{MOD_TARGET_BUSY}.ko block_transition=Y
{MOD_TARGET_BUSY}: {MOD_TARGET_BUSY}_init
{MOD_TARGET_BUSY}: busymod_work_func enter
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET_BUSY} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': starting patching transition
% insmod test_modules/{MOD_TARGET}.ko
livepatch: applying patch '{MOD_LIVEPATCH}' to loading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: pre_patch_callback: {MOD_TARGET} -> {COMING}
{MOD_TARGET}: {MOD_TARGET}_init
% rmmod {MOD_TARGET}
{MOD_TARGET}: {MOD_TARGET}_exit
livepatch: reverting patch '{MOD_LIVEPATCH}' on unloading module '{MOD_TARGET}'
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET} -> {GOING}
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': reversing transition from patching to unpatching
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
{MOD_LIVEPATCH}: post_unpatch_callback: {MOD_TARGET_BUSY} -> {LIVE}
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH}
% rmmod {MOD_TARGET_BUSY}
{MOD_TARGET_BUSY}: busymod_work_func exit
{MOD_TARGET_BUSY}: {MOD_TARGET_BUSY}_exit
""")


def test_multiple_livepatches(klp):
    """Two livepatches: each one's callbacks run as it goes through its own transitions."""
    klp.start_test("multiple livepatches")

    klp.load_lp(MOD_LIVEPATCH)
    klp.load_lp(MOD_LIVEPATCH2)
    klp.disable_lp(MOD_LIVEPATCH2)
    klp.disable_lp(MOD_LIVEPATCH)
    klp.unload_lp(MOD_LIVEPATCH2)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': patching complete
% insmod test_modules/{MOD_LIVEPATCH2}.ko
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
{MOD_LIVEPATCH2}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
{MOD_LIVEPATCH2}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH2}/enabled
livepatch: '{MOD_LIVEPATCH2}': initializing unpatching transition
{MOD_LIVEPATCH2}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH2}': completing unpatching transition
{MOD_LIVEPATCH2}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': unpatching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH}/enabled
livepatch: '{MOD_LIVEPATCH}': initializing unpatching transition
{MOD_LIVEPATCH}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH}': completing unpatching transition
{MOD_LIVEPATCH}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': unpatching complete
% rmmod {MOD_LIVEPATCH2}
% rmmod {MOD_LIVEPATCH}
""")


def test_atomic_replace(klp):
    """The second livepatch replaces the first: the first's unpatch callbacks never run; the
    replacement's run when it is disabled."""
    klp.start_test("atomic replace")

    klp.load_lp(MOD_LIVEPATCH)
    klp.load_lp(MOD_LIVEPATCH2, "replace=1")
    klp.disable_lp(MOD_LIVEPATCH2)
    klp.unload_lp(MOD_LIVEPATCH2)
    klp.unload_lp(MOD_LIVEPATCH)

    klp.check_result(f"""\
% insmod test_modules/{MOD_LIVEPATCH}.ko
livepatch: enabling patch '{MOD_LIVEPATCH}'
livepatch: '{MOD_LIVEPATCH}': initializing patching transition
{MOD_LIVEPATCH}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': starting patching transition
livepatch: '{MOD_LIVEPATCH}': completing patching transition
{MOD_LIVEPATCH}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH}': patching complete
% insmod test_modules/{MOD_LIVEPATCH2}.ko replace=1
livepatch: enabling patch '{MOD_LIVEPATCH2}'
livepatch: '{MOD_LIVEPATCH2}': initializing patching transition
{MOD_LIVEPATCH2}: pre_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': starting patching transition
livepatch: '{MOD_LIVEPATCH2}': completing patching transition
{MOD_LIVEPATCH2}: post_patch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': patching complete
% echo 0 > {SYSFS_KLP_DIR}/{MOD_LIVEPATCH2}/enabled
livepatch: '{MOD_LIVEPATCH2}': initializing unpatching transition
{MOD_LIVEPATCH2}: pre_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': starting unpatching transition
livepatch: '{MOD_LIVEPATCH2}': completing unpatching transition
{MOD_LIVEPATCH2}: post_unpatch_callback: vmlinux
livepatch: '{MOD_LIVEPATCH2}': unpatching complete
% rmmod {MOD_LIVEPATCH2}
% rmmod {MOD_LIVEPATCH}
""")
