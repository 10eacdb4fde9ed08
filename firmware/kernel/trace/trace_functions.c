// SPDX-License-Identifier: GPL-2.0
/*
 * The function tracer, as a native handler: one TRACE_FN record per traced
 * call in its trace array's ring buffer, read by the host as tracefs' `trace`.
 * Also two handlers for experiments and benchmarks: one that redirects every
 * call it sees, one that does nothing.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ftrace.h>
#include <linux/trace.h>
#include <linux/ring_buffer.h>
#include <linux/trace_recursion.h>
#include <asm/segment.h>

/*
 * Linux's global_ops, whose func becomes function_trace_call when the
 * function tracer is current: kernel core data (so never DYNAMIC), and no
 * FTRACE_OPS_FL_RECURSION since 5.11, because function_trace_call takes the
 * recursion lock itself (the flag asks ftrace to wrap the handler in
 * ftrace_ops_assist_func).
 */
struct ftrace_ops function_trace_ops = {
	.func = function_trace_call,
	.flags = FTRACE_OPS_FL_INITIALIZED | FTRACE_OPS_FL_PID,
	.private = &global_trace,
};

/*
 * One TRACE_FN record in tr's ring, and with with_stack a stack record after it. Inlined into
 * each handler with a constant with_stack, so the plain tracer pays nothing for the option.
 */
static __always_inline void trace_function_call(struct trace_array *tr, unsigned long ip,
						unsigned long parent_ip, struct ftrace_regs *fregs,
						bool with_stack)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	struct ftrace_entry *entry;
	unsigned int trace_ctx;
	int bit;

	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (bit < 0)
		return;
	trace_ctx = tracing_gen_ctx_dec(tracing_gen_ctx_flags(regs ? regs->flags : arch_local_save_flags()));
	entry = trace_buffer_lock_reserve(&tr->buffer, TRACE_FN, sizeof(*entry), trace_ctx);
	if (entry) {
		entry->ip = ip;
		entry->parent_ip = parent_ip;
		trace_buffer_unlock_commit(&tr->buffer, &entry->ent);
		/* From the trampoline's frame for the traced function: it first, then its callers. */
		if (with_stack)
			__trace_stack(tr, trace_ctx, (unsigned long)fregs + sizeof(struct pt_regs));
	}
	ftrace_test_recursion_unlock(bit);
}

/* op->private is the trace array whose ring gets the records (the top level's or an instance's). */
notrace void function_trace_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				 struct ftrace_regs *fregs)
{
	trace_function_call(op->private, ip, parent_ip, fregs, false);
}

notrace void function_stack_trace_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				       struct ftrace_regs *fregs)
{
	trace_function_call(op->private, ip, parent_ip, fregs, true);
}

/* Every call it sees goes to op->private instead (ftrace_regs_set_instruction_pointer). */
notrace void ftrace_redirect_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				  struct ftrace_regs *fregs)
{
	fregs->regs.ip = (unsigned long)op->private;
}

notrace void ftrace_empty_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			       struct ftrace_regs *fregs)
{
}
