/* Tasks, per-CPU state and the scheduler interface. */
#ifndef _LINUX_SCHED_H
#define _LINUX_SCHED_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/llist.h>
#include <linux/compiler.h>
#include <asm/ptrace.h>
#include <asm/irqflags.h>

#define NR_CPUS 8
#define NR_TASKS 64
#define THREAD_SIZE 16384
#define TASK_COMM_LEN 16
#define HZ 250
#define NR_OPEN 4

/*
 * Enums rather than macros here and below: the emulator reads the values from
 * DWARF, and the preprocessor leaves macros out of it.
 */

/* Task states (task->__state). */
enum task_state {
	TASK_RUNNING = 0x0000,
	TASK_INTERRUPTIBLE = 0x0001,
	TASK_UNINTERRUPTIBLE = 0x0002,
	TASK_DEAD = 0x0080,
};

/* Task flags (task->flags). */
enum task_flags {
	PF_IDLE = 0x00000002,
	PF_EXITING = 0x00000004,
	PF_KTHREAD = 0x00200000,
};

/* Thread-info flags: bit numbers, as Linux keeps them in thread_info.flags. */
enum thread_info_flags {
	TIF_NOTIFY_RESUME = 1,
	TIF_SIGPENDING = 2,
	TIF_NEED_RESCHED = 3,
	TIF_PATCH_PENDING = 13,
};
#define _TIF_SIGPENDING (1UL << TIF_SIGPENDING)
#define _TIF_NEED_RESCHED (1UL << TIF_NEED_RESCHED)
#define _TIF_PATCH_PENDING (1UL << TIF_PATCH_PENDING)
#define EXIT_TO_USER_MODE_WORK (_TIF_SIGPENDING | _TIF_NEED_RESCHED | _TIF_PATCH_PENDING)

/* Livepatch per-task states (task->patch_state). */
enum klp_transition_state {
	KLP_TRANSITION_IDLE = -1,
	KLP_TRANSITION_UNPATCHED = 0,
	KLP_TRANSITION_PATCHED = 1,
};

struct thread_info {
	unsigned long flags;
};

/* What __switch_to_asm leaves on a sleeping task's stack; task->thread.sp points at it. */
struct inactive_task_frame {
	unsigned long r15, r14, r13, r12, bx, bp, ret_addr;
};

struct thread_struct {
	unsigned long sp;
};

struct proc_dir_entry;

struct file {
	const struct proc_dir_entry *entry;
	int flags;
	loff_t pos;
	size_t count;
	char *buf; /* seq_file buffer, filled at the first read */
};

/* A timer: at expires, function runs in the timer interrupt, or (no function) task is woken. */
struct timer_list {
	struct list_head entry;
	unsigned long expires;
	struct task_struct *task;
	void (*function)(struct timer_list *);
};

/*
 * function_graph's per-task return stack (kernel/trace/fgraph.c): one entry
 * per traced call still running, innermost last, holding the return address
 * prepare_ftrace_return replaced with return_to_handler.
 */
struct ftrace_ret_stack {
	unsigned long ret;	/* the original return address */
	unsigned long func;	/* the traced function */
	unsigned long retp;	/* the stack slot ret was in (now return_to_handler) */
	u64 calltime;		/* local_clock() at entry */
};

#define FTRACE_RETFUNC_DEPTH 50

struct task_struct {
	struct thread_info thread_info; /* first, as with CONFIG_THREAD_INFO_IN_TASK */
	volatile long __state;
	void *stack;
	int on_cpu;
	int cpu;
	int on_rq;
	unsigned int flags;
	pid_t pid;
	pid_t tgid;
	char comm[TASK_COMM_LEN];
	int patch_state;
	int timeslice;
	unsigned long nvcsw;	/* voluntary context switches */
	unsigned long nivcsw;	/* involuntary ones */
	unsigned long utime_ticks;
	unsigned long stime_ticks;
	unsigned long pending_signals;
	long exit_code;
	int (*kthread_fn)(void *);
	void *kthread_data;
	struct list_head tasks;	/* every task, in creation order */
	struct list_head run_list;
	struct timer_list timer;
	struct file files[NR_OPEN];
	struct thread_struct thread;
	unsigned long trace_recursion;	/* ftrace recursion bits, <linux/trace_recursion.h> */
	struct llist_head kretprobe_instances;	/* calls a kretprobe waits on, newest first */
	int curr_ret_stack;	/* ret_stack entries in use */
	int tracing_graph_pause;	/* nonzero: function_graph hooks none of this task's calls */
	unsigned int trace_overrun;	/* calls not hooked because ret_stack was full */
	int fgraph_flags;	/* TRACE_GRAPH_FL, TRACE_GRAPH_NOTRACE (kernel/trace/trace_functions_graph.c) */
	int fgraph_depth;	/* the depth of the call that set the flag */
	struct ftrace_ret_stack ret_stack[FTRACE_RETFUNC_DEPTH];
};

