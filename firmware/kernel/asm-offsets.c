// SPDX-License-Identifier: GPL-2.0
/* Structure offsets the assembly needs, generated at build time as Linux does. */
#include <linux/sched.h>

#define DEFINE(sym, val) __asm__ __volatile__("\n.ascii \"->" #sym " %0\"" : : "i"(val))

void common(void)
{
	DEFINE(TASK_threadsp, offsetof(struct task_struct, thread.sp));
	DEFINE(PTREGS_SIZE, sizeof(struct pt_regs));
	DEFINE(PCPU_halting, offsetof(struct pcpu_hot, halting));
}
