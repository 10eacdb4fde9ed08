// SPDX-License-Identifier: GPL-2.0
/*
 * The guest half of the livepatch transition: the per-task switch a task makes
 * for itself at kernel exit and in the idle loop. The machine (the control
 * plane) sets klp_target_state and TIF_PATCH_PENDING.
 */
#include <linux/sched.h>

int klp_target_state = KLP_TRANSITION_IDLE;

notrace void klp_update_patch_state(struct task_struct *task)
{
	if (test_and_clear_tsk_thread_flag(task, TIF_PATCH_PENDING))
		task->patch_state = READ_ONCE(klp_target_state);
}
