// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_convert1: a livepatch that uses symbols it cannot link against,
 * after the kernel's proposed lib/livepatch/test_klp_convert1.c. Each is
 * declared extern and annotated with the object that has it and its position
 * there; the build's klp-convert step makes klp relocations of them.
 *
 * vmlinux: proc_cmdline, a static variable (the /proc/cmdline entry), and
 * get_idle_time, a static function with two definitions (fs/proc/stat.c and
 * fs/proc/uptime.c): sympos 1 names the first in kallsyms order. Written at
 * load; init prints what they reach.
 *
 * test_klp_convert_mod: driver_name and get_driver_name, both static. Written
 * when that module is loaded (now, or later in klp_module_coming), cleared when
 * it goes. Only the replacement of its show function uses them, so they are
 * used only while the module is there.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

/* klp-convert symbols: vmlinux */
extern const struct proc_dir_entry proc_cmdline;
extern unsigned long get_idle_time(int cpu);

/* klp-convert symbols: test_klp_convert_mod */
extern const char driver_name[];
extern const char *get_driver_name(void);

KLP_MODULE_RELOC(vmlinux) vmlinux_relocs[] = {
	KLP_SYMPOS(proc_cmdline, 0),
	KLP_SYMPOS(get_idle_time, 1),
};

KLP_MODULE_RELOC(test_klp_convert_mod) test_klp_convert_mod_relocs[] = {
	KLP_SYMPOS(driver_name, 0),
	KLP_SYMPOS(get_driver_name, 0),
};

static int livepatch_convert_mod_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s: driver_name, 0: %px %s\n", THIS_MODULE->name, driver_name, driver_name);
	seq_printf(m, "%s: get_driver_name(), 0: %px %s\n", THIS_MODULE->name, get_driver_name,
		   get_driver_name());
	return 0;
}

static struct klp_func funcs[] = {
	{
		.old_name = "test_klp_convert_mod_show",
		.new_func = livepatch_convert_mod_show,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		.name = "test_klp_convert_mod",
		.funcs = funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int test_klp_convert1_init(void)
{
	int ret;

	ret = klp_enable_patch(&patch);
	if (ret)
		return ret;

	pr_info("proc_cmdline, 0: %px %s\n", &proc_cmdline, proc_cmdline.name);
	pr_info("get_idle_time, 1: %px\n", get_idle_time);
	return 0;
}

static void test_klp_convert1_exit(void)
{
}

module_init(test_klp_convert1_init);
module_exit(test_klp_convert1_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch test: klp-convert1");
