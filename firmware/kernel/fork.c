// SPDX-License-Identifier: GPL-2.0
/*
 * Creating tasks: idle tasks, kernel threads and user tasks. The first NR_TASKS
 * (every task of a boot) take a slot of a static table; more, such as a module's
 * thousands of kernel threads, get their task_struct and stack from kmalloc.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/trace_events.h>

struct task_struct task_table[NR_TASKS];
static char task_stacks[NR_TASKS][THREAD_SIZE] __aligned(THREAD_SIZE);
LIST_HEAD(task_list);
static int nr_tasks;
static pid_t last_pid;

void copy_thread(struct task_struct *p, int (*fn)(void *), void *arg,
		 unsigned long user_ip, unsigned long user_sp);
void kthread_start(void *unused);
int kthread(void *task);

static struct task_struct *alloc_task(const char *name, pid_t pid)
{
	struct task_struct *p;

	if (nr_tasks < NR_TASKS) {
		p = &task_table[nr_tasks];
		p->stack = task_stacks[nr_tasks];
	} else {
		p = kzalloc(sizeof(*p), GFP_KERNEL);
		if (!p)
			return NULL;
		p->stack = kmalloc(THREAD_SIZE, GFP_KERNEL);
		if (!p->stack) {
			kfree(p);
			return NULL;
		}
	}
	nr_tasks++;
	p->pid = pid;
	p->tgid = pid;
	strscpy(p->comm, name, TASK_COMM_LEN);
	p->patch_state = KLP_TRANSITION_IDLE;
	INIT_LIST_HEAD(&p->run_list);
	INIT_LIST_HEAD(&p->timer.entry);
	return p;
}

void init_idle(struct task_struct *idle, int cpu)
{
	idle->__state = TASK_RUNNING;
	idle->on_cpu = 1;
	idle->cpu = cpu;
	idle->flags = PF_KTHREAD | PF_IDLE;
	pcpu_hot[cpu].idle = idle;
}

/* The idle tasks are pid 0 and sit outside the task list, as in Linux. */
struct task_struct *idle_task_create(int cpu)
{
	char name[TASK_COMM_LEN];
	struct task_struct *idle;

	snprintf(name, sizeof(name), "swapper/%d", cpu);
	idle = alloc_task(name, 0);
	init_idle(idle, cpu);
	return idle;
}

/* A new task inherits the patch state of its creator, as klp_copy_process does. */
static void klp_copy_process(struct task_struct *child)
{
	child->patch_state = current->patch_state;
	if (test_tsk_thread_flag(current, TIF_PATCH_PENDING))
		set_tsk_thread_flag(child, TIF_PATCH_PENDING);
}

/* Every new task comes from here, as Linux's do from kernel_clone. */
noinline struct task_struct *kernel_clone(const char *name, unsigned int flags)
{
	struct task_struct *p = alloc_task(name, last_pid + 1);
	unsigned long irqflags;

	if (!p)
		return NULL;
	last_pid++;
	irqflags = local_irq_save();
	p->flags = flags;
	p->__state = TASK_UNINTERRUPTIBLE;
	klp_copy_process(p);
	list_add_tail(&p->tasks, &task_list);
	local_irq_restore(irqflags);
	trace_sched_process_fork(current, p);
	return p;
}

/* NULL when there is no memory for the task (Linux returns ERR_PTR(-ENOMEM)). */
struct task_struct *kthread_create(int (*fn)(void *), void *arg, const char *name)
{
	struct task_struct *p = kernel_clone(name, PF_KTHREAD);

	if (!p)
		return NULL;
	p->kthread_fn = fn;
	p->kthread_data = arg;
	copy_thread(p, kthread, p, 0, 0);
	wake_up_process(p);
	return p;
}

struct task_struct *user_task_create(void (*entry)(void), unsigned long user_stack_top,
				     const char *name)
{
	struct task_struct *p = kernel_clone(name, 0);

	copy_thread(p, NULL, NULL, (unsigned long)entry, user_stack_top);
	wake_up_process(p);
	return p;
}

struct task_struct *find_task_by_pid(pid_t pid)
{
	struct task_struct *p;

	list_for_each_entry(p, &task_list, tasks)
		if (p->pid == pid)
			return p;
	return NULL;
}

void __noreturn do_exit(long code)
{
	trace_sched_process_exit(current);
	local_irq_disable();
	current->exit_code = code;
	current->flags |= PF_EXITING;
	set_current_state(TASK_DEAD);
	schedule();
	panic("dead task %d scheduled", current->pid);
}

long sys_exit(long code, long b, long c)
{
	do_exit(code);
}

long sys_getpid(long a, long b, long c)
{
	return current->tgid;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(kthread_create);
