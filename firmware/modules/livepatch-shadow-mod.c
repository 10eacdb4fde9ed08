// SPDX-License-Identifier: GPL-2.0
/*
 * livepatch-shadow-mod: the buggy module of the shadow variable demo.
 *
 * A delayed work allocates a "dummy" every ALLOC_PERIOD seconds, and with it
 * a small buffer whose address it forgets: a leak. Another delayed work frees
 * the dummies that have expired, every CLEANUP_PERIOD seconds. The livepatch
 * modules livepatch-shadow-fix1 and livepatch-shadow-fix2 repair the leak and
 * add a counter to every dummy, with shadow variables, while dummies exist.
 *
 *   insmod livepatch-shadow-mod.ko
 *   insmod livepatch-shadow-fix1.ko      # dummies now keep their "leak"
 *   insmod livepatch-shadow-fix2.ko      # and count their checks
 *   echo 0 > /sys/kernel/livepatch/livepatch_shadow_fix2/enabled
 *   echo 0 > /sys/kernel/livepatch/livepatch_shadow_fix1/enabled
 *   rmmod livepatch_shadow_fix2; rmmod livepatch_shadow_fix1; rmmod livepatch_shadow_mod
 *
 * The periods are Linux's sample's, in seconds of emulated time.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/jiffies.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>

#define ALLOC_PERIOD 1				/* a new dummy every second */
#define CLEANUP_PERIOD (3 * ALLOC_PERIOD)	/* look for expired dummies after a few */
#define EXPIRE_PERIOD (4 * CLEANUP_PERIOD)	/* a dummy lives through a few cleanups */

/* Every dummy, so exit can free the ones left. */
LIST_HEAD(dummy_list);
DEFINE_MUTEX(dummy_list_mutex);

struct dummy {
	struct list_head list;
	unsigned long jiffies_expire;
};

/* The functions the fixes replace: global and not inlined, so a livepatch can name them. */
noinline struct dummy *dummy_alloc(void)
{
	struct dummy *d;
	void *leak __maybe_unused;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return NULL;
	d->jiffies_expire = jiffies + msecs_to_jiffies(1000 * EXPIRE_PERIOD);

	/* The bug: this buffer belongs to the dummy, but nothing remembers it. */
	leak = kzalloc(sizeof(int), GFP_KERNEL);

	pr_info("%s: dummy @ %p, expires @ %lx\n", __func__, d, d->jiffies_expire);
	return d;
}

noinline void dummy_free(struct dummy *d)
{
	pr_info("%s: dummy @ %p, expired = %lx\n", __func__, d, d->jiffies_expire);
	kfree(d);
}

noinline bool dummy_check(struct dummy *d, unsigned long jiffies)
{
	return time_after(jiffies, d->jiffies_expire);
}

static void alloc_work_func(struct work_struct *work);
static DECLARE_DELAYED_WORK(alloc_dwork, alloc_work_func);

static void alloc_work_func(struct work_struct *work)
{
	struct dummy *d = dummy_alloc();

	if (!d)
		return;
	mutex_lock(&dummy_list_mutex);
	list_add(&d->list, &dummy_list);
	mutex_unlock(&dummy_list_mutex);

	schedule_delayed_work(&alloc_dwork, msecs_to_jiffies(1000 * ALLOC_PERIOD));
}

/* Frees the expired dummies, and with them, unknowingly, nothing of what dummy_alloc leaked. */
static void cleanup_work_func(struct work_struct *work);
static DECLARE_DELAYED_WORK(cleanup_dwork, cleanup_work_func);

static void cleanup_work_func(struct work_struct *work)
{
	struct dummy *d, *tmp;
	unsigned long j = jiffies;

	pr_info("%s: jiffies = %lx\n", __func__, j);
	mutex_lock(&dummy_list_mutex);
	list_for_each_entry_safe(d, tmp, &dummy_list, list) {
		if (dummy_check(d, j)) {
			list_del(&d->list);
			dummy_free(d);
		}
	}
	mutex_unlock(&dummy_list_mutex);

	schedule_delayed_work(&cleanup_dwork, msecs_to_jiffies(1000 * CLEANUP_PERIOD));
}

static int livepatch_shadow_mod_init(void)
{
	schedule_delayed_work(&alloc_dwork, msecs_to_jiffies(1000 * ALLOC_PERIOD));
	schedule_delayed_work(&cleanup_dwork, msecs_to_jiffies(1000 * CLEANUP_PERIOD));
	return 0;
}

static void livepatch_shadow_mod_exit(void)
{
	struct dummy *d, *tmp;

	/* Both works queue themselves again: cancel keeps them from it while it waits. */
	cancel_delayed_work_sync(&alloc_dwork);
	cancel_delayed_work_sync(&cleanup_dwork);

	list_for_each_entry_safe(d, tmp, &dummy_list, list) {
		list_del(&d->list);
		dummy_free(d);
	}
}

module_init(livepatch_shadow_mod_init);
module_exit(livepatch_shadow_mod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Buggy module for the shadow variable demo");
