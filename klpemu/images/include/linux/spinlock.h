/* Test-and-set spinlocks; CPUs interleave inside one emulator, so xchg is atomic. */
#ifndef _LINUX_SPINLOCK_H
#define _LINUX_SPINLOCK_H

#include <linux/compiler.h>
#include <asm/irqflags.h>

typedef struct {
	volatile int locked;
} raw_spinlock_t;

#define __RAW_SPIN_LOCK_UNLOCKED { 0 }

static __always_inline void raw_spin_lock(raw_spinlock_t *lock)
{
	int one = 1;
	for (;;) {
		__asm__ __volatile__("xchgl %0, %1" : "+r"(one), "+m"(lock->locked) : : "memory");
		if (!one)
			return;
		while (READ_ONCE(lock->locked))
			__asm__ __volatile__("pause");
		one = 1;
	}
}

static __always_inline void raw_spin_unlock(raw_spinlock_t *lock)
{
	barrier();
	WRITE_ONCE(lock->locked, 0);
}

static __always_inline unsigned long raw_spin_lock_irqsave(raw_spinlock_t *lock)
{
	unsigned long flags = local_irq_save();
	raw_spin_lock(lock);
	return flags;
}

static __always_inline void raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags)
{
	raw_spin_unlock(lock);
	local_irq_restore(flags);
}

#endif
