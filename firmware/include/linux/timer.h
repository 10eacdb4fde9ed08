/* Timers whose function runs in the timer interrupt (kernel/time/timer.c). */
#ifndef _LINUX_TIMER_H
#define _LINUX_TIMER_H

#include <linux/sched.h>

void timer_setup(struct timer_list *timer, void (*function)(struct timer_list *), unsigned int flags);
void add_timer(struct timer_list *timer);
int del_timer(struct timer_list *timer);
/* A running function holds the timer lock that del_timer takes: del_timer already waits for it. */
#define del_timer_sync(timer) del_timer(timer)

#define from_timer(var, timer, field) container_of(timer, __typeof__(*var), field)

#endif
