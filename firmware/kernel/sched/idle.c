// SPDX-License-Identifier: GPL-2.0
/* The idle loop: halt until there is work; a livepatch switch point. */
#include <linux/kernel.h>
#include <linux/sched.h>

void arch_cpu_idle(void);

static void do_idle(void)
{
	while (!need_resched()) {
		local_irq_disable();
		if (need_resched()) {
			local_irq_enable();
			break;
		}
		arch_cpu_idle(); /* sti; hlt: wakes with the next interrupt */
	}
	/* As kernel/sched/idle.c does at the end of each idle loop iteration. */
	klp_update_patch_state(current);
	schedule_idle();
}

/* The idle task runs with preemption disabled, as in Linux: it reschedules when it sees the flag. */
void __noreturn cpu_startup_entry(void)
{
	current->flags |= PF_IDLE;
	preempt_disable();
	local_irq_enable();
	for (;;)
		do_idle();
}
