// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_convert_mod: the target of test_klp_convert1. Its string and the
 * function that returns it are static, so no other module can link against
 * them; the livepatch reaches them through klp relocations, written while this
 * module is loaded. /proc/test_klp_convert_mod shows test_klp_convert_mod_show,
 * which the livepatch replaces.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

static struct proc_dir_entry *pde;

static const char driver_name[] = KBUILD_MODNAME;

/* Nothing here calls it: only the livepatch does. */
static noinline __used const char *get_driver_name(void)
{
	return driver_name;
}

static noinline int test_klp_convert_mod_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s: %s\n", THIS_MODULE->name, "original output");
	return 0;
}

static int test_klp_convert_mod_init(void)
{
	pr_info("%s\n", __func__);
	pde = proc_create_single("test_klp_convert_mod", 0, NULL, test_klp_convert_mod_show);
	if (!pde)
		return -ENOMEM;
	return 0;
}

static void test_klp_convert_mod_exit(void)
{
	pr_info("%s\n", __func__);
	proc_remove(pde);
}

module_init(test_klp_convert_mod_init);
module_exit(test_klp_convert_mod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Livepatch test: klp-convert target module");
