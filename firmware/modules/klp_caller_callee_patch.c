// SPDX-License-Identifier: GPL-2.0
/*
 * klp_caller_callee_patch: version 2 of klp_caller_callee's cc_caller and
 * cc_callee, in one patch. A task that runs one old and one new of the two
 * in one cc_caller run mixes versions, which klp_caller_callee counts.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>

#define CC_VERSION 2

void cc_hold(int id);
void cc_report(int caller_version, int first, int second);
int cc_callee(void);

/* The target module exports nothing: reach its functions through klp relocations. */
KLP_MODULE_RELOC(klp_caller_callee) klp_caller_callee_relocs[] = {
	KLP_SYMPOS(cc_hold, 0),
	KLP_SYMPOS(cc_report, 0),
	KLP_SYMPOS(cc_callee, 0),
};

static int livepatch_cc_callee(void)
{
	return CC_VERSION;
}

static int livepatch_cc_caller(int id)
{
	int first = cc_callee();

	cc_hold(id);
	cc_report(CC_VERSION, first, cc_callee());
	return first;
}

static struct klp_func funcs[] = {
	{
		.old_name = "cc_caller",
		.new_func = livepatch_cc_caller,
	},
	{
		.old_name = "cc_callee",
		.new_func = livepatch_cc_callee,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		.name = "klp_caller_callee",
		.funcs = funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_exit(void)
{
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch of klp_caller_callee: caller and callee to version 2 together");
