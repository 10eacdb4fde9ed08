// SPDX-License-Identifier: GPL-2.0
/* /proc/cmdline: the command line the kernel booted with. */
#include <linux/kernel.h>
#include <linux/proc_fs.h>

int cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, boot_command_line);
	seq_putc(m, '\n');
	return 0;
}

DEFINE_PROC_ENTRY(proc_cmdline, "/proc/cmdline", 0444, cmdline_proc_show, NULL);
