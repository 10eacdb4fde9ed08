// SPDX-License-Identifier: GPL-2.0
/*
 * An ops whose handler is Python: the call slot (or the list function) calls
 * ftrace_host_func, which hands the call to the machine in one instruction.
 * The Python callback sees (op, ip, parent_ip, fregs) and may change fregs in
 * guest memory (regs.ip to redirect) before the trampoline restores from it.
 */
#include <linux/kernel.h>
#include <linux/ftrace.h>
#include <linux/trace.h>
#include <klpemu/hypercall.h>

notrace void ftrace_host_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			      struct ftrace_regs *fregs)
{
	hypercall4(HC_FTRACE_CALLBACK, (long)op, ip, parent_ip, (long)fregs);
}
