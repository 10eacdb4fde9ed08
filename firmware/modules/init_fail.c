// SPDX-License-Identifier: GPL-2.0
/*
 * init_fail: a module whose init fails with -EINVAL, so insmod fails with
 * "Invalid parameters" and the loader must leave nothing behind (memory,
 * ftrace records, sysfs, the module list).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/module.h>

static noinline int init_fail_check(void)
{
	pr_info("refusing to load\n");
	return -EINVAL;
}

static int __init init_fail_init(void)
{
	return init_fail_check();
}

static void __exit init_fail_exit(void)
{
}

module_init(init_fail_init);
module_exit(init_fail_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("a module whose init returns -EINVAL");
