// SPDX-License-Identifier: GPL-2.0
/*
 * The livepatch data plane: klp_ftrace_handler, called from the ftrace
 * trampoline at every call of a patched function, picks the function this
 * task must run and redirects the call there by writing the saved ip.
 */
#define pr_fmt(fmt) "livepatch: " fmt

#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/livepatch.h>
#include <linux/trace_recursion.h>

notrace void klp_ftrace_handler(unsigned long ip, unsigned long parent_ip,
				struct ftrace_ops *fops, struct ftrace_regs *fregs)
{
	struct klp_ops *ops = container_of(fops, struct klp_ops, fops);
	struct list_head *first;
	struct klp_func *func;
	int bit;

	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (WARN_ON_ONCE(bit < 0))
		return;
	first = READ_ONCE(ops->func_stack.next);
	if (WARN_ON_ONCE(first == &ops->func_stack))
		goto unlock;
	func = list_entry(first, struct klp_func, stack_node);
	/* The func_stack is read before the transition flag (the writer orders them). */
	smp_rmb();
	if (unlikely(READ_ONCE(func->transition))) {
		int patch_state;

		smp_rmb();
		patch_state = READ_ONCE(current->patch_state);
		WARN_ON_ONCE(patch_state == KLP_TRANSITION_IDLE);
		if (patch_state == KLP_TRANSITION_UNPATCHED) {
			/* This task has not switched yet: it keeps running the previous version. */
			struct list_head *next = READ_ONCE(func->stack_node.next);

			if (next == &ops->func_stack)
				goto unlock; /* no previous patch: the original code */
			func = list_entry(next, struct klp_func, stack_node);
		}
	}
	if (func->nop)
		goto unlock; /* atomic replace says: the original code */
	fregs->regs.ip = (unsigned long)func->new_func;
unlock:
	ftrace_test_recursion_unlock(bit);
}
