// SPDX-License-Identifier: GPL-2.0
/* /proc/sysrq-trigger: 'c' crashes the kernel on purpose, as Linux's does. */
#include <linux/kernel.h>
#include <linux/proc_fs.h>
#include <linux/errno.h>

static noinline void sysrq_handle_crash(void)
{
	pr_emerg("sysrq: Trigger a crash\n");
	*(volatile char *)0 = 1;
}

static ssize_t write_sysrq_trigger(const char *buf, size_t count)
{
	if (count && buf[0] == 'c')
		sysrq_handle_crash();
	else if (count)
		pr_info("sysrq: HELP : crash(c)\n");
	return count;
}

DEFINE_PROC_ENTRY(proc_sysrq_trigger, "/proc/sysrq-trigger", 0200, NULL, write_sysrq_trigger);
