// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_callbacks_busy: a target module whose work item runs
 * busymod_work_func, the function test_klp_callbacks_demo replaces. With
 * block_transition=Y the work item stays in that function, sleeping 20 ms at
 * a time, until the flag is cleared (by a write to the parameter, or by
 * rmmod): its kworker holds a patching transition up for that long.
 *
 * Init returns once the work function has logged its entry, and with
 * block_transition=N only once it has finished, so that the log has a fixed
 * order whatever the scheduling.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/workqueue.h>
#include <linux/completion.h>
#include <linux/delay.h>

static bool block_transition;
module_param(block_transition, bool, 0644);
MODULE_PARM_DESC(block_transition, "block_transition (default=false)");

static void busymod_work_func(struct work_struct *work);
static DECLARE_WORK(work, busymod_work_func);
static DECLARE_COMPLETION(busymod_work_started);

static void busymod_work_func(struct work_struct *work)
{
	pr_info("%s enter\n", __func__);
	complete(&busymod_work_started);

	/* Asleep inside this function, as seen from the stack, until told to leave. */
	while (READ_ONCE(block_transition))
		msleep(20);

	pr_info("%s exit\n", __func__);
}

static int test_klp_callbacks_busy_init(void)
{
	pr_info("%s\n", __func__);
	schedule_work(&work);
	wait_for_completion(&busymod_work_started);
	if (!block_transition)
		flush_work(&work);
	return 0;
}

static void test_klp_callbacks_busy_exit(void)
{
	WRITE_ONCE(block_transition, false);
	flush_work(&work);
	pr_info("%s\n", __func__);
}

module_init(test_klp_callbacks_busy_init);
module_exit(test_klp_callbacks_busy_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Livepatch test: busy target module");
