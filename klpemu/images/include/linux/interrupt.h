/* Interrupt entry bookkeeping. */
#ifndef _LINUX_INTERRUPT_H
#define _LINUX_INTERRUPT_H

#include <asm/ptrace.h>

void irq_enter(void);
void irq_exit(void);
void irqentry_exit(struct pt_regs *regs);
void syscall_exit_to_user_mode(struct pt_regs *regs);
void send_IPI(int cpu, int vector);

#endif
