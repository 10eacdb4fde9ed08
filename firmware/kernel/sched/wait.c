// SPDX-License-Identifier: GPL-2.0
/* Wait queues. */
#include <linux/wait.h>

void prepare_to_wait(struct wait_queue_head *wq, struct wait_queue_entry *w, int state)
{
	unsigned long flags = raw_spin_lock_irqsave(&wq->lock);

	if (!w->entry.next || list_empty(&w->entry))
		list_add_tail(&w->entry, &wq->head);
	set_current_state(state);
	raw_spin_unlock_irqrestore(&wq->lock, flags);
}

void finish_wait(struct wait_queue_head *wq, struct wait_queue_entry *w)
{
	unsigned long flags;

	__set_current_state(TASK_RUNNING);
	flags = raw_spin_lock_irqsave(&wq->lock);
	if (w->entry.next && !list_empty(&w->entry))
		list_del_init(&w->entry);
	raw_spin_unlock_irqrestore(&wq->lock, flags);
}

void wake_up(struct wait_queue_head *wq)
{
	struct wait_queue_entry *w;
	unsigned long flags = raw_spin_lock_irqsave(&wq->lock);

	list_for_each_entry(w, &wq->head, entry)
		wake_up_process(w->task);
	raw_spin_unlock_irqrestore(&wq->lock, flags);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(prepare_to_wait);
EXPORT_SYMBOL(finish_wait);
EXPORT_SYMBOL(wake_up);
