// SPDX-License-Identifier: GPL-2.0
/*
 * The scheduler: one global run queue in FIFO order, round-robin time slices,
 * preemption on return from interrupts. The run-queue lock is held across the
 * context switch and released by the next task (finish_task_switch), as in
 * Linux, so no CPU can pick a task whose stack is still in use.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/interrupt.h>
#include <linux/kprobes.h>
#include <linux/trace_events.h>
#include <asm/segment.h>

#define SCHED_TIMESLICE_TICKS 3

struct rq {
	raw_spinlock_t lock;
	struct list_head queue;
	unsigned long nr_running;
	unsigned long nr_switches;
};

static struct rq runqueue = {
	.lock = __RAW_SPIN_LOCK_UNLOCKED,
	.queue = LIST_HEAD_INIT(runqueue.queue),
};

struct task_struct *__switch_to_asm(struct task_struct *prev, struct task_struct *next);

static notrace void enqueue_task(struct task_struct *p)
{
	if (!p->on_rq) {
		list_add_tail(&p->run_list, &runqueue.queue);
		p->on_rq = 1;
		runqueue.nr_running++;
	}
}

static notrace void dequeue_task(struct task_struct *p)
{
	if (p->on_rq) {
		list_del_init(&p->run_list);
		p->on_rq = 0;
		runqueue.nr_running--;
	}
}

/* The first queued task not running elsewhere; prev itself may continue. */
static notrace struct task_struct *pick_next_task(struct task_struct *prev, struct task_struct *idle)
{
	struct task_struct *p;

	list_for_each_entry(p, &runqueue.queue, run_list) {
		if (!p->on_cpu || p == prev) {
			dequeue_task(p);
			return p;
		}
	}
	return idle;
}

/* Ask a CPU to reschedule: set the flag on its task, kick it if it is another CPU. */
notrace void resched_cpu(int cpu)
{
	set_tsk_thread_flag(pcpu_hot[cpu].current_task, TIF_NEED_RESCHED);
	if (cpu != smp_processor_id())
		send_IPI(cpu, RESCHEDULE_VECTOR);
}

static notrace void finish_task_switch(struct task_struct *prev)
{
	WRITE_ONCE(prev->on_cpu, 0);
	if (prev->__state == TASK_DEAD) {
		/* The kretprobe instances of calls it will never return from go back. */
		kprobe_flush_task(prev);
		list_del_init(&prev->tasks);
	}
	raw_spin_unlock(&runqueue.lock);
	local_irq_enable();
}

static void __sched __schedule(bool preempt)
{
	struct task_struct *prev = current, *next;
	struct pcpu_hot *pcpu;

	local_irq_disable();
	raw_spin_lock(&runqueue.lock);
	pcpu = this_pcpu();
	if (!preempt && prev->__state != TASK_RUNNING) {
		dequeue_task(prev);
		prev->nvcsw++;
	} else if (prev != pcpu->idle) {
		enqueue_task(prev);
		if (preempt)
			prev->nivcsw++;
	}
	next = pick_next_task(prev, pcpu->idle);
	clear_tsk_thread_flag(prev, TIF_NEED_RESCHED);
	if (next == prev) {
		raw_spin_unlock(&runqueue.lock);
		local_irq_enable();
		return;
	}
	next->on_cpu = 1;
	next->cpu = pcpu->cpu_number;
	next->timeslice = SCHED_TIMESLICE_TICKS;
	pcpu->nr_switches++;
	runqueue.nr_switches++;
	trace_sched_switch(preempt, prev, next);
	prev = __switch_to_asm(prev, next);
	finish_task_switch(prev);
}

void __sched schedule(void)
{
	do {
		preempt_disable();
		__schedule(false);
		preempt_enable_no_resched();
	} while (need_resched());
}

/* Every task enters __schedule with a preemption count of one; the idle task already has it. */
void __sched schedule_idle(void)
{
	do {
		__schedule(false);
	} while (need_resched());
}

/* Preemption on return from an interrupt; called and returning with irqs off. */
void __sched preempt_schedule_irq(void)
{
	do {
		preempt_disable();
		local_irq_enable();
		__schedule(true);
		local_irq_disable();
		preempt_enable_no_resched();
	} while (need_resched());
}

void __sched cond_resched(void)
{
	if (need_resched() && !preempt_count())
		schedule();
}

/* A new task's first switch: drop the preemption count its predecessor entered __schedule with. */
void schedule_tail(struct task_struct *prev)
{
	finish_task_switch(prev);
	preempt_enable_no_resched();
}

static notrace int cpu_is_idle(int cpu)
{
	return pcpu_hot[cpu].current_task == pcpu_hot[cpu].idle;
}

/*
 * The idle CPU to kick for p, or -1. Tasks have a home CPU (pid modulo the CPU count) that is
 * tried first, which spreads the load the way Linux's balancing would, only simpler.
 */
static notrace int select_task_rq(struct task_struct *p)
{
	int i, cpu;

	for (i = 0; i < nr_cpus_online; i++) {
		cpu = (p->pid + i) % nr_cpus_online;
		if (cpu_is_idle(cpu))
			return cpu;
	}
	return -1;
}

/* Make p runnable; kick an idle CPU to run it. Returns 1 if p was woken. */
int wake_up_state(struct task_struct *p, unsigned int state)
{
	unsigned long flags = raw_spin_lock_irqsave(&runqueue.lock);
	int cpu, woken = 0;

	if (p->__state & state) {
		WRITE_ONCE(p->__state, TASK_RUNNING);
		woken = 1;
		if (!p->on_cpu) {
			enqueue_task(p);
			cpu = select_task_rq(p);
			if (cpu >= 0)
				resched_cpu(cpu);
		}
	}
	raw_spin_unlock_irqrestore(&runqueue.lock, flags);
	if (woken)
		trace_sched_wakeup(p);
	return woken;
}

int wake_up_process(struct task_struct *p)
{
	return wake_up_state(p, TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE);
}

/* Called from the timer interrupt on every CPU. */
notrace void scheduler_tick(void)
{
	struct task_struct *curr = current;

	if (curr == this_pcpu()->idle)
		return;
	if (--curr->timeslice <= 0 && READ_ONCE(runqueue.nr_running))
		set_tsk_thread_flag(curr, TIF_NEED_RESCHED);
}

notrace void update_process_times(int user_tick)
{
	struct task_struct *curr = current;

	if (user_tick)
		curr->utime_ticks++;
	else
		curr->stime_ticks++;
	scheduler_tick();
}

long sys_sched_yield(long a, long b, long c)
{
	set_tsk_thread_flag(current, TIF_NEED_RESCHED);
	schedule();
	return 0;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(schedule);
EXPORT_SYMBOL(wake_up_process);
