// SPDX-License-Identifier: GPL-2.0
/* jiffies, sleeping timers, and the emulated clock. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/errno.h>
#include <linux/timer.h>

volatile unsigned long jiffies;
/* Length of a tick; the machine reads it to place timer interrupts. */
const unsigned long tick_nsec = 1000000000UL / HZ;
static raw_spinlock_t timer_lock = __RAW_SPIN_LOCK_UNLOCKED;
static LIST_HEAD(timer_list_head);

/* Nanoseconds of emulated time, as the machine set them at the start of this slice. */
notrace u64 local_clock(void)
{
	return this_cpu_read(clock_ns);
}

notrace unsigned long msecs_to_jiffies(unsigned int msecs)
{
	return (msecs * HZ + 999) / 1000;
}

/*
 * Runs on CPU 0 in the timer interrupt: run the function of every expired timer, or wake its
 * task. Functions run under timer_lock, so once del_timer returns, its function is not running.
 */
notrace void run_timers(void)
{
	struct timer_list *t, *n;

	raw_spin_lock(&timer_lock);
	list_for_each_entry_safe(t, n, &timer_list_head, entry) {
		if ((long)(jiffies - t->expires) >= 0) {
			list_del_init(&t->entry);
			if (t->function)
				t->function(t);
			else
				wake_up_process(t->task);
		}
	}
	raw_spin_unlock(&timer_lock);
}

void timer_setup(struct timer_list *t, void (*function)(struct timer_list *), unsigned int flags)
{
	INIT_LIST_HEAD(&t->entry);
	t->task = NULL;
	t->function = function;
}

/* Arm t to fire at t->expires; t must not be pending. */
notrace void add_timer(struct timer_list *t)
{
	unsigned long flags = raw_spin_lock_irqsave(&timer_lock);

	list_add_tail(&t->entry, &timer_list_head);
	raw_spin_unlock_irqrestore(&timer_lock, flags);
}

/* Disarm t; 1 if it was pending. Its function is not running once this returns. */
notrace int del_timer(struct timer_list *t)
{
	unsigned long flags = raw_spin_lock_irqsave(&timer_lock);
	int pending = t->entry.next && !list_empty(&t->entry);

	if (pending)
		list_del_init(&t->entry);
	raw_spin_unlock_irqrestore(&timer_lock, flags);
	return pending;
}

/* Sleep in the state the caller set until woken or timeout jiffies pass. */
long __sched schedule_timeout(long timeout)
{
	struct timer_list *t = &current->timer;
	unsigned long expire = jiffies + timeout, flags;
	long left;

	t->task = current;
	t->expires = expire;
	flags = raw_spin_lock_irqsave(&timer_lock);
	list_add_tail(&t->entry, &timer_list_head);
	raw_spin_unlock_irqrestore(&timer_lock, flags);
	schedule();
	del_timer(t);
	left = (long)(expire - jiffies);
	return left < 0 ? 0 : left;
}

long __sched schedule_timeout_interruptible(long timeout)
{
	set_current_state(TASK_INTERRUPTIBLE);
	return schedule_timeout(timeout);
}

void msleep(unsigned int msecs)
{
	long timeout = msecs_to_jiffies(msecs) + 1;

	while (timeout) {
		set_current_state(TASK_UNINTERRUPTIBLE);
		timeout = schedule_timeout(timeout);
	}
}

unsigned long msleep_interruptible(unsigned int msecs)
{
	long timeout = msecs_to_jiffies(msecs) + 1;

	while (timeout && !test_tsk_thread_flag(current, TIF_SIGPENDING))
		timeout = schedule_timeout_interruptible(timeout);
	return timeout * 1000 / HZ;
}

struct timespec64 {
	long tv_sec;
	long tv_nsec;
};

long sys_nanosleep(long req, long rem, long unused)
{
	const struct timespec64 *ts = (const struct timespec64 *)req;
	unsigned long ms = ts->tv_sec * 1000 + ts->tv_nsec / 1000000;

	if (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
		return -EINVAL;
	return msleep_interruptible(ms) ? -EINTR : 0;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(jiffies);
EXPORT_SYMBOL(msecs_to_jiffies);
EXPORT_SYMBOL(msleep);
EXPORT_SYMBOL(schedule_timeout);
EXPORT_SYMBOL(schedule_timeout_interruptible);
EXPORT_SYMBOL(add_timer);
EXPORT_SYMBOL(del_timer);
