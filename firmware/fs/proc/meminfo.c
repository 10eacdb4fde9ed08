// SPDX-License-Identifier: GPL-2.0
/* /proc/meminfo in Linux's layout: name, value right-aligned to 8, " kB". */
#include <linux/kernel.h>
#include <linux/proc_fs.h>
#include <linux/mm.h>

static void show_val_kb(struct seq_file *m, const char *s, unsigned long num)
{
	seq_printf(m, "%s%8lu kB\n", s, num << (PAGE_SHIFT - 10));
}

int meminfo_proc_show(struct seq_file *m, void *v)
{
	unsigned long used = kernel_image_pages + vm_stat.nr_file_pages;
	unsigned long free = totalram_pages > used ? totalram_pages - used : 0;

	show_val_kb(m, "MemTotal:       ", totalram_pages);
	show_val_kb(m, "MemFree:        ", free);
	show_val_kb(m, "MemAvailable:   ", free + vm_stat.nr_file_pages);
	show_val_kb(m, "Buffers:        ", 0);
	show_val_kb(m, "Cached:         ", vm_stat.nr_file_pages);
	show_val_kb(m, "SwapCached:     ", 0);
	show_val_kb(m, "Active:         ", vm_stat.nr_active);
	show_val_kb(m, "Inactive:       ", vm_stat.nr_inactive);
	show_val_kb(m, "SwapTotal:      ", 0);
	show_val_kb(m, "SwapFree:       ", 0);
	return 0;
}

DEFINE_PROC_ENTRY(proc_meminfo, "/proc/meminfo", 0444, meminfo_proc_show, NULL);
