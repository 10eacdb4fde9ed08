// SPDX-License-Identifier: GPL-2.0
/* Interrupt handlers: the local timer, reschedule IPIs, and IPI sending. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/interrupt.h>
#include <linux/trace_events.h>
#include <klpemu/hypercall.h>

void update_process_times(int user_tick);

notrace void irq_enter(void)
{
	struct pcpu_hot *pcpu = this_pcpu();

	pcpu->preempt_count += HARDIRQ_OFFSET;
	pcpu->irq_count++;
}

notrace void irq_exit(void)
{
	this_pcpu()->preempt_count -= HARDIRQ_OFFSET;
}

void sysvec_apic_timer_interrupt(struct pt_regs *regs)
{
	irq_enter();
	trace_irq_handler_entry(0, "timer");
	if (smp_processor_id() == 0) {
		WRITE_ONCE(jiffies, jiffies + 1);
		run_timers();
	}
	update_process_times(user_mode(regs));
	trace_irq_handler_exit(0, 1);	/* IRQ_HANDLED */
	irq_exit();
}

/* The waker already set TIF_NEED_RESCHED; the exit path does the rest. */
void sysvec_reschedule_ipi(struct pt_regs *regs)
{
	irq_enter();
	irq_exit();
}

notrace void send_IPI(int cpu, int vector)
{
	hypercall(HC_SEND_IPI, cpu, vector, 0);
}
