// SPDX-License-Identifier: GPL-2.0
/*
 * livepatch-shadow-fix1: repairs livepatch-shadow-mod's leak. A dummy cannot
 * grow a field for the buffer it leaks, so the new dummy_alloc attaches the
 * buffer's address to the dummy as a shadow variable (SV_LEAK), and the new
 * dummy_free frees it. Dummies allocated before the patch have no SV_LEAK:
 * their buffers stay leaked, and dummy_free says so.
 *
 * Not meant to be loaded alone: see livepatch-shadow-mod.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/slab.h>
#include <linux/errno.h>
#include <linux/jiffies.h>

#define SV_LEAK 1

/* The same periods as livepatch-shadow-mod, whose dummies this allocates. */
#define ALLOC_PERIOD 1
#define CLEANUP_PERIOD (3 * ALLOC_PERIOD)
#define EXPIRE_PERIOD (4 * CLEANUP_PERIOD)

/* livepatch-shadow-mod's struct dummy: the layout must not change, which is why shadows exist. */
struct dummy {
	struct list_head list;
	unsigned long jiffies_expire;
};

/*
 * Storing the pointer after klp_shadow_alloc would do here; the constructor shows how a
 * variable is set up before anyone can find it, which matters with klp_shadow_get_or_alloc.
 */
static int shadow_leak_ctor(void *obj, void *shadow_data, void *ctor_data)
{
	int **shadow_leak = shadow_data;
	int **leak = ctor_data;

	if (!ctor_data)
		return -EINVAL;
	*shadow_leak = *leak;
	return 0;
}

static struct dummy *livepatch_fix1_dummy_alloc(void)
{
	struct dummy *d;
	int *leak;
	int **shadow_leak;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return NULL;
	d->jiffies_expire = jiffies + msecs_to_jiffies(1000 * EXPIRE_PERIOD);

	/* The fix: remember the buffer in an SV_LEAK shadow variable of the dummy. */
	leak = kzalloc(sizeof(*leak), GFP_KERNEL);
	if (!leak)
		goto err_leak;
	shadow_leak = klp_shadow_alloc(d, SV_LEAK, sizeof(leak), GFP_KERNEL, shadow_leak_ctor, &leak);
	if (!shadow_leak) {
		pr_err("%s: failed to allocate shadow variable for the leaking pointer: dummy @ %p, leak @ %p\n",
		       __func__, d, leak);
		goto err_shadow;
	}

	pr_info("%s: dummy @ %p, expires @ %lx\n", __func__, d, d->jiffies_expire);
	return d;

err_shadow:
	kfree(leak);
err_leak:
	kfree(d);
	return NULL;
}

static void livepatch_fix1_dummy_leak_dtor(void *obj, void *shadow_data)
{
	void *d = obj;
	int **shadow_leak = shadow_data;

	kfree(*shadow_leak);
	pr_info("%s: dummy @ %p, prevented leak @ %p\n", __func__, d, *shadow_leak);
}

static void livepatch_fix1_dummy_free(struct dummy *d)
{
	/* Dummies from before the patch have no SV_LEAK: their buffer is lost for good. */
	if (klp_shadow_get(d, SV_LEAK))
		klp_shadow_free(d, SV_LEAK, livepatch_fix1_dummy_leak_dtor);
	else
		pr_info("%s: dummy @ %p leaked!\n", __func__, d);
	kfree(d);
}

static struct klp_func funcs[] = {
	{
		.old_name = "dummy_alloc",
		.new_func = livepatch_fix1_dummy_alloc,
	},
	{
		.old_name = "dummy_free",
		.new_func = livepatch_fix1_dummy_free,
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

static int livepatch_shadow_fix1_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_shadow_fix1_exit(void)
{
	/* The dummies still alive keep their buffers no longer: free both. */
	klp_shadow_free_all(SV_LEAK, livepatch_fix1_dummy_leak_dtor);
}

module_init(livepatch_shadow_fix1_init);
module_exit(livepatch_shadow_fix1_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
