// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_syscall: a livepatch of the getpid system call. On this machine
 * the call is sys_getpid (Linux's x86_64 wrapper is __x64_sys_getpid); the
 * replacement answers what the original does.
 *
 * test-livepatch.sh and test-sysfs.sh load it as one more patch among
 * others. Linux's module also counts the processes named by its klp_pids
 * parameter as they pass through the new code, for test-syscall.sh; that
 * script is not ported, and this module leaves that bookkeeping out.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/livepatch.h>

static long lp_sys_getpid(long a, long b, long c)
{
	return current->tgid;
}

static struct klp_func vmlinux_funcs[] = {
	{
		.old_name = "sys_getpid",
		.new_func = lp_sys_getpid,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		/* no name: vmlinux */
		.funcs = vmlinux_funcs,
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
MODULE_DESCRIPTION("Livepatch test: syscall transition");
