// SPDX-License-Identifier: GPL-2.0
/* Mutexes: an owner field taken under a spinlock, and a wait queue for the tasks that want it. */
#include <linux/mutex.h>

void mutex_init(struct mutex *lock)
{
	lock->wait_lock = (raw_spinlock_t)__RAW_SPIN_LOCK_UNLOCKED;
	lock->owner = NULL;
	lock->wait.lock = (raw_spinlock_t)__RAW_SPIN_LOCK_UNLOCKED;
	INIT_LIST_HEAD(&lock->wait.head);
}

/* 1 if the lock was free and is now the caller's. */
int mutex_trylock(struct mutex *lock)
{
	unsigned long flags = raw_spin_lock_irqsave(&lock->wait_lock);
	int taken = !lock->owner;

	if (taken)
		lock->owner = current;
	raw_spin_unlock_irqrestore(&lock->wait_lock, flags);
	return taken;
}

void __sched mutex_lock(struct mutex *lock)
{
	if (!mutex_trylock(lock))
		wait_event(lock->wait, mutex_trylock(lock));
}

void mutex_unlock(struct mutex *lock)
{
	unsigned long flags = raw_spin_lock_irqsave(&lock->wait_lock);

	lock->owner = NULL;
	raw_spin_unlock_irqrestore(&lock->wait_lock, flags);
	wake_up(&lock->wait);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(mutex_lock);
EXPORT_SYMBOL(mutex_unlock);
