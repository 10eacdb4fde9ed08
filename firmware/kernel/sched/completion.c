// SPDX-License-Identifier: GPL-2.0
/*
 * Completions: a count of events, kept under the wait queue's lock, and the
 * tasks waiting for one. A waiter takes one event; complete_all() leaves the
 * count at UINT_MAX, which no waiter decrements.
 */
#include <linux/completion.h>
#include <linux/sched.h>

#define COMPLETE_ALL ((unsigned int)~0U)

void complete(struct completion *x)
{
	unsigned long flags = raw_spin_lock_irqsave(&x->wait.lock);

	if (x->done != COMPLETE_ALL)
		x->done++;
	raw_spin_unlock_irqrestore(&x->wait.lock, flags);
	wake_up(&x->wait);
}

void complete_all(struct completion *x)
{
	unsigned long flags = raw_spin_lock_irqsave(&x->wait.lock);

	x->done = COMPLETE_ALL;
	raw_spin_unlock_irqrestore(&x->wait.lock, flags);
	wake_up(&x->wait);
}

/* Consumes one event if there is one. */
static bool try_take(struct completion *x)
{
	unsigned long flags = raw_spin_lock_irqsave(&x->wait.lock);
	bool taken = x->done != 0;

	if (taken && x->done != COMPLETE_ALL)
		x->done--;
	raw_spin_unlock_irqrestore(&x->wait.lock, flags);
	return taken;
}

void __sched wait_for_completion(struct completion *x)
{
	struct wait_queue_entry w = { .task = current };

	for (;;) {
		/* On the queue and asleep-to-be before looking, so a complete() in between wakes us. */
		prepare_to_wait(&x->wait, &w, TASK_UNINTERRUPTIBLE);
		if (try_take(x))
			break;
		schedule();
	}
	finish_wait(&x->wait, &w);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(complete);
EXPORT_SYMBOL(wait_for_completion);
