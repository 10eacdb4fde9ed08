/*
 * Recursion protection for ftrace handlers, as include/linux/trace_recursion.h
 * has it: a per-task word of bits, one per context (NMI, hard irq, soft irq,
 * normal) plus a TRANSITION bit that lets one extra level through, for an
 * interrupt that traces before preempt_count says it is an interrupt. A
 * handler that calls a traced function therefore runs once more, nested, and
 * the level after that is refused.
 *
 * Two ranges of bits: the function handlers' (ftrace_test_recursion_trylock,
 * used by the function tracer and klp_ftrace_handler) and the list
 * function's / assist's (TRACE_LIST_START), so a handler called from the list
 * function still gets its own level.
 */
#ifndef _LINUX_TRACE_RECURSION_H
#define _LINUX_TRACE_RECURSION_H

#include <linux/compiler.h>
#include <linux/sched.h>

/* preempt_count's fields (include/linux/preempt.h); this kernel has hard irqs only. */
#define SOFTIRQ_OFFSET 0x100
#define SOFTIRQ_MASK 0xff00
#define HARDIRQ_MASK 0xf0000
#define NMI_MASK 0xf00000

enum {
	/* Function handler bits: TRACE_FTRACE_START + a TRACE_CTX_* */
	TRACE_FTRACE_BIT,
	TRACE_FTRACE_NMI_BIT,
	TRACE_FTRACE_IRQ_BIT,
	TRACE_FTRACE_SIRQ_BIT,
	TRACE_FTRACE_TRANSITION_BIT,

	/* List function and assist bits: TRACE_LIST_START + a TRACE_CTX_* */
	TRACE_INTERNAL_BIT,
	TRACE_INTERNAL_NMI_BIT,
	TRACE_INTERNAL_IRQ_BIT,
	TRACE_INTERNAL_SIRQ_BIT,
	TRACE_INTERNAL_TRANSITION_BIT,
};

#define TRACE_FTRACE_START TRACE_FTRACE_BIT
#define TRACE_LIST_START TRACE_INTERNAL_BIT

enum {
	TRACE_CTX_NMI,
	TRACE_CTX_IRQ,
	TRACE_CTX_SOFTIRQ,
	TRACE_CTX_NORMAL,
	TRACE_CTX_TRANSITION,
};

/* Times the trylock refused (do_ftrace_record_recursion), in kernel/trace/ftrace_ops.c. */
extern unsigned long ftrace_recursion_missed;

/* 0 normal, 1 softirq, 2 hardirq, 3 NMI. */
static __always_inline unsigned char interrupt_context_level(void)
{
	unsigned long pc = (unsigned int)preempt_count();
	unsigned char level = 0;

	level += !!(pc & NMI_MASK);
	level += !!(pc & (NMI_MASK | HARDIRQ_MASK));
	level += !!(pc & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET));
	return level;
}

static __always_inline int trace_get_context_bit(void)
{
	return TRACE_CTX_NORMAL - interrupt_context_level();
}

static __always_inline int trace_test_and_set_recursion(unsigned long ip, unsigned long pip, int start)
{
	struct task_struct *curr = current;
	unsigned long val = READ_ONCE(curr->trace_recursion);
	int bit = trace_get_context_bit() + start;

	if (unlikely(val & (1UL << bit))) {
		/* Already in this context: one more level through the TRANSITION bit, then no. */
		bit = TRACE_CTX_TRANSITION + start;
		if (val & (1UL << bit)) {
			WRITE_ONCE(ftrace_recursion_missed, ftrace_recursion_missed + 1);
			return -1;
		}
	}
	WRITE_ONCE(curr->trace_recursion, val | (1UL << bit));
	barrier();
	preempt_disable();
	return bit;
}

static __always_inline void trace_clear_recursion(int bit)
{
	struct task_struct *curr = current;

	preempt_enable_no_resched();
	barrier();
	WRITE_ONCE(curr->trace_recursion, curr->trace_recursion & ~(1UL << bit));
}

/* For a handler that protects itself (an ops without FTRACE_OPS_FL_RECURSION): < 0 = recursion, return. */
static __always_inline int ftrace_test_recursion_trylock(unsigned long ip, unsigned long parent_ip)
{
	return trace_test_and_set_recursion(ip, parent_ip, TRACE_FTRACE_START);
}

static __always_inline void ftrace_test_recursion_unlock(int bit)
{
	trace_clear_recursion(bit);
}

#endif
