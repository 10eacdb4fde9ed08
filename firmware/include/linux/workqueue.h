/*
 * Work items: a function to run later in process context, on a kernel thread
 * (a kworker) that may sleep, with Linux's names and guarantees: a work item
 * is queued at most once at a time (the PENDING bit), never runs on two
 * workers at once, and flush/cancel wait for a running instance to finish.
 *
 * There is one worker pool (Linux has one per CPU plus unbound ones). It keeps
 * a spare idle worker while work runs, as Linux's pool manager does, so a work
 * item that sleeps for a long time does not hold up the others.
 */
#ifndef _LINUX_WORKQUEUE_H
#define _LINUX_WORKQUEUE_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/timer.h>

struct work_struct;
typedef void (*work_func_t)(struct work_struct *work);

/* work->data: the PENDING bit, set from queueing until a worker takes the item (or a cancel ends). */
#define WORK_STRUCT_PENDING_BIT 0
#define WORK_STRUCT_PENDING (1UL << WORK_STRUCT_PENDING_BIT)

struct work_struct {
	unsigned long data;
	struct list_head entry;		/* on the pool's worklist while queued */
	work_func_t func;
};

struct delayed_work {
	struct work_struct work;
	struct timer_list timer;	/* queues work when it fires */
};

void delayed_work_timer_fn(struct timer_list *t);

#define __WORK_INITIALIZER(n, f) { .data = 0, .entry = LIST_HEAD_INIT((n).entry), .func = (f) }
#define __DELAYED_WORK_INITIALIZER(n, f)                                        \
	{                                                                       \
		.work = __WORK_INITIALIZER((n).work, (f)),                      \
		.timer = { .entry = LIST_HEAD_INIT((n).timer.entry),            \
			   .function = delayed_work_timer_fn },                 \
	}

#define DECLARE_WORK(n, f) struct work_struct n = __WORK_INITIALIZER(n, f)
#define DECLARE_DELAYED_WORK(n, f) struct delayed_work n = __DELAYED_WORK_INITIALIZER(n, f)

#define INIT_WORK(_work, _func)                                                 \
	do {                                                                    \
		(_work)->data = 0;                                              \
		INIT_LIST_HEAD(&(_work)->entry);                                \
		(_work)->func = (_func);                                        \
	} while (0)
#define INIT_DELAYED_WORK(_work, _func)                                         \
	do {                                                                    \
		INIT_WORK(&(_work)->work, (_func));                             \
		timer_setup(&(_work)->timer, delayed_work_timer_fn, 0);        \
	} while (0)

static inline struct delayed_work *to_delayed_work(struct work_struct *work)
{
	return container_of(work, struct delayed_work, work);
}

#define work_pending(work) (READ_ONCE((work)->data) & WORK_STRUCT_PENDING)
#define delayed_work_pending(w) work_pending(&(w)->work)

/* false if the work was already pending: it runs once for both requests. */
bool schedule_work(struct work_struct *work);
/* Queue dwork after delay jiffies (0: now). */
bool schedule_delayed_work(struct delayed_work *dwork, unsigned long delay);
/* Wait until the work's last queued or running instance has finished; false if it was idle. */
bool flush_work(struct work_struct *work);
bool flush_delayed_work(struct delayed_work *dwork);
/* Take the work off the queue (or its timer) and wait for a running instance; true if it was pending. */
bool cancel_work_sync(struct work_struct *work);
bool cancel_delayed_work_sync(struct delayed_work *dwork);

void workqueue_init(void);

#endif
