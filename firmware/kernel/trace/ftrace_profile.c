// SPDX-License-Identifier: GPL-2.0
/*
 * The function profiler (function_profile_enabled, trace_stat/functionN), as
 * kernel/trace/ftrace.c's function_profile_call: an ftrace ops that counts
 * each traced function's calls in a per-CPU hash of records. The machine
 * allocates each CPU's table when profiling starts and reads it for
 * trace_stat.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ftrace.h>

struct ftrace_profile {
	unsigned long ip;
	unsigned long counter;
	u64 time;
	u64 time_squared;
};

/* One CPU's records: open addressing on the ip, size a power of two. */
struct ftrace_profile_stat {
	unsigned long size;
	unsigned long nr_records;
	struct ftrace_profile records[];
};

struct ftrace_profile_stat *ftrace_profile_stats[NR_CPUS];
int ftrace_profile_enabled;

static notrace struct ftrace_profile *ftrace_find_profiled_func(struct ftrace_profile_stat *stat, unsigned long ip)
{
	unsigned long mask = stat->size - 1;
	unsigned long i = (ip >> 4) & mask;
	unsigned long n;

	for (n = 0; n < stat->size; n++, i = (i + 1) & mask) {
		struct ftrace_profile *rec = &stat->records[i];

		if (rec->ip == ip)
			return rec;
		if (!rec->ip) {
			/* ftrace_profile_alloc: the first free slot on the probe path */
			rec->ip = ip;
			stat->nr_records++;
			return rec;
		}
	}
	return NULL;
}

notrace void function_profile_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				   struct ftrace_regs *fregs)
{
	struct ftrace_profile_stat *stat;
	struct ftrace_profile *rec;
	unsigned long flags;

	if (!READ_ONCE(ftrace_profile_enabled))
		return;
	flags = local_irq_save();
	stat = READ_ONCE(ftrace_profile_stats[smp_processor_id()]);
	if (stat) {
		rec = ftrace_find_profiled_func(stat, ip);
		if (rec)
			rec->counter++;
	}
	local_irq_restore(flags);
}

struct ftrace_ops ftrace_profile_ops = {
	.func = function_profile_call,
	.flags = FTRACE_OPS_FL_INITIALIZED,
};
