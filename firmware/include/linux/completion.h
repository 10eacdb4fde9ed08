/*
 * Completions (kernel/sched/completion.c): one task waits until another says
 * that something has happened. `done` counts the complete() calls not yet
 * consumed by a waiter; complete_all() makes it stay above zero for good.
 */
#ifndef _LINUX_COMPLETION_H
#define _LINUX_COMPLETION_H

#include <linux/types.h>
#include <linux/wait.h>

struct completion {
	unsigned int done;
	struct wait_queue_head wait;
};

#define COMPLETION_INITIALIZER(work) \
	{ 0, { __RAW_SPIN_LOCK_UNLOCKED, LIST_HEAD_INIT((work).wait.head) } }
#define DECLARE_COMPLETION(work) struct completion work = COMPLETION_INITIALIZER(work)

static inline void init_completion(struct completion *x)
{
	x->done = 0;
	x->wait.lock.locked = 0;
	INIT_LIST_HEAD(&x->wait.head);
}

/* Wake one waiter (or let the next wait_for_completion return at once). */
void complete(struct completion *x);
/* Wake every waiter, now and later. */
void complete_all(struct completion *x);
/* Sleep, deaf to signals, until a complete() is there to consume. */
void wait_for_completion(struct completion *x);

#endif
