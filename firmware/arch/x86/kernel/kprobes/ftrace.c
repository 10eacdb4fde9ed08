// SPDX-License-Identifier: GPL-2.0
/*
 * Kprobes at fentry sites (arch/x86/kernel/kprobes/ftrace.c): no int3; the
 * probe is a filter entry of one of two ftrace ops, and this handler makes the
 * call look like an int3 hit for the pre handler, then like a step over the
 * 5-byte site for the post handler. Only probes with a post handler use the
 * IPMODIFY ops (mainline since 5.4), so the others can share a function with
 * a livepatch.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ftrace.h>
#include <linux/kprobes.h>
#include <linux/trace_recursion.h>

notrace void kprobe_ftrace_handler(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *ops,
				   struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	struct kprobe_ctlblk *kcb;
	struct kprobe *p;
	int bit;

	if (!regs)
		return;
	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (bit < 0)
		return;
	p = get_kprobe((void *)ip);
	if (unlikely(!p) || kprobe_disabled(p))
		goto out;
	kcb = get_kprobe_ctlblk();
	if (kcb->current_kprobe) {
		kprobes_inc_nmissed_count(p);
	} else {
		unsigned long orig_ip = regs->ip;

		/* As if an int3 at ip had been hit */
		regs->ip = ip + INT3_INSN_SIZE;
		kcb->current_kprobe = p;
		kcb->kprobe_status = KPROBE_HIT_ACTIVE;
		if (!p->pre_handler || !p->pre_handler(p, regs)) {
			/* As if the 5-byte site had been stepped */
			regs->ip = (unsigned long)p->addr + MCOUNT_INSN_SIZE;
			if (unlikely(p->post_handler)) {
				kcb->kprobe_status = KPROBE_HIT_SSDONE;
				p->post_handler(p, regs, 0);
			}
			regs->ip = orig_ip;
		}
		/* A pre handler that returned nonzero changed regs->ip: it stays. */
		kcb->current_kprobe = NULL;
	}
out:
	ftrace_test_recursion_unlock(bit);
}
NOKPROBE_SYMBOL(kprobe_ftrace_handler);

struct ftrace_ops kprobe_ftrace_ops = {
	.func = kprobe_ftrace_handler,
	.flags = FTRACE_OPS_FL_SAVE_REGS,
};

struct ftrace_ops kprobe_ipmodify_ops = {
	.func = kprobe_ftrace_handler,
	.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY,
};
