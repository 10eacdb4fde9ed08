// SPDX-License-Identifier: GPL-2.0
/*
 * kbusy (started with kbusy=1 on the command line): a CPU-bound kernel thread
 * that never sleeps, so the timer preempts it in kernel mode and its stack
 * carries an interrupt frame, which makes it unreliable for livepatch.
 */
#include <linux/kernel.h>
#include <linux/sched.h>

unsigned long busy_rounds;
unsigned long busy_value = 1;

static noinline unsigned long busy_step(unsigned long x)
{
	return x * 2862933555777941757UL + 3037000493UL;
}

int busy_thread(void *unused)
{
	for (;;) {
		WRITE_ONCE(busy_value, busy_step(READ_ONCE(busy_value)));
		WRITE_ONCE(busy_rounds, busy_rounds + 1);
	}
	return 0;
}
