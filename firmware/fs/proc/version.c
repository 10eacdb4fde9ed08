// SPDX-License-Identifier: GPL-2.0
/* /proc/version: the banner the kernel printed at boot. */
#include <linux/kernel.h>
#include <linux/proc_fs.h>

extern const char linux_banner[];

int version_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, linux_banner);
	return 0;
}

DEFINE_PROC_ENTRY(proc_version, "/proc/version", 0444, version_proc_show, NULL);
