// SPDX-License-Identifier: GPL-2.0
/*
 * klab_sleeper_patch: a livepatch of one of klab_sleeper's functions, the one
 * named by target= (klab_commit by default). Every klab_sleeper function has
 * the same prototype, so one replacement serves them all. A klabd thread
 * asleep inside the target holds the transition up until it is released.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>

struct klab_job;

static char *target = "klab_commit";
module_param(target, charp, 0444);
MODULE_PARM_DESC(target, "the klab_sleeper function to replace");

static int livepatch_klab_step(struct klab_job *job)
{
	pr_info("%s: the new %s runs\n", __func__, target);
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "klab_commit",
		.new_func = livepatch_klab_step,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		.name = "klab_sleeper",
		.funcs = funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int klab_sleeper_patch_init(void)
{
	funcs[0].old_name = target;
	return klp_enable_patch(&patch);
}

static void klab_sleeper_patch_exit(void)
{
}

module_init(klab_sleeper_patch_init);
module_exit(klab_sleeper_patch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch of one klab_sleeper function, chosen by target=");
