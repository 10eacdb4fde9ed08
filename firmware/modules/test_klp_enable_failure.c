// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_enable_failure: a patch whose second object refuses in its
 * pre_patch callback, after the first object's function is already on its
 * func stack. klp_enable_patch has to take that function off again, run
 * post_unpatch for the first object only, and fail the module's init with the
 * callback's error, leaving nothing behind.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int pre_patch_ret = -19;
module_param(pre_patch_ret, int, 0644);
MODULE_PARM_DESC(pre_patch_ret, "pre_patch_ret (default=-19)");

static const char *obj_name(struct klp_object *obj)
{
	return obj->mod ? obj->mod->name : "vmlinux";
}

static int pre_patch_ok(struct klp_object *obj)
{
	pr_info("%s: %s\n", __func__, obj_name(obj));
	return 0;
}

static int pre_patch_refuse(struct klp_object *obj)
{
	pr_info("%s: %s -> %d\n", __func__, obj_name(obj), pre_patch_ret);
	return pre_patch_ret;
}

static void post_patch(struct klp_object *obj)
{
	pr_info("%s: %s\n", __func__, obj_name(obj));
}

static void post_unpatch(struct klp_object *obj)
{
	pr_info("%s: %s\n", __func__, obj_name(obj));
}

static int patched_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s: this has been live patched\n", KBUILD_MODNAME);
	return 0;
}

static struct klp_func vmlinux_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = patched_cmdline_proc_show,
	},
	{ }
};

static struct klp_func no_funcs[] = {
	{ }
};

static struct klp_object objs[] = {
	{
		.funcs = vmlinux_funcs,
		.callbacks = {
			.pre_patch = pre_patch_ok,
			.post_patch = post_patch,
			.post_unpatch = post_unpatch,
		},
	}, {
		.name = "test_klp_callbacks_mod",
		.funcs = no_funcs,
		.callbacks = {
			.pre_patch = pre_patch_refuse,
			.post_patch = post_patch,
			.post_unpatch = post_unpatch,
		},
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int test_klp_enable_failure_init(void)
{
	return klp_enable_patch(&patch);
}

static void test_klp_enable_failure_exit(void)
{
}

module_init(test_klp_enable_failure_init);
module_exit(test_klp_enable_failure_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch test: a pre_patch callback that fails after an object is patched");
