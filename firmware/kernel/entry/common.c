// SPDX-License-Identifier: GPL-2.0
/*
 * Leaving the kernel: the work done on every return to user mode (where a
 * task's livepatch state switches) and preemption on return from interrupts.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/interrupt.h>
#include <linux/trace_events.h>

void arch_do_signal_or_restart(struct pt_regs *regs);

static void exit_to_user_mode_loop(struct pt_regs *regs, unsigned long ti_work)
{
	while (ti_work & EXIT_TO_USER_MODE_WORK) {
		local_irq_enable();
		if (ti_work & _TIF_NEED_RESCHED)
			schedule();
		if (ti_work & _TIF_PATCH_PENDING)
			klp_update_patch_state(current);
		if (ti_work & _TIF_SIGPENDING)
			arch_do_signal_or_restart(regs);
		local_irq_disable();
		ti_work = READ_ONCE(current->thread_info.flags);
	}
}

static void exit_to_user_mode_prepare(struct pt_regs *regs)
{
	unsigned long ti_work = READ_ONCE(current->thread_info.flags);

	if (unlikely(ti_work & EXIT_TO_USER_MODE_WORK))
		exit_to_user_mode_loop(regs, ti_work);
}

void syscall_exit_to_user_mode(struct pt_regs *regs)
{
	trace_sys_exit(regs, regs->ax);
	local_irq_disable();
	exit_to_user_mode_prepare(regs);
}

void irqentry_exit(struct pt_regs *regs)
{
	if (user_mode(regs)) {
		exit_to_user_mode_prepare(regs);
	} else if (!preempt_count() && (regs->flags & 0x200) && need_resched()) {
		preempt_schedule_irq();
	}
}
