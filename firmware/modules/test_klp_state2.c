// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_state2: the next cumulative patch of test_klp_state, with the
 * console loglevel state at version 2, which can take the state over. When a
 * patch before it already changed the level (klp_get_prev_state finds the
 * state), this one keeps the saved level and the allocation as they are and
 * adopts them, and hands them back untouched if the transition is reverted.
 * With no earlier patch it does everything itself, as version 1 does.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/slab.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/printk.h>
#include <linux/livepatch.h>

#define CONSOLE_LOGLEVEL_STATE 1
/* Version 2 takes the state over from an earlier patch. */
#define CONSOLE_LOGLEVEL_STATE_VERSION 2

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

static struct klp_patch patch;

static int allocate_loglevel_state(void)
{
	struct klp_state *state;

	if (klp_get_prev_state(CONSOLE_LOGLEVEL_STATE)) {
		pr_info("%s: space to store console_loglevel already allocated\n", __func__);
		return 0;
	}
	state = klp_get_state(&patch, CONSOLE_LOGLEVEL_STATE);
	if (!state)
		return -EINVAL;
	state->data = kzalloc(sizeof(console_loglevel), GFP_KERNEL);
	if (!state->data)
		return -ENOMEM;
	pr_info("%s: allocating space to store console_loglevel\n", __func__);
	return 0;
}

static void fix_console_loglevel(void)
{
	struct klp_state *state, *prev_state;

	state = klp_get_state(&patch, CONSOLE_LOGLEVEL_STATE);
	if (!state)
		return;
	prev_state = klp_get_prev_state(CONSOLE_LOGLEVEL_STATE);
	if (prev_state) {
		pr_info("%s: taking over the console_loglevel change\n", __func__);
		state->data = prev_state->data;
		return;
	}
	pr_info("%s: fixing console_loglevel\n", __func__);
	*(int *)state->data = console_loglevel;
	console_loglevel = CONSOLE_LOGLEVEL_MOTORMOUTH;
}

static void restore_console_loglevel(void)
{
	struct klp_state *state;

	if (klp_get_prev_state(CONSOLE_LOGLEVEL_STATE)) {
		pr_info("%s: passing the console_loglevel change back to the old livepatch\n", __func__);
		return;
	}
	state = klp_get_state(&patch, CONSOLE_LOGLEVEL_STATE);
	if (!state)
		return;
	pr_info("%s: restoring console_loglevel\n", __func__);
	console_loglevel = *(int *)state->data;
}

static void free_loglevel_state(void)
{
	struct klp_state *state;

	if (klp_get_prev_state(CONSOLE_LOGLEVEL_STATE)) {
		pr_info("%s: keeping space to store console_loglevel\n", __func__);
		return;
	}
	state = klp_get_state(&patch, CONSOLE_LOGLEVEL_STATE);
	if (!state)
		return;
	pr_info("%s: freeing space for the stored console_loglevel\n", __func__);
	kfree(state->data);
}

static int pre_patch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
	return allocate_loglevel_state();
}

static void post_patch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
	fix_console_loglevel();
}

static void pre_unpatch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
	restore_console_loglevel();
}

static void post_unpatch_callback(struct klp_object *obj)
{
	callback_info(__func__, obj);
	free_loglevel_state();
}

static struct klp_func no_funcs[] = {
	{ }
};

static struct klp_object objs[] = {
	{
		.name = NULL,	/* vmlinux */
		.funcs = no_funcs,
		.callbacks = {
			.pre_patch = pre_patch_callback,
			.post_patch = post_patch_callback,
			.pre_unpatch = pre_unpatch_callback,
			.post_unpatch = post_unpatch_callback,
		},
	},
	{ }
};

static struct klp_state states[] = {
	{
		.id = CONSOLE_LOGLEVEL_STATE,
		.version = CONSOLE_LOGLEVEL_STATE_VERSION,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.states = states,
	.replace = true,
};

static int test_klp_state2_init(void)
{
	return klp_enable_patch(&patch);
}

static void test_klp_state2_exit(void)
{
}

module_init(test_klp_state2_init);
module_exit(test_klp_state2_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch test: system state modification");
