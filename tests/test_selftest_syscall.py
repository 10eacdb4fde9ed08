"""Linux's tools/testing/selftests/livepatch/test-syscall.sh: one process per CPU calls getpid in
a loop (test_klp-call_getpid, started by `spawn` as the script's `&`), test_klp_syscall patches
the system call and counts the processes named by klp_pids as each runs the new code;
/sys/kernel/test_klp_syscall/npids must reach 0. The kernel log must be the script's, line for
line. test_klp_syscall patches sys_getpid, this kernel's name for __x64_sys_getpid.
"""

from __future__ import annotations

from klpemu.kernel.tasks import find_task
from klpemu.kernel.user_programs import stack_slot

MOD_SYSCALL = "test_klp_syscall"
NPIDS = f"/sys/kernel/{MOD_SYSCALL}/npids"


def test_patch_getpid_syscall_while_being_heavily_hammered(klp):
    klp.setup_config()
    klp.start_test("patch getpid syscall while being heavily hammered")

    nproc = len(klp.machine.cpus)  # getconf _NPROCESSORS_ONLN
    pids = []
    for _ in range(min(nproc, 128)):
        status, out = klp.sh("spawn test_klp-call_getpid")
        assert status == 0, out
        pids.append(out.strip())
    pid_list = ",".join(pids)
    klp.load_lp(MOD_SYSCALL, f"klp_pids={pid_list}")

    # wait for all tasks to transition to patched state
    assert klp.loop_until(lambda: klp.vfs.read(NPIDS) == "0\n")
    pending_pids = klp.cat(NPIDS).strip()
    klp.log(f"{MOD_SYSCALL}: Remaining not livepatched processes: {pending_pids}")

    for pid in pids:
        klp.sh(f"kill {pid}")

    klp.disable_lp(MOD_SYSCALL)
    klp.unload_lp(MOD_SYSCALL)

    klp.check_result(f"""\
% insmod test_modules/{MOD_SYSCALL}.ko klp_pids={pid_list}
livepatch: enabling patch '{MOD_SYSCALL}'
livepatch: '{MOD_SYSCALL}': initializing patching transition
livepatch: '{MOD_SYSCALL}': starting patching transition
livepatch: '{MOD_SYSCALL}': completing patching transition
livepatch: '{MOD_SYSCALL}': patching complete
{MOD_SYSCALL}: Remaining not livepatched processes: 0
% echo 0 > /sys/kernel/livepatch/{MOD_SYSCALL}/enabled
livepatch: '{MOD_SYSCALL}': initializing unpatching transition
livepatch: '{MOD_SYSCALL}': starting unpatching transition
livepatch: '{MOD_SYSCALL}': completing unpatching transition
livepatch: '{MOD_SYSCALL}': unpatching complete
% rmmod {MOD_SYSCALL}
""")
    # the processes are gone, and the directory with the module
    assert "test_klp-call_g" not in klp.sh("ps")[1]
    assert not klp.vfs.exists(f"/sys/kernel/{MOD_SYSCALL}")


def test_klp_pids_takes_at_most_nr_cpus_values(klp):
    """module_param_array: more values than the array holds is EINVAL, with param_array's line."""
    status, out = klp.sh(f"insmod test_modules/{MOD_SYSCALL}.ko klp_pids={','.join(['1'] * 9)}")
    assert status == 1
    assert out.strip() == f"insmod: ERROR: could not insert module test_modules/{MOD_SYSCALL}.ko: Invalid parameters"
    assert klp.sh("dmesg | tail -n 2")[1].splitlines()[0].endswith("klp_pids: can only take 8 arguments")


def test_spawned_processes_get_their_own_stacks(klp):
    """A pid killed frees its user stack for the next; a live one keeps its own."""
    for _ in range(2):
        klp.sh("spawn test_klp-call_getpid")
    klp.machine.run(20_000_000)
    klp.sh("kill 9")
    klp.machine.run(10_000_000)
    assert [klp.sh("spawn test_klp-call_getpid")[1].strip() for _ in range(2)] == ["11", "12"]
    klp.machine.run(20_000_000)
    assert klp.machine.oops is None
    ps = [line.split() for line in klp.sh("ps | grep test_klp")[1].splitlines()]
    assert [p[0] for p in ps] == ["10", "11", "12"]
    base = klp.machine.image.addr("user_stacks")
    slots = [stack_slot(klp.machine, find_task(klp.machine, pid), base) for pid in (10, 11, 12)]
    assert slots == [4, 3, 5]  # 11 took the stack 9 left; 0 to 2 are init's, sysmon's and sh's
