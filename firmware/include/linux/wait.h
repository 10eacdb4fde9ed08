/* Wait queues: sleep until a condition holds, woken by wake_up(). */
#ifndef _LINUX_WAIT_H
#define _LINUX_WAIT_H

#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/sched.h>

struct wait_queue_head {
	raw_spinlock_t lock;
	struct list_head head;
};

struct wait_queue_entry {
	struct task_struct *task;
	struct list_head entry;
};

#define DECLARE_WAIT_QUEUE_HEAD(name) \
	struct wait_queue_head name = { __RAW_SPIN_LOCK_UNLOCKED, LIST_HEAD_INIT(name.head) }

void prepare_to_wait(struct wait_queue_head *wq, struct wait_queue_entry *w, int state);
void finish_wait(struct wait_queue_head *wq, struct wait_queue_entry *w);
void wake_up(struct wait_queue_head *wq);

/* Sleeps, deaf to signals, until cond holds. */
#define wait_event(wq, cond)                                                   \
	do {                                                                   \
		struct wait_queue_entry __w = { .task = current };             \
		for (;;) {                                                     \
			prepare_to_wait(&(wq), &__w, TASK_UNINTERRUPTIBLE);    \
			if (cond)                                              \
				break;                                         \
			schedule();                                            \
		}                                                              \
		finish_wait(&(wq), &__w);                                      \
	} while (0)

/* Returns 0 once cond holds, or -EINTR when a signal arrived first. */
#define wait_event_interruptible(wq, cond)                                     \
	({                                                                     \
		struct wait_queue_entry __w = { .task = current };             \
		long __ret = 0;                                                \
		for (;;) {                                                     \
			prepare_to_wait(&(wq), &__w, TASK_INTERRUPTIBLE);      \
			if (cond)                                              \
				break;                                         \
			if (test_tsk_thread_flag(current, TIF_SIGPENDING)) {   \
				__ret = -4; /* -EINTR */                       \
				break;                                         \
			}                                                      \
			schedule();                                            \
		}                                                              \
		finish_wait(&(wq), &__w);                                      \
		__ret;                                                         \
	})

#endif
