// SPDX-License-Identifier: GPL-2.0
/*
 * The function tracer, as a native handler: one entry per traced call in the
 * ring buffer of the CPU that made it, read by the host as tracefs' `trace`.
 * Also two handlers for experiments and benchmarks: one that redirects every
 * call it sees, one that does nothing.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ftrace.h>
#include <linux/trace.h>
#include <linux/trace_recursion.h>
#include <asm/segment.h>

/* tracefs tracing_on: the writer records only while it is nonzero. */
int tracing_on = 1;
struct trace_array_cpu trace_buffers[NR_CPUS];

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
};

/* tracing_gen_ctx_dec(): the context columns of the trace, one preempt level (our lock's) less. */
static __always_inline void trace_ctx(struct trace_entry *e, struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	unsigned long eflags = regs ? regs->flags : arch_local_save_flags();
	unsigned int pc = preempt_count();
	u8 flags = 0;

	if (!(eflags & X86_EFLAGS_IF))
		flags |= TRACE_FLAG_IRQS_OFF;
	if (pc & NMI_MASK)
		flags |= TRACE_FLAG_NMI;
	if (pc & HARDIRQ_MASK)
		flags |= TRACE_FLAG_HARDIRQ;
	if (pc & SOFTIRQ_OFFSET)
		flags |= TRACE_FLAG_SOFTIRQ;
	if (test_tsk_thread_flag(current, TIF_NEED_RESCHED))
		flags |= TRACE_FLAG_NEED_RESCHED;
	e->flags = flags;
	pc &= 0xff;
	e->preempt_count = pc ? pc - 1 : 0;
}

/* The next slot of this CPU's ring: one instruction, so an interrupt's entry gets its own. */
static __always_inline unsigned long ring_reserve(struct trace_array_cpu *data)
{
	unsigned long n = 1;

	__asm__ __volatile__("xaddq %0, %1" : "+r"(n), "+m"(data->entries) : : "memory");
	return n;
}

notrace void function_trace_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				 struct ftrace_regs *fregs)
{
	struct trace_array_cpu *data;
	struct trace_entry *e;
	unsigned long n;
	int bit, cpu;

	if (unlikely(!READ_ONCE(tracing_on)))
		return;
	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (bit < 0)
		return;
	cpu = smp_processor_id();
	data = &trace_buffers[cpu];
	if (!READ_ONCE(data->disabled)) {
		n = ring_reserve(data);
		if (n >= TRACE_RING_ENTRIES)
			data->overrun++;
		e = &data->ring[n % TRACE_RING_ENTRIES];
		e->ts = local_clock();
		e->ip = ip;
		e->parent_ip = parent_ip;
		e->pid = current->pid;
		e->cpu = cpu;
		trace_ctx(e, fregs);
	}
	ftrace_test_recursion_unlock(bit);
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
