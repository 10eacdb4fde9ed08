// SPDX-License-Identifier: GPL-2.0
/* Kernel threads: the kthread() wrapper every one starts in, and kthreadd. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/wait.h>

static DECLARE_WAIT_QUEUE_HEAD(kthreadd_wait);

int kthread(void *task)
{
	struct task_struct *self = task;

	return self->kthread_fn(self->kthread_data);
}

/* Linux's kthreadd creates threads on request; ours only ever waits. */
int kthreadd(void *unused)
{
	for (;;)
		wait_event_interruptible(kthreadd_wait, false);
	return 0;
}
