// SPDX-License-Identifier: GPL-2.0
/*
 * test_workqueue: the workqueue's promises, checked from a module's init and
 * logged one line per check: queued work runs in a kworker, a pending work is
 * queued once, flush waits for it, a delayed work waits for its timer, cancel
 * takes a pending work back and waits for a running one, and a work item that
 * sleeps does not keep another from running.
 *
 * On one CPU every line is always the same; on more, whether a work item is
 * still pending when init looks depends on how the CPUs interleave.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#define LATE_DELAY 10	/* jiffies */
#define jiffies_to_msecs(j) ((j) * 1000 / HZ)

static int plain_runs;
static struct task_struct *plain_task;

static void plain_fn(struct work_struct *work)
{
	plain_task = current;
	plain_runs++;
}
static DECLARE_WORK(plain_work, plain_fn);

static unsigned long late_ran_at;

static void late_fn(struct work_struct *work)
{
	late_ran_at = jiffies;
}
static DECLARE_DELAYED_WORK(late_work, late_fn);

/* sleepy sleeps until other has run (or gives up): other must not wait for sleepy to end. */
static bool other_ran, sleepy_saw_other;
static struct task_struct *sleepy_task, *other_task;

static void other_fn(struct work_struct *work)
{
	other_task = current;
	WRITE_ONCE(other_ran, true);
}
static DECLARE_WORK(other_work, other_fn);

static void sleepy_fn(struct work_struct *work)
{
	int tries;

	sleepy_task = current;
	for (tries = 0; tries < 50 && !READ_ONCE(other_ran); tries++)
		msleep(10);
	sleepy_saw_other = READ_ONCE(other_ran);
}
static DECLARE_WORK(sleepy_work, sleepy_fn);

static bool slow_done;

static void slow_fn(struct work_struct *work)
{
	msleep(50);
	WRITE_ONCE(slow_done, true);
}
static DECLARE_WORK(slow_work, slow_fn);

static bool is_kworker(struct task_struct *t)
{
	return t && (t->flags & PF_KTHREAD) && !strncmp(t->comm, "kworker/", 8);
}

static int __init test_workqueue_init(void)
{
	unsigned long queued_at;
	int first, again, ret;

	first = schedule_work(&plain_work);
	again = schedule_work(&plain_work);
	pr_info("schedule_work: %d, again while pending: %d\n", first, again);
	ret = flush_work(&plain_work);
	pr_info("flush_work: %d, runs: %d, in a kworker: %d\n", ret, plain_runs, is_kworker(plain_task));
	pr_info("flush_work of an idle work: %d\n", flush_work(&plain_work));

	schedule_work(&plain_work);
	ret = cancel_work_sync(&plain_work);
	pr_info("cancel_work_sync of a pending work: %d, runs: %d\n", ret, plain_runs);
	pr_info("cancel_work_sync of an idle work: %d\n", cancel_work_sync(&plain_work));

	queued_at = jiffies;
	schedule_delayed_work(&late_work, LATE_DELAY);
	pr_info("flush_work of a delayed work on its timer: %d\n", flush_work(&late_work.work));
	ret = flush_delayed_work(&late_work);
	pr_info("flush_delayed_work: %d, ran before its delay: %d\n", ret,
		(long)(late_ran_at - queued_at) < LATE_DELAY);
	queued_at = jiffies;
	late_ran_at = 0;
	schedule_delayed_work(&late_work, LATE_DELAY);
	msleep(jiffies_to_msecs(4 * LATE_DELAY));
	pr_info("a delayed work left alone ran: %d, after its delay: %d\n", late_ran_at != 0,
		(long)(late_ran_at - queued_at) >= LATE_DELAY);
	late_ran_at = 0;
	schedule_delayed_work(&late_work, 100 * LATE_DELAY);
	ret = cancel_delayed_work_sync(&late_work);
	msleep(10);
	pr_info("cancel_delayed_work_sync of an armed work: %d, ran: %d\n", ret, late_ran_at != 0);

	schedule_work(&sleepy_work);
	schedule_work(&other_work);
	flush_work(&sleepy_work);
	flush_work(&other_work);
	pr_info("a sleeping work let another run: %d, in another kworker: %d\n", sleepy_saw_other,
		is_kworker(other_task) && other_task != sleepy_task);

	schedule_work(&slow_work);
	msleep(10);	/* it starts, and sleeps */
	ret = cancel_work_sync(&slow_work);
	pr_info("cancel_work_sync of a running work: %d, it had finished: %d\n", ret, READ_ONCE(slow_done));
	return 0;
}

static void __exit test_workqueue_exit(void)
{
}

module_init(test_workqueue_init);
module_exit(test_workqueue_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpemu's checks of the workqueue: queueing, flush, cancel, delayed work, sleeping work");
