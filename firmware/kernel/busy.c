// SPDX-License-Identifier: GPL-2.0
/*
 * kbusy (started with kbusy=1 on the command line): a CPU-bound kernel thread
 * that never sleeps, so the timer preempts it in kernel mode and its stack
 * carries an interrupt frame, which makes it unreliable for livepatch.
 */
#include <linux/kernel.h>
#include <linux/sched.h>

unsigned long busy_rounds;

static noinline unsigned long busy_step(unsigned long x)
{
	return x * 2862933555777941757UL + 3037000493UL;
}

int busy_thread(void *unused)
{
	unsigned long x = 1;

	for (;;) {
		x = busy_step(x);
		busy_rounds++;
	}
	return 0;
}