/* Per-CPU data, reached through %gs. The host reads it through DWARF. */
struct pcpu_hot {
	struct pcpu_hot *self;
	struct task_struct *current_task;
	int cpu_number;
	int preempt_count;
	unsigned long top_of_stack;
	struct task_struct *idle;
	unsigned long clock_ns;	/* emulated time, written by the machine before each slice */
	unsigned long nr_switches;
	unsigned long irq_count;
	int halting;		/* set just before hlt; the machine clears it when it wakes the CPU */
};

#define HARDIRQ_OFFSET 0x10000

extern struct pcpu_hot pcpu_hot[NR_CPUS];
extern struct task_struct task_table[NR_TASKS];
extern struct list_head task_list;
extern volatile unsigned long jiffies;
extern int nr_cpus_online;

#define this_cpu_read(field)                                                   \
	({                                                                     \
		__typeof__(((struct pcpu_hot *)0)->field) __v;                 \
		__asm__ __volatile__("mov %%gs:%c1, %0"                        \
				     : "=r"(__v)                               \
				     : "i"(offsetof(struct pcpu_hot, field))); \
		__v;                                                           \
	})

static __always_inline struct task_struct *get_current(void)
{
	return this_cpu_read(current_task);
}
#define current get_current()

static __always_inline struct pcpu_hot *this_pcpu(void)
{
	return this_cpu_read(self);
}

static __always_inline int smp_processor_id(void)
{
	return this_cpu_read(cpu_number);
}

static inline notrace struct pt_regs *task_pt_regs(struct task_struct *t)
{
	return (struct pt_regs *)((char *)t->stack + THREAD_SIZE) - 1;
}

static __always_inline void set_tsk_thread_flag(struct task_struct *t, int flag)
{
	__asm__ __volatile__("lock btsq %1, %0" : "+m"(t->thread_info.flags) : "Ir"((long)flag) : "memory");
}

static __always_inline void clear_tsk_thread_flag(struct task_struct *t, int flag)
{
	__asm__ __volatile__("lock btrq %1, %0" : "+m"(t->thread_info.flags) : "Ir"((long)flag) : "memory");
}

static __always_inline int test_and_clear_tsk_thread_flag(struct task_struct *t, int flag)
{
	unsigned char old;
	__asm__ __volatile__("lock btrq %2, %0; setc %1"
			     : "+m"(t->thread_info.flags), "=qm"(old)
			     : "Ir"((long)flag)
			     : "memory");
	return old;
}

static __always_inline int test_tsk_thread_flag(struct task_struct *t, int flag)
{
	return (READ_ONCE(t->thread_info.flags) >> flag) & 1;
}

static __always_inline int need_resched(void)
{
	return test_tsk_thread_flag(current, TIF_NEED_RESCHED);
}

static __always_inline void preempt_disable(void)
{
	__asm__ __volatile__("incl %%gs:%c0" : : "i"(offsetof(struct pcpu_hot, preempt_count)) : "memory");
}

static __always_inline void preempt_enable_no_resched(void)
{
	__asm__ __volatile__("decl %%gs:%c0" : : "i"(offsetof(struct pcpu_hot, preempt_count)) : "memory");
}

static __always_inline int preempt_count(void)
{
	return this_cpu_read(preempt_count);
}

#define set_current_state(s) WRITE_ONCE(current->__state, (s))
#define __set_current_state(s) WRITE_ONCE(current->__state, (s))

/* sched/core.c */
void schedule(void);
void preempt_schedule_irq(void);
void schedule_idle(void);
int wake_up_process(struct task_struct *p);
int wake_up_state(struct task_struct *p, unsigned int state);
void scheduler_tick(void);
void sched_init(void);
void schedule_tail(struct task_struct *prev);
void resched_cpu(int cpu);
void cond_resched(void);

/* sched/timer.c */
long schedule_timeout(long timeout);
long schedule_timeout_interruptible(long timeout);
void msleep(unsigned int msecs);
unsigned long msleep_interruptible(unsigned int msecs);
void run_timers(void);
unsigned long msecs_to_jiffies(unsigned int msecs);
u64 local_clock(void);

/* fork.c */
struct task_struct *kthread_create(int (*fn)(void *), void *arg, const char *name);
struct task_struct *user_task_create(void (*entry)(void), unsigned long user_stack_top,
				     const char *name);
void init_idle(struct task_struct *idle, int cpu);
struct task_struct *idle_task_create(int cpu);
struct task_struct *find_task_by_pid(pid_t pid);

/* signal.c */
void signal_wake_up(struct task_struct *t);

/* idle.c */
void cpu_startup_entry(void) __noreturn;

/* arch */
void update_task_stack(struct task_struct *task);
void __noreturn do_exit(long code);

/* livepatch data plane, kernel/livepatch/transition.c */
extern int klp_target_state;
void klp_update_patch_state(struct task_struct *task);

#endif
