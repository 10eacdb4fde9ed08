// SPDX-License-Identifier: GPL-2.0
/*
 * hello: the first sample module. Its init greets through printk; its
 * parameters are under /sys/module/hello/parameters; hello_greet is an
 * ordinary traceable function (an fentry site, so an ftrace record while the
 * module is loaded) that another module, hello_friend, calls.
 *
 *   insmod hello count=2 whom=klpemu
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/module.h>

static int count = 1;
module_param(count, int, 0644);
MODULE_PARM_DESC(count, "how many greetings init prints (default 1)");

static char *whom = "world";
module_param(whom, charp, 0644);
MODULE_PARM_DESC(whom, "who init greets (default \"world\")");

static unsigned long greetings;
module_param(greetings, ulong, 0444);
MODULE_PARM_DESC(greetings, "how many times hello_greet ran (read-only)");

noinline int hello_greet(const char *who)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "hello, %s", who);

	greetings++;
	pr_info("%s (greeting %lu)\n", line, greetings);
	return len;
}
EXPORT_SYMBOL(hello_greet);

static int __init hello_init(void)
{
	int i;

	for (i = 0; i < count; i++)
		hello_greet(whom);
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("goodbye, %s (%lu greetings)\n", whom, greetings);
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klpemu's first sample module: init, exit, parameters, a traceable function");
