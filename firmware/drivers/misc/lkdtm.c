// SPDX-License-Identifier: GPL-2.0
/*
 * Crashes on demand, in the spirit of Linux's lkdtm: write a crash type to
 * /sys/kernel/debug/provoke-crash/DIRECT to see how the machine reports it.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/proc_fs.h>
#include <linux/errno.h>

static noinline void lkdtm_EXCEPTION(void)
{
	*(volatile int *)0 = 0;
}

static noinline void lkdtm_BUG(void)
{
	BUG_ON(1);
}

/* Interrupts off: the timer can no longer get in. */
static noinline void lkdtm_HARDLOCKUP(void)
{
	local_irq_disable();
	for (;;)
		__asm__ __volatile__("pause");
}

/* Preemption off: the timer gets in but nothing else ever runs on this CPU. */
static noinline void lkdtm_SOFTLOCKUP(void)
{
	preempt_disable();
	for (;;)
		__asm__ __volatile__("pause");
}

static ssize_t direct_entry(const char *buf, size_t count)
{
	char type[32];
	size_t n = count < sizeof(type) - 1 ? count : sizeof(type) - 1;

	memcpy(type, buf, n);
	while (n && (type[n - 1] == '\n' || type[n - 1] == ' '))
		n--;
	type[n] = '\0';
	pr_info("lkdtm: Performing direct entry %s\n", type);
	if (!strcmp(type, "EXCEPTION"))
		lkdtm_EXCEPTION();
	else if (!strcmp(type, "BUG"))
		lkdtm_BUG();
	else if (!strcmp(type, "HARDLOCKUP"))
		lkdtm_HARDLOCKUP();
	else if (!strcmp(type, "SOFTLOCKUP"))
		lkdtm_SOFTLOCKUP();
	else
		return -EINVAL;
	return count;
}

DEFINE_PROC_ENTRY(lkdtm_direct, "/sys/kernel/debug/provoke-crash/DIRECT", 0200, NULL, direct_entry);
