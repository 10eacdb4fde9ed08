// SPDX-License-Identifier: GPL-2.0
/*
 * krecurse: descends a recursive call chain and sleeps at the bottom, so its
 * stack is as deep as krecurse.depth= asks (more than 100 frames makes it
 * unreliable for the livepatch stack check).
 */
#include <linux/kernel.h>
#include <linux/sched.h>

#define RECURSE_NAP_MS 50

static long recurse_depth;
unsigned long recurse_rounds;

static noinline void recurse_sleep(void)
{
	msleep_interruptible(RECURSE_NAP_MS);
}

/* Recursive on purpose; the barrier keeps gcc from turning it into a loop. */
noinline int recurse_descend(long depth)
{
	int ret;

	if (depth <= 1) {
		recurse_sleep();
		return 1;
	}
	ret = recurse_descend(depth - 1) + 1;
	barrier();
	return ret;
}

int recurse_thread(void *unused)
{
	recurse_depth = cmdline_get_long("krecurse.depth", 8);
	for (;;) {
		recurse_descend(recurse_depth);
		recurse_rounds++;
	}
	return 0;
}
