// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_callbacks_mod: an ordinary module that test_klp_callbacks_demo
 * names as one of its objects. It patches nothing in it; the object is there
 * for its callbacks, which run as this module comes and goes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>

static int test_klp_callbacks_mod_init(void)
{
	pr_info("%s\n", __func__);
	return 0;
}

static void test_klp_callbacks_mod_exit(void)
{
	pr_info("%s\n", __func__);
}

module_init(test_klp_callbacks_mod_init);
module_exit(test_klp_callbacks_mod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Livepatch test: target module");
