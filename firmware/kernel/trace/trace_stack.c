// SPDX-License-Identifier: GPL-2.0
/*
 * The stack tracer (kernel/trace/trace_stack.c): an ftrace ops on every
 * function (or those of stack_trace_filter) that measures how deep the task's
 * stack is at each call and, at a new maximum, records the call chain and
 * where on the stack each return address lies. The machine registers the ops
 * when /proc/sys/kernel/stack_tracer_enabled says 1 and formats stack_trace.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ftrace.h>
#include <linux/spinlock.h>

#define STACK_TRACE_ENTRIES 64

unsigned long stack_dump_trace[STACK_TRACE_ENTRIES];
unsigned int stack_trace_index[STACK_TRACE_ENTRIES];
unsigned int stack_trace_nr_entries;
unsigned long stack_trace_max_size;
int disable_stack_tracer[NR_CPUS];
static raw_spinlock_t stack_trace_max_lock;
/* The stack the tracer itself uses below the traced function: learnt at the first maximum. */
static int tracer_frame;

/* stack_trace_save with frame pointers: the return addresses from here up the task's stack. */
static notrace unsigned int stack_trace_save(unsigned long *store, unsigned int size, unsigned long *top)
{
	unsigned long *fp = __builtin_frame_address(0);
	unsigned int n = 0;

	while (n < size && fp + 2 <= top && fp[1]) {
		store[n++] = fp[1];
		if ((unsigned long *)fp[0] <= fp)
			break;
		fp = (unsigned long *)fp[0];
	}
	return n;
}

static notrace void check_stack(unsigned long ip, unsigned long *stack)
{
	unsigned long this_size, flags;
	unsigned long *p, *top, *start;
	unsigned long *base = current->stack;
	int frame_size = READ_ONCE(tracer_frame);
	unsigned int i, x, nr;

	this_size = ((unsigned long)stack) & (THREAD_SIZE - 1);
	this_size = THREAD_SIZE - this_size;
	this_size -= frame_size;
	if (this_size <= READ_ONCE(stack_trace_max_size))
		return;
	/* Interrupt stacks are not measured. */
	if ((unsigned long *)stack < base || (unsigned long *)stack >= base + THREAD_SIZE / sizeof(long))
		return;

	flags = raw_spin_lock_irqsave(&stack_trace_max_lock);
	if (!frame_size)
		this_size -= tracer_frame;
	if (this_size <= stack_trace_max_size)
		goto out;
	stack_trace_max_size = this_size;

	top = (unsigned long *)(((unsigned long)stack & ~(THREAD_SIZE - 1)) + THREAD_SIZE);
	nr = stack_trace_save(stack_dump_trace, STACK_TRACE_ENTRIES, top);
	/* Skip the tracer's own frames: the chain starts at the traced function. */
	for (i = 0; i < nr; i++)
		if (stack_dump_trace[i] == ip)
			break;
	if (i == nr)
		i = 0;

	/* Where each return address lies on the stack, searched upwards in order. */
	x = 0;
	start = stack;
	while (i < nr) {
		int found = 0;

		stack_trace_index[x] = this_size;
		for (p = start; p < top && i < nr; p++) {
			if (*p == stack_dump_trace[i]) {
				stack_dump_trace[x] = stack_dump_trace[i++];
				this_size = stack_trace_index[x++] = (top - p) * sizeof(unsigned long);
				found = 1;
				start = p + 1;
				if (!tracer_frame) {
					tracer_frame = (p - stack) * sizeof(unsigned long);
					stack_trace_max_size -= tracer_frame;
				}
			}
		}
		if (!found)
			i++;
	}
	stack_trace_nr_entries = x;
out:
	raw_spin_unlock_irqrestore(&stack_trace_max_lock, flags);
}

notrace void stack_trace_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			      struct ftrace_regs *fregs)
{
	unsigned long stack;
	int cpu;

	preempt_disable();
	cpu = smp_processor_id();
	/* Once per CPU at a time: the tracer's own calls are not measured. */
	if (++disable_stack_tracer[cpu] == 1)
		check_stack(ip + MCOUNT_INSN_SIZE, &stack);
	disable_stack_tracer[cpu]--;
	preempt_enable_no_resched();
}

struct ftrace_ops stack_trace_ops = {
	.func = stack_trace_call,
	.flags = FTRACE_OPS_FL_INITIALIZED,
};
