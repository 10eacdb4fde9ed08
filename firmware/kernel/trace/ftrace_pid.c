// SPDX-License-Identifier: GPL-2.0
/*
 * set_ftrace_pid and set_ftrace_notrace_pid: while either lists a task, an
 * ops with FTRACE_OPS_FL_PID calls ftrace_pid_func, which lets the call
 * through to the ops' saved_func only for the tasks the lists allow (the
 * notrace list wins), as kernel/trace/ftrace.c's ftrace_pid_func does. Linux
 * caches the verdict per CPU at each context switch; this kernel looks the
 * current task up, so the scheduler pays nothing while no list is set.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ftrace.h>
#include <linux/trace.h>

/* A sorted array of pids, written by the machine. */
struct trace_pid_list {
	unsigned long count;
	int pids[];
};

struct trace_pid_list *ftrace_pids;
struct trace_pid_list *ftrace_notrace_pids;

static notrace bool trace_find_filtered_pid(struct trace_pid_list *list, int pid)
{
	unsigned long lo = 0, hi = list->count;

	while (lo < hi) {
		unsigned long mid = lo + (hi - lo) / 2;

		if (list->pids[mid] == pid)
			return true;
		if (list->pids[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

notrace void ftrace_pid_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			     struct ftrace_regs *fregs)
{
	struct trace_pid_list *pids = READ_ONCE(ftrace_pids);
	struct trace_pid_list *notrace_pids = READ_ONCE(ftrace_notrace_pids);
	int pid = current->pid;

	if (notrace_pids && trace_find_filtered_pid(notrace_pids, pid))
		return;
	if (pids && !trace_find_filtered_pid(pids, pid))
		return;
	op->saved_func(ip, parent_ip, op, fregs);
}
