// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * livepatch-callbacks-demo: the (un)patching callbacks sample. Every object
 * (vmlinux, livepatch_callbacks_mod, livepatch_callbacks_busymod) has all
 * four callbacks, and each one logs which it is and the object's module
 * state, so dmesg shows when the core runs them.
 *
 *   insmod livepatch-callbacks-mod.ko
 *   insmod livepatch-callbacks-demo.ko
 *   echo 0 > /sys/kernel/livepatch/livepatch_callbacks_demo/enabled
 *   rmmod livepatch_callbacks_demo
 *   rmmod livepatch_callbacks_mod
 *
 * Load the two modules the other way round to see the target's callbacks run
 * as it loads. pre_patch returns the pre_patch_ret parameter: after
 *
 *   echo -19 > /sys/module/livepatch_callbacks_demo/parameters/pre_patch_ret
 *
 * the next target module to load is refused with -ENODEV. The patch also
 * replaces livepatch_callbacks_busymod's work function; loading that module
 * with sleep_secs=30 before this one keeps the transition waiting meanwhile.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>

static int pre_patch_ret;
module_param(pre_patch_ret, int, 0644);
MODULE_PARM_DESC(pre_patch_ret, "pre_patch_ret (default=0)");

static const char *const module_state[] = {
	[MODULE_STATE_LIVE] = "[MODULE_STATE_LIVE] Normal state",
	[MODULE_STATE_COMING] = "[MODULE_STATE_COMING] Full formed, running module_init",
	[MODULE_STATE_GOING] = "[MODULE_STATE_GOING] Going away",
	[MODULE_STATE_UNFORMED] = "[MODULE_STATE_UNFORMED] Still setting it up",
};

static void callback_info(const char *callback, struct klp_object *obj)
{
	if (!obj->mod) {
		pr_info("%s: vmlinux\n", callback);
		return;
	}
	pr_info("%s: %s -> %s\n", callback, obj->mod->name, module_state[obj->mod->state]);
}

/* Before the object is patched: an error here stops the patch, or the module's load. */
static int pre_patch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
	return pre_patch_ret;
}

/* Once every task runs the patched object. */
static void post_patch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
}

/* Before the object is unpatched. */
static void pre_unpatch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
}

/* Once no task runs the patched object any more. */
static void post_unpatch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
}

struct work_struct;

static void patched_work_func(struct work_struct *work)
{
	pr_info("%s\n", __func__);
}

#define CALLBACKS {						\
	.pre_patch = pre_patch_callback,			\
	.post_patch = post_patch_callback,			\
	.pre_unpatch = pre_unpatch_callback,			\
	.post_unpatch = post_unpatch_callback,			\
}

static struct klp_func no_funcs[] = {
	{ }
};

static struct klp_func busymod_funcs[] = {
	{
		.old_name = "busymod_work_func",
		.new_func = patched_work_func,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		.name = NULL,	/* vmlinux */
		.funcs = no_funcs,
		.callbacks = CALLBACKS,
	},
	{
		.name = "livepatch_callbacks_mod",
		.funcs = no_funcs,
		.callbacks = CALLBACKS,
	},
	{
		.name = "livepatch_callbacks_busymod",
		.funcs = busymod_funcs,
		.callbacks = CALLBACKS,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_callbacks_demo_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_callbacks_demo_exit(void)
{
}

module_init(livepatch_callbacks_demo_init);
module_exit(livepatch_callbacks_demo_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
