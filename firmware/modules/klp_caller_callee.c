// SPDX-License-Identifier: GPL-2.0
/*
 * klp_caller_callee: a caller and its callee whose meaning changes together
 * in one patch (klp_caller_callee_patch), the classic mixed-version hazard.
 *
 * Each kernel thread kcaller/N loops: cc_caller() asks cc_callee() for the
 * protocol version, sleeps inside_ms, asks again, and reports both answers
 * with its own version through cc_report(). A call that mixes versions (an
 * old caller reaching the new callee, or the reverse) counts in mixed=.
 *
 * With relay=1 the threads pass a token: a thread inside cc_caller() hands it
 * on and stays inside for overlap_ms more, so at every moment some thread has
 * cc_caller() on its stack, though each leaves it at every turn.
 *
 *   insmod klp_caller_callee.ko threads=2 relay=1 inside_ms=20
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/delay.h>
#include <linux/sched.h>
#include <linux/wait.h>

#define CC_MAX_THREADS 4
#define CC_VERSION 1

static int threads = 1;
module_param(threads, int, 0444);
MODULE_PARM_DESC(threads, "how many kcaller threads (1 to 4)");

static int inside_ms = 20;
module_param(inside_ms, int, 0444);
MODULE_PARM_DESC(inside_ms, "how long a thread sleeps inside cc_caller");

static int outside_ms = 5;
module_param(outside_ms, int, 0444);
MODULE_PARM_DESC(outside_ms, "how long a thread sleeps between calls (without relay)");

static bool relay;
module_param(relay, bool, 0444);
MODULE_PARM_DESC(relay, "pass a token so that some thread is always inside cc_caller");

static int overlap_ms = 2;
module_param(overlap_ms, int, 0444);
MODULE_PARM_DESC(overlap_ms, "with relay, how long a thread stays inside after passing the token");

static long calls;
module_param(calls, long, 0444);
MODULE_PARM_DESC(calls, "cc_caller runs completed (read-only)");

static long mixed;
module_param(mixed, long, 0444);
MODULE_PARM_DESC(mixed, "cc_caller runs that saw another version of cc_callee (read-only)");

static DECLARE_WAIT_QUEUE_HEAD(cc_wq);
static struct task_struct *cc_tasks[CC_MAX_THREADS];
static int cc_turn;
static int cc_running;
static bool cc_leaving;

/*
 * noipa: gcc must not fold what cc_callee returns into its callers, since a
 * livepatch changes it.
 */
/* The time spent inside a caller, old or new: shared, and never patched. */
__attribute__((noipa)) void cc_hold(int id)
{
	msleep(inside_ms);
	if (relay) {
		WRITE_ONCE(cc_turn, (id + 1) % threads);
		wake_up(&cc_wq);
		msleep(overlap_ms);
	}
}

__attribute__((noipa)) void cc_report(int caller_version, int first, int second)
{
	WRITE_ONCE(calls, calls + 1);
	if (first != caller_version || second != caller_version)
		WRITE_ONCE(mixed, mixed + 1);
}

__attribute__((noipa)) int cc_callee(void)
{
	return CC_VERSION;
}

__attribute__((noipa)) int cc_caller(int id)
{
	int first = cc_callee();

	cc_hold(id);
	cc_report(CC_VERSION, first, cc_callee());
	return first;
}

static int cc_thread(void *data)
{
	int id = (long)data;

	while (!READ_ONCE(cc_leaving)) {
		if (relay)
			wait_event_interruptible(cc_wq, READ_ONCE(cc_turn) == id || READ_ONCE(cc_leaving));
		else
			msleep(outside_ms);
		if (READ_ONCE(cc_leaving))
			break;
		cc_caller(id);
	}
	WRITE_ONCE(cc_running, cc_running - 1);
	return 0;
}

static int cc_init(void)
{
	char comm[TASK_COMM_LEN];

	if (threads < 1 || threads > CC_MAX_THREADS) {
		pr_err("threads=%d: between 1 and %d\n", threads, CC_MAX_THREADS);
		return -EINVAL;
	}
	if (inside_ms < 1 || outside_ms < 0 || overlap_ms < 1) {
		pr_err("inside_ms and overlap_ms must be positive, outside_ms not negative\n");
		return -EINVAL;
	}
	cc_running = threads;
	for (long i = 0; i < threads; i++) {
		snprintf(comm, sizeof(comm), "kcaller/%ld", i);
		cc_tasks[i] = kthread_create(cc_thread, (void *)i, comm);
	}
	return 0;
}

static void cc_exit(void)
{
	WRITE_ONCE(cc_leaving, true);
	wake_up(&cc_wq);
	/* Our text must outlive every thread still running it. */
	while (READ_ONCE(cc_running) > 0)
		msleep(10);
}

module_init(cc_init);
module_exit(cc_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("A caller and a callee that change meaning together, called in a loop by kernel threads");
