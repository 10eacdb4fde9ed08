/* Sleeping locks: a task that finds the mutex held sleeps until the owner lets go. */
#ifndef _LINUX_MUTEX_H
#define _LINUX_MUTEX_H

#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

struct mutex {
	raw_spinlock_t wait_lock;
	struct task_struct *owner;
	struct wait_queue_head wait;
};

#define __MUTEX_INITIALIZER(name)                                               \
	{ .wait_lock = __RAW_SPIN_LOCK_UNLOCKED, .owner = NULL,                 \
	  .wait = { __RAW_SPIN_LOCK_UNLOCKED, LIST_HEAD_INIT((name).wait.head) } }
#define DEFINE_MUTEX(name) struct mutex name = __MUTEX_INITIALIZER(name)

void mutex_init(struct mutex *lock);
int mutex_trylock(struct mutex *lock);
void mutex_lock(struct mutex *lock);
void mutex_unlock(struct mutex *lock);

static inline bool mutex_is_locked(struct mutex *lock)
{
	return READ_ONCE(lock->owner) != NULL;
}

#endif
