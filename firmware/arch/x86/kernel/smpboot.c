// SPDX-License-Identifier: GPL-2.0
/* Bringing up the secondary CPUs. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <klpemu/hypercall.h>

extern char secondary_startup_64[];
int nr_cpus_online = 1;
static volatile int cpu_callin[NR_CPUS];

void smp_init(int nr_cpus)
{
	int cpu;

	pr_info("smp: Bringing up secondary CPUs ...\n");
	for (cpu = 1; cpu < nr_cpus && cpu < NR_CPUS; cpu++) {
		struct task_struct *idle = pcpu_hot[cpu].idle;
		unsigned long sp = (unsigned long)task_pt_regs(idle);

		hypercall(HC_START_CPU, cpu, (long)secondary_startup_64, sp);
		while (!READ_ONCE(cpu_callin[cpu]))
			__asm__ __volatile__("pause");
		nr_cpus_online++;
	}
	pr_info("smp: Brought up 1 node, %d CPU%s\n", nr_cpus_online, nr_cpus_online > 1 ? "s" : "");
}

void __noreturn start_secondary(int cpu)
{
	struct task_struct *idle = pcpu_hot[cpu].idle;

	pcpu_hot[cpu].current_task = idle;
	pcpu_hot[cpu].preempt_count = 0;
	update_task_stack(idle);
	WRITE_ONCE(cpu_callin[cpu], 1);
	cpu_startup_entry();
}
