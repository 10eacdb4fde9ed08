// SPDX-License-Identifier: GPL-2.0
/* /proc/uptime: seconds since boot, and seconds all CPUs spent idle. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/proc_fs.h>

/* Same name as the helper in stat.c: two local symbols, told apart by sympos. */
static noinline unsigned long get_idle_time(int cpu)
{
	return pcpu_hot[cpu].idle->stime_ticks;
}

int uptime_proc_show(struct seq_file *m, void *v)
{
	unsigned long idle = 0, up = jiffies;
	int cpu;

	for (cpu = 0; cpu < nr_cpus_online; cpu++)
		idle += get_idle_time(cpu);
	seq_printf(m, "%lu.%02lu %lu.%02lu\n", up / HZ, (up % HZ) * 100 / HZ, idle / HZ,
		   (idle % HZ) * 100 / HZ);
	return 0;
}

DEFINE_PROC_ENTRY(proc_uptime, "/proc/uptime", 0444, uptime_proc_show, NULL);
