// SPDX-License-Identifier: GPL-2.0
/* /proc/stat: per-CPU times in USER_HZ ticks, context switches. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/proc_fs.h>

#define USER_HZ 100

static noinline unsigned long get_idle_time(int cpu)
{
	return pcpu_hot[cpu].idle->stime_ticks * USER_HZ / HZ;
}

int show_stat(struct seq_file *m, void *v)
{
	unsigned long ctxt = 0;
	int cpu;

	for (cpu = 0; cpu < nr_cpus_online; cpu++) {
		seq_printf(m, "cpu%d 0 0 0 %lu 0 0 0 0 0 0\n", cpu, get_idle_time(cpu));
		ctxt += pcpu_hot[cpu].nr_switches;
	}
	seq_printf(m, "ctxt %lu\n", ctxt);
	return 0;
}

DEFINE_PROC_ENTRY(proc_stat, "/proc/stat", 0444, show_stat, NULL);
