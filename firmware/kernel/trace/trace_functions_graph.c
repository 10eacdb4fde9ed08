// SPDX-License-Identifier: GPL-2.0
/*
 * The function graph tracer's records (kernel/trace/trace_functions_graph.c):
 * which hooked calls it traces (set_graph_function, set_graph_notrace,
 * max_graph_depth, funcgraph-irqs) and their TRACE_GRAPH_ENT and
 * TRACE_GRAPH_RET records in the trace array's ring. The host formats them.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/trace.h>
#include <linux/fgraph.h>
#include <linux/ring_buffer.h>
#include <linux/trace_recursion.h>

struct fgraph_state fgraph_state;

notrace int trace_graph_entry(unsigned long func, int depth)
{
	struct fgraph_state *g = &fgraph_state;
	struct trace_array *tr = READ_ONCE(g->tr);
	struct task_struct *t = current;
	struct ftrace_graph_ent_entry *entry;

	if (unlikely(!tr))
		return 0;
	if (t->fgraph_flags & TRACE_GRAPH_NOTRACE)
		return 0;
	if (unlikely(g->notrace_hash) && ftrace_lookup_ip(g->notrace_hash, func)) {
		/* Hook its return, which clears the flag; trace nothing until then. */
		t->fgraph_flags |= TRACE_GRAPH_NOTRACE;
		t->fgraph_depth = depth;
		return 1;
	}
	if (g->graph_hash && !(t->fgraph_flags & TRACE_GRAPH_FL)) {
		if (!ftrace_lookup_ip(g->graph_hash, func))
			return 0;
		t->fgraph_flags |= TRACE_GRAPH_FL;
		t->fgraph_depth = depth;
	}
	if ((g->max_depth && depth >= g->max_depth) ||
	    (g->ignore_irqs && (preempt_count() & HARDIRQ_MASK)))
		goto ignore;

	/* One preempt level is the recursion lock's. */
	entry = trace_buffer_lock_reserve(&tr->buffer, TRACE_GRAPH_ENT, sizeof(*entry),
					  tracing_gen_ctx_dec(tracing_gen_ctx()));
	if (!entry)
		goto ignore;
	entry->graph_ent.func = func;
	entry->graph_ent.depth = depth;
	trace_buffer_unlock_commit(&tr->buffer, &entry->ent);
	return 1;
ignore:
	if ((t->fgraph_flags & TRACE_GRAPH_FL) && t->fgraph_depth == depth)
		t->fgraph_flags &= ~TRACE_GRAPH_FL;
	return 0;
}

notrace void trace_graph_return(struct ftrace_ret_stack *rs, int depth, unsigned long retval, u64 rettime)
{
	struct trace_array *tr = READ_ONCE(fgraph_state.tr);
	struct task_struct *t = current;
	struct ftrace_graph_ret_entry *entry;

	if (t->fgraph_flags & TRACE_GRAPH_NOTRACE) {
		t->fgraph_flags &= ~TRACE_GRAPH_NOTRACE;
		return;
	}
	if ((t->fgraph_flags & TRACE_GRAPH_FL) && t->fgraph_depth == depth)
		t->fgraph_flags &= ~TRACE_GRAPH_FL;
	if (unlikely(!tr))
		return;
	entry = trace_buffer_lock_reserve(&tr->buffer, TRACE_GRAPH_RET, sizeof(*entry), tracing_gen_ctx());
	if (!entry)
		return;
	entry->ret.func = rs->func;
	entry->ret.retval = retval;
	entry->ret.depth = depth;
	entry->ret.overrun = t->trace_overrun;
	entry->ret.calltime = rs->calltime;
	entry->ret.rettime = rettime;
	trace_buffer_unlock_commit(&tr->buffer, &entry->ent);
}
