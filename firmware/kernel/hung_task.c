// SPDX-License-Identifier: GPL-2.0
/* khungtaskd: wakes every few seconds and looks for tasks stuck in D state. */
#include <linux/kernel.h>
#include <linux/sched.h>

#define HUNG_TASK_CHECK_INTERVAL_SECS 2

unsigned long hung_task_checks;

static noinline int check_hung_uninterruptible_tasks(void)
{
	struct task_struct *p;
	int stuck = 0;

	list_for_each_entry(p, &task_list, tasks)
		if (READ_ONCE(p->__state) == TASK_UNINTERRUPTIBLE && !p->on_cpu)
			stuck++;
	hung_task_checks++;
	return stuck;
}

int watchdog(void *unused)
{
	for (;;) {
		schedule_timeout_interruptible(HUNG_TASK_CHECK_INTERVAL_SECS * HZ);
		check_hung_uninterruptible_tasks();
	}
	return 0;
}
