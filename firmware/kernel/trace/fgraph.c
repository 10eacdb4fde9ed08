// SPDX-License-Identifier: GPL-2.0
/*
 * The return hook of the function graph tracer (kernel/trace/fgraph.c):
 * fgraph_ops' handler pushes the traced call on the task's ret_stack and puts
 * return_to_handler (arch/x86/kernel/ftrace_64.S) in its return slot; when
 * the function returns there, ftrace_return_to_handler pops the entry and
 * gives back the real return address. All notrace: it runs inside the hook.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ftrace.h>
#include <linux/fgraph.h>
#include <linux/trace_recursion.h>

/*
 * function_graph's ftrace handler: the trace array's ops (function_trace_ops
 * at the top level, sharing set_ftrace_filter) calls it while function_graph
 * is the current tracer. The return slot is at regs->sp, which both
 * trampolines fill, so it needs no SAVE_REGS.
 */
notrace void ftrace_graph_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			       struct ftrace_regs *fregs)
{
	prepare_ftrace_return(ip, (unsigned long *)fregs->regs.sp, 0);
}

notrace void prepare_ftrace_return(unsigned long ip, unsigned long *parent, unsigned long frame_pointer)
{
	struct task_struct *t = current;
	struct ftrace_ret_stack *rs;
	int bit, index;

	if (unlikely(READ_ONCE(t->tracing_graph_pause)))
		return;
	bit = ftrace_test_recursion_trylock(ip, *parent);
	if (bit < 0)
		return;
	index = t->curr_ret_stack;
	if (unlikely(index >= FTRACE_RETFUNC_DEPTH)) {
		t->trace_overrun++;
		goto out;
	}
	rs = &t->ret_stack[index];
	rs->ret = *parent;
	rs->func = ip;
	rs->retp = (unsigned long)parent;
	rs->calltime = local_clock();
	/* Pushed before the entry handler runs: an interrupt's traced calls go above it. */
	barrier();
	WRITE_ONCE(t->curr_ret_stack, index + 1);
	if (trace_graph_entry(ip, index))
		*parent = (unsigned long)return_to_handler;
	else
		WRITE_ONCE(t->curr_ret_stack, index);
out:
	ftrace_test_recursion_unlock(bit);
}

/* Called by return_to_handler with the function's return value; returns where to go back to. */
notrace unsigned long ftrace_return_to_handler(unsigned long retval)
{
	struct task_struct *t = current;
	int index = t->curr_ret_stack - 1;
	struct ftrace_ret_stack *rs;
	unsigned long ret;

	if (unlikely(index < 0))
		panic("function_graph: return_to_handler with an empty ret_stack (%s)", t->comm);
	rs = &t->ret_stack[index];
	ret = rs->ret;
	trace_graph_return(rs, index, retval, local_clock());
	barrier();
	WRITE_ONCE(t->curr_ret_stack, index);
	return ret;
}

/*
 * For an unwinder that found ret at retp on task's stack: the real return
 * address if ret is return_to_handler, else ret. *idx is unused (Linux keeps
 * a search position there); the entry is found by its stack slot.
 */
notrace unsigned long ftrace_graph_ret_addr(struct task_struct *task, int *idx, unsigned long ret,
					    unsigned long *retp)
{
	int i;

	if (ret != (unsigned long)return_to_handler)
		return ret;
	for (i = READ_ONCE(task->curr_ret_stack) - 1; i >= 0; i--)
		if (task->ret_stack[i].retp == (unsigned long)retp)
			return task->ret_stack[i].ret;
	return ret;
}
