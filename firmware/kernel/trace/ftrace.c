// SPDX-License-Identifier: GPL-2.0
/*
 * ftrace's records, one per fentry site. ftrace_init asks the machine, which
 * plays kernel/trace/ftrace.c's control plane, to check every site, turn it
 * into a NOP and fill the records; from then on the records here are the one
 * copy of each site's state.
 */
#include <linux/kernel.h>
#include <linux/ftrace.h>
#include <klpemu/hypercall.h>

struct dyn_ftrace ftrace_records[FTRACE_MAX_RECORDS];
unsigned long ftrace_nr_records;
int ftrace_disabled;

notrace void ftrace_init(void)
{
	hypercall(HC_FTRACE_INIT, 0, 0, 0);
}
