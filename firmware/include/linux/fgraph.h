/*
 * The function graph tracer (kernel/trace/fgraph.c, trace_functions_graph.c):
 * its ftrace handler hooks a traced function's entry and, by replacing the return
 * address on the stack with return_to_handler, its return. Unwinders see
 * through return_to_handler with ftrace_graph_ret_addr.
 */
#ifndef _LINUX_FGRAPH_H
#define _LINUX_FGRAPH_H

#include <linux/types.h>
#include <linux/ftrace.h>
#include <linux/sched.h>
#include <linux/ring_buffer.h>

/* TRACE_GRAPH_ENT: a traced function was entered. */
struct ftrace_graph_ent {
	unsigned long func;
	int depth;		/* calls of this task hooked below it */
};

struct ftrace_graph_ent_entry {
	struct trace_entry ent;
	struct ftrace_graph_ent graph_ent;
};

/* TRACE_GRAPH_RET: it returned. */
struct ftrace_graph_ret {
	unsigned long func;
	unsigned long retval;	/* rax at the return */
	int depth;
	unsigned int overrun;	/* the task's trace_overrun then */
	u64 calltime;
	u64 rettime;
};

struct ftrace_graph_ret_entry {
	struct trace_entry ent;
	struct ftrace_graph_ret ret;
};

/* task->fgraph_flags */
#define TRACE_GRAPH_FL 1	/* inside a set_graph_function function: trace what it calls */
#define TRACE_GRAPH_NOTRACE 2	/* inside a set_graph_notrace function: trace nothing it calls */

/* What the host sets when function_graph becomes a trace array's tracer. */
struct fgraph_state {
	struct trace_array *tr;	/* NULL: function_graph is no trace array's tracer */
	struct ftrace_hash *graph_hash;	/* set_graph_function; NULL: every function */
	struct ftrace_hash *notrace_hash;	/* set_graph_notrace */
	int max_depth;		/* max_graph_depth; 0: no limit */
	int ignore_irqs;	/* funcgraph-irqs off: nothing in hard interrupt context */
};

extern struct fgraph_state fgraph_state;
extern char return_to_handler[];

void ftrace_graph_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
		       struct ftrace_regs *fregs);
void prepare_ftrace_return(unsigned long ip, unsigned long *parent, unsigned long frame_pointer);
unsigned long ftrace_return_to_handler(unsigned long retval);
unsigned long ftrace_graph_ret_addr(struct task_struct *task, int *idx, unsigned long ret,
				    unsigned long *retp);

/* kernel/trace/trace_functions_graph.c: nonzero to hook the return. */
int trace_graph_entry(unsigned long func, int depth);
void trace_graph_return(struct ftrace_ret_stack *rs, int depth, unsigned long retval, u64 rettime);

#endif
