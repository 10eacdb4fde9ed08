// SPDX-License-Identifier: GPL-2.0
/* start_kernel: from the first instruction to a running system with tasks on every CPU. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/mm.h>
#include <linux/ftrace.h>
#include <linux/workqueue.h>
#include <klpemu/hypercall.h>

#define COMMAND_LINE_SIZE 512
#define USER_STACK_SIZE 8192
#define NR_USER_STACKS 4

/* Filled by the machine before CPU 0 starts, as a boot loader would. */
struct boot_params {
	char cmdline[COMMAND_LINE_SIZE];
	unsigned long mem_size;
	unsigned int nr_cpus;
};

struct boot_params boot_params;
char boot_command_line[COMMAND_LINE_SIZE];
unsigned long totalram_pages;
unsigned long kernel_image_pages;
const char linux_banner[] = "klpemu kernel version 1.0 (gcc version " __VERSION__ ") #1 SMP PREEMPT\n";

extern char _text[], _end[];
extern int kthreadd(void *), watchdog(void *), recurse_thread(void *);
extern int busy_thread(void *);
extern void init_main(void), sysmon_main(void), sh_main(void);
void smp_init(int nr_cpus);
void init_mm_internals(void);

static char user_stacks[NR_USER_STACKS][USER_STACK_SIZE]
	__section(".user.bss") __aligned(16);

/* The value of name=value on the command line, or NULL. */
const char *cmdline_get_param(const char *name)
{
	size_t len = strlen(name);
	const char *p = boot_command_line;

	while (*p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, name, len) && p[len] == '=')
			return p + len + 1;
		while (*p && *p != ' ')
			p++;
	}
	return NULL;
}

long cmdline_get_long(const char *name, long dflt)
{
	const char *v = cmdline_get_param(name);

	return v ? simple_strtol(v, NULL, 0) : dflt;
}

static void start_user(void (*entry)(void), int slot, const char *name)
{
	user_task_create(entry, (unsigned long)user_stacks[slot] + USER_STACK_SIZE, name);
}

void __noreturn start_kernel(void)
{
	struct task_struct *idle = idle_task_create(0);
	int cpu, nr_cpus = boot_params.nr_cpus ? boot_params.nr_cpus : 1;

	pcpu_hot[0].current_task = idle;
	update_task_stack(idle);
	strscpy(boot_command_line, boot_params.cmdline, COMMAND_LINE_SIZE);
	totalram_pages = boot_params.mem_size >> PAGE_SHIFT;
	kernel_image_pages = (_end - _text) >> PAGE_SHIFT;

	printk(KERN_NOTICE "%s", linux_banner);
	pr_notice("Command line: %s\n", boot_command_line);
	pr_info("Memory: %luK total, %luK kernel image\n", totalram_pages << 2,
		kernel_image_pages << 2);
	ftrace_init();
	for (cpu = 1; cpu < nr_cpus && cpu < NR_CPUS; cpu++)
		idle_task_create(cpu);

	start_user(init_main, 0, "init");
	kthread_create(kthreadd, NULL, "kthreadd");
	workqueue_init();
	kthread_create(watchdog, NULL, "khungtaskd");
	kthread_create(recurse_thread, NULL, "krecurse");
	if (cmdline_get_long("kbusy", 0))
		kthread_create(busy_thread, NULL, "kbusy");
	start_user(sysmon_main, 1, "sysmon");
	start_user(sh_main, 2, "sh");

	init_mm_internals();
	smp_init(nr_cpus);
	pr_info("Run /sbin/init as init process\n");
	hypercall(HC_BOOT_DONE, 0, 0, 0);
	cpu_startup_entry();
}

/* What modules may link against, as Linux exports _totalram_pages. */
EXPORT_SYMBOL(totalram_pages);
