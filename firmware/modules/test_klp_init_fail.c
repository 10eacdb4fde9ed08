// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_init_fail: a livepatch module whose init enables its patch and
 * then fails anyway. The patch points into this module's memory, which a
 * failed load frees, so the load has to take the patch down with it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int init_ret = -22;
module_param(init_ret, int, 0644);
MODULE_PARM_DESC(init_ret, "init_ret: what init returns after enabling the patch (default=-22)");

static int patched_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s: this has been live patched\n", KBUILD_MODNAME);
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = patched_cmdline_proc_show,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		.funcs = funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int test_klp_init_fail_init(void)
{
	int ret = klp_enable_patch(&patch);

	if (ret)
		return ret;
	pr_info("patch enabled, failing init with %d\n", init_ret);
	return init_ret;
}

static void test_klp_init_fail_exit(void)
{
}

module_init(test_klp_init_fail_init);
module_exit(test_klp_init_fail_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch test: init fails after klp_enable_patch succeeded");
