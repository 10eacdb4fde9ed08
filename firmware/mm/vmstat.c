// SPDX-License-Identifier: GPL-2.0
/* The periodic vmstat update that /proc/meminfo reports: a delayed work item that queues itself again. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/mm.h>
#include <linux/workqueue.h>

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

static void vmstat_update(struct work_struct *work);
static DECLARE_DELAYED_WORK(vmstat_work, vmstat_update);

static void vmstat_update(struct work_struct *work)
{
	refresh_cpu_vm_stats();
	schedule_delayed_work(&vmstat_work, msecs_to_jiffies(VMSTAT_INTERVAL_MS));
}

void init_mm_internals(void)
{
	schedule_delayed_work(&vmstat_work, 0);
}

/* What modules may link against, as Linux exports vm_node_stat. */
EXPORT_SYMBOL(vm_stat);
