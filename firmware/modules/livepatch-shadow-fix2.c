// SPDX-License-Identifier: GPL-2.0
/*
 * livepatch-shadow-fix2: on top of fix1, gives every dummy a counter of the
 * times the cleanup checked it: an SV_COUNTER shadow variable, created on the
 * first check (dummies already alive get one too) and reported when the dummy
 * is freed. It keeps fix1's SV_LEAK repair, since it replaces dummy_free.
 *
 * Not meant to be loaded alone: see livepatch-shadow-mod.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/slab.h>
#include <linux/jiffies.h>

#define SV_LEAK 1
#define SV_COUNTER 2

struct dummy {
	struct list_head list;
	unsigned long jiffies_expire;
};

static bool livepatch_fix2_dummy_check(struct dummy *d, unsigned long jiffies)
{
	int *shadow_count;

	/* Zeroed on creation, no constructor needed. GFP_NOWAIT: the caller holds the list mutex. */
	shadow_count = klp_shadow_get_or_alloc(d, SV_COUNTER, sizeof(*shadow_count), GFP_NOWAIT,
					       NULL, NULL);
	if (shadow_count)
		*shadow_count += 1;

	return time_after(jiffies, d->jiffies_expire);
}

static void livepatch_fix2_dummy_leak_dtor(void *obj, void *shadow_data)
{
	void *d = obj;
	void **shadow_leak = shadow_data;

	kfree(*shadow_leak);
	pr_info("%s: dummy @ %p, prevented leak @ %p\n", __func__, d, *shadow_leak);
}

static void livepatch_fix2_dummy_free(struct dummy *d)
{
	int *shadow_count;

	/* fix1's repair, which this function replaces along with fix1's dummy_free. */
	if (klp_shadow_get(d, SV_LEAK))
		klp_shadow_free(d, SV_LEAK, livepatch_fix2_dummy_leak_dtor);
	else
		pr_info("%s: dummy @ %p leaked!\n", __func__, d);

	shadow_count = klp_shadow_get(d, SV_COUNTER);
	if (shadow_count) {
		pr_info("%s: dummy @ %p, check counter = %d\n", __func__, d, *shadow_count);
		klp_shadow_free(d, SV_COUNTER, NULL);
	}

	kfree(d);
}

static struct klp_func funcs[] = {
	{
		.old_name = "dummy_check",
		.new_func = livepatch_fix2_dummy_check,
	},
	{
		.old_name = "dummy_free",
		.new_func = livepatch_fix2_dummy_free,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		.name = "livepatch_shadow_mod",
		.funcs = funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_shadow_fix2_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_shadow_fix2_exit(void)
{
	klp_shadow_free_all(SV_COUNTER, NULL);
}

module_init(livepatch_shadow_fix2_init);
module_exit(livepatch_shadow_fix2_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
