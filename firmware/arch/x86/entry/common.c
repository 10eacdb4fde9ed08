// SPDX-License-Identifier: GPL-2.0
/* System call dispatch. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/interrupt.h>
#include <linux/errno.h>
#include <linux/trace_events.h>
#include <klpemu/syscalls.h>

typedef long (*sys_call_ptr_t)(long, long, long);

long sys_read(long fd, long buf, long count);
long sys_write(long fd, long buf, long count);
long sys_open(long path, long flags, long unused);
long sys_close(long fd, long unused1, long unused2);
long sys_sched_yield(long a, long b, long c);
long sys_nanosleep(long req, long rem, long unused);
long sys_getpid(long a, long b, long c);
long sys_exit(long code, long b, long c);
long sys_init_module(long umod, long len, long uargs);
long sys_delete_module(long name, long flags, long unused);
long sys_console_wait(long req, long b, long c);
long sys_console_done(long status, long b, long c);

static const sys_call_ptr_t sys_call_table[NR_syscalls] = {
	[__NR_read] = sys_read,
	[__NR_write] = sys_write,
	[__NR_open] = sys_open,
	[__NR_close] = sys_close,
	[__NR_sched_yield] = sys_sched_yield,
	[__NR_nanosleep] = sys_nanosleep,
	[__NR_getpid] = sys_getpid,
	[__NR_exit] = sys_exit,
	[__NR_init_module] = sys_init_module,
	[__NR_delete_module] = sys_delete_module,
	[__NR_console_wait] = sys_console_wait,
	[__NR_console_done] = sys_console_done,
};

void do_syscall_64(struct pt_regs *regs)
{
	unsigned long nr = regs->orig_ax;

	local_irq_enable();
	trace_sys_enter(regs, nr);
	if (nr < NR_syscalls && sys_call_table[nr])
		regs->ax = sys_call_table[nr](regs->di, regs->si, regs->dx);
	else
		regs->ax = -ENOSYS;
	syscall_exit_to_user_mode(regs);
}
