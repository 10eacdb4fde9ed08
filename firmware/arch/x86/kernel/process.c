// SPDX-License-Identifier: GPL-2.0
/* Task creation and the C half of the context switch. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/interrupt.h>
#include <asm/segment.h>

extern char ret_from_fork_asm[];
void update_task_stack(struct task_struct *task);
void __noreturn do_exit(long code);

/*
 * Lay out a new task's stack as __switch_to_asm leaves a sleeping one: its
 * pt_regs at the top and an inactive_task_frame right below, returning into
 * ret_from_fork_asm. For a kernel thread rbx is the function to run.
 */
notrace void copy_thread(struct task_struct *p, int (*fn)(void *), void *arg,
			 unsigned long user_ip, unsigned long user_sp)
{
	struct pt_regs *regs = task_pt_regs(p);
	struct inactive_task_frame *frame = (struct inactive_task_frame *)regs - 1;

	memset(regs, 0, sizeof(*regs));
	if (!fn) {
		regs->ip = user_ip;
		regs->sp = user_sp;
		regs->cs = __USER_CS;
		regs->ss = __USER_DS;
		regs->flags = X86_EFLAGS_IF | X86_EFLAGS_FIXED;
		regs->orig_ax = -1;
	}
	memset(frame, 0, sizeof(*frame));
	frame->bp = (unsigned long)regs | 1; /* encode_frame_pointer(): the walk ends at these regs */
	frame->bx = (unsigned long)fn;
	frame->r12 = (unsigned long)arg;
	frame->ret_addr = (unsigned long)ret_from_fork_asm;
	p->thread.sp = (unsigned long)frame;
}

/* Runs on next's stack; returns prev to the caller of __switch_to_asm. */
notrace struct task_struct *__switch_to(struct task_struct *prev, struct task_struct *next)
{
	struct pcpu_hot *pcpu = this_pcpu();

	pcpu->current_task = next;
	update_task_stack(next);
	return prev;
}

/* The C half of a new task's first run; returns only to go to user mode. */
void ret_from_fork(struct task_struct *prev, struct pt_regs *regs, int (*fn)(void *), void *fn_arg)
{
	schedule_tail(prev);
	if (fn) {
		do_exit(fn(fn_arg));
	}
	syscall_exit_to_user_mode(regs);
}
