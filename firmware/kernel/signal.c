// SPDX-License-Identifier: GPL-2.0
/* Signals, reduced to what the livepatch transition uses: a pending flag and a wake-up. */
#include <linux/kernel.h>
#include <linux/sched.h>

void signal_wake_up(struct task_struct *t)
{
	set_tsk_thread_flag(t, TIF_SIGPENDING);
	wake_up_state(t, TASK_INTERRUPTIBLE);
}

/* No user handlers here: delivering a signal means consuming it. */
void arch_do_signal_or_restart(struct pt_regs *regs)
{
	if (test_and_clear_tsk_thread_flag(current, TIF_SIGPENDING))
		current->pending_signals++;
}
