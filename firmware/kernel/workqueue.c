// SPDX-License-Identifier: GPL-2.0
/* A kworker running the periodic vmstat update that /proc/meminfo reports. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/mm.h>

#define VMSTAT_INTERVAL_MS 100

struct vm_stat vm_stat;

static noinline void refresh_cpu_vm_stats(void)
{
	/* A little page-cache churn so the numbers move the way a live system's do. */
	vm_stat.nr_file_pages = 4096 + (jiffies % 64);
	vm_stat.nr_active = 2048 + (jiffies % 32);
	vm_stat.nr_inactive = 1024 + (jiffies % 16);
	vm_stat.updates++;
}

static noinline void vmstat_update(void)
{
	refresh_cpu_vm_stats();
}

static noinline void process_one_work(void (*func)(void))
{
	func();
}

int worker_thread(void *unused)
{
	for (;;) {
		process_one_work(vmstat_update);
		msleep_interruptible(VMSTAT_INTERVAL_MS);
	}
	return 0;
}
