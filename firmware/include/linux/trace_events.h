/*
 * Static trace events (include/linux/tracepoint.h, include/trace/events/ headers,
 * kernel/trace/trace_events.c): each event has a struct trace_event_file the
 * host fills from tracefs (enable, set_event, filter, trigger, set_event_pid)
 * and a record struct whose DWARF layout is the event's `format`.
 *
 * A call site costs one test of the event's `enabled` flag while the event is
 * off; on, it reserves a record in the trace ring, fills it and commits it,
 * and the event's filter and triggers run in the guest too.
 */
#ifndef _LINUX_TRACE_EVENTS_H
#define _LINUX_TRACE_EVENTS_H

#include <linux/types.h>
#include <linux/compiler.h>
#include <linux/ring_buffer.h>

/* trace_event_file.flags; an enum so that the emulator reads them from DWARF. */
enum event_file_flags {
	EVENT_FILE_FL_SOFT_MODE = 1,		/* held on by an enable_event/disable_event trigger */
	EVENT_FILE_FL_SOFT_DISABLED = 2,	/* on, but recording nothing until a trigger enables it */
	EVENT_FILE_FL_TRIGGER_MODE = 4,		/* has triggers */
	EVENT_FILE_FL_FILTERED = 8,		/* has a filter */
	EVENT_FILE_FL_PID_FILTER = 16,		/* set_event_pid applies */
	EVENT_FILE_FL_TRIGGER_COND = 32,	/* a trigger needs the record: a filter, or runs after it */
};

/* A filter, compiled by the host into a postfix program of predicates. */
enum filter_op_ids {
	FILTER_OP_PRED = 0,	/* push the predicate's result */
	FILTER_OP_AND,
	FILTER_OP_OR,
	FILTER_OP_NOT,
	FILTER_OP_END,
};

enum filter_pred_fn {
	FILTER_PRED_FN_NOP = 0,
	FILTER_PRED_FN_S64,	/* signed field, compared as s64 */
	FILTER_PRED_FN_U64,	/* unsigned field */
	FILTER_PRED_FN_STRING,	/* char array: glob match */
	FILTER_PRED_FN_STRLOC,	/* __data_loc string */
	FILTER_PRED_FN_COMM,	/* current->comm */
	FILTER_PRED_FN_CPU,	/* smp_processor_id() */
};

enum filter_cmp {
	FILTER_CMP_EQ = 0,
	FILTER_CMP_NE,
	FILTER_CMP_LT,
	FILTER_CMP_LE,
	FILTER_CMP_GT,
	FILTER_CMP_GE,
	FILTER_CMP_BAND,	/* & */
	FILTER_CMP_GLOB,	/* ~, and == / != on strings (with not) */
};

enum {
	FILTER_STACK_MAX = 32,
	EVENT_PID_MAX = 32,
};

struct filter_pred {
	u8 op;			/* enum filter_op_ids */
	u8 fn;			/* enum filter_pred_fn */
	u8 cmp;			/* enum filter_cmp */
	u8 not;			/* negate the comparison (!=, !~) */
	u16 offset;		/* of the field in the record */
	u16 size;		/* of the field */
	s64 val;		/* the number compared with */
	const char *str;	/* the glob compared with */
};

/* Event triggers (kernel/trace/trace_events_trigger.c). */
enum event_trigger_type {
	ETT_NONE = 0,
	ETT_TRACE_ONOFF = 1,
	ETT_SNAPSHOT = 2,
	ETT_EVENT_ENABLE = 4,
	ETT_STACKTRACE = 8,
};

struct event_trigger_data {
	u8 trigger_type;	/* enum event_trigger_type */
	u8 on;			/* traceon / enable_event: 1; traceoff / disable_event: 0 */
	u8 post;		/* runs after the record is committed (traceoff, stacktrace) */
	long count;		/* -1: unlimited */
	struct filter_pred *filter;	/* `if FILTER`: acts only on records it matches */
	struct trace_event_file *target;	/* enable_event's event */
	struct event_trigger_data *next;
};

struct trace_event_file {
	int enabled;		/* the one test a call site makes: nonzero, the event may record */
	u16 event_type;		/* its record type */
	u16 flags;		/* enum event_file_flags */
	struct filter_pred *filter;	/* NULL: every record is kept */
	struct event_trigger_data *triggers;
};

/*
 * set_event_pid: the pids whose events are recorded (nr 0: every pid);
 * set_event_notrace_pid: the pids whose events are not.
 */
struct trace_pid_list {
	int nr;
	pid_t pids[EVENT_PID_MAX];
};
extern struct trace_pid_list event_pid_list, event_notrace_pid_list;

/*
 * saved_cmdlines (kernel/trace/trace.c): the comms of the tasks switched
 * while tracing records, so that a record of a task since gone still shows
 * its name. The host allocates the tables; cmdline_num 0: nothing is saved.
 * Saving is on while event_sched_switch.enabled has EVENT_ENABLED_CMDLINE.
 */
enum {
	SAVED_CMDLINES_PID_MAP = 1024,	/* pids hash here; a slot holds its index + 1 */
	EVENT_ENABLED_CMDLINE = 2,
	EVENT_ENABLED_PID_FORK = 4,	/* options/event-fork: on sched_process_fork and _exit */
};

struct saved_cmdlines_buffer {
	unsigned int cmdline_num;
	unsigned int cmdline_idx;	/* the slot last taken */
	unsigned int map_pid_to_cmdline[SAVED_CMDLINES_PID_MAP];
	int *map_cmdline_to_pid;
	char *saved_cmdlines;		/* cmdline_num comms of TASK_COMM_LEN */
};
extern struct saved_cmdlines_buffer savedcmd;

/* The largest record a soft-disabled or tracing-off event fills for its triggers. */
#define EVENT_TEMP_RECORD 512

struct trace_event_buffer {
	struct trace_event_file *file;
	struct trace_entry *entry;
	unsigned long len;
	bool temp;		/* entry is the CPU's scratch record, never committed */
};

void *trace_event_buffer_reserve(struct trace_event_buffer *fbuffer, struct trace_event_file *file,
				 unsigned long len, pid_t other_pid);
void trace_event_buffer_commit(struct trace_event_buffer *fbuffer);

/*
 * DEFINE_EVENT's pieces: the file, the record's struct (its DWARF is the
 * format), and the call site's inline test. `trace_NAME(args)` costs a load
 * and a branch while the event is off.
 */
#define DECLARE_TRACE_EVENT(name, proto, args)						\
	extern struct trace_event_file event_##name;					\
	void trace_event_raw_event_##name(proto);					\
	static __always_inline void trace_##name(proto)					\
	{										\
		if (unlikely(READ_ONCE(event_##name.enabled)))				\
			trace_event_raw_event_##name(args);				\
	}

#define PARAMS(args...) args

struct task_struct;
struct module;
struct pt_regs;

DECLARE_TRACE_EVENT(sched_switch, PARAMS(bool preempt, struct task_struct *prev, struct task_struct *next),
		    PARAMS(preempt, prev, next))
DECLARE_TRACE_EVENT(sched_wakeup, PARAMS(struct task_struct *p), PARAMS(p))
DECLARE_TRACE_EVENT(sched_process_fork, PARAMS(struct task_struct *parent, struct task_struct *child),
		    PARAMS(parent, child))
DECLARE_TRACE_EVENT(sched_process_exit, PARAMS(struct task_struct *p), PARAMS(p))
DECLARE_TRACE_EVENT(irq_handler_entry, PARAMS(int irq, const char *name), PARAMS(irq, name))
DECLARE_TRACE_EVENT(irq_handler_exit, PARAMS(int irq, int ret), PARAMS(irq, ret))
DECLARE_TRACE_EVENT(module_load, PARAMS(struct module *mod), PARAMS(mod))
DECLARE_TRACE_EVENT(module_free, PARAMS(struct module *mod), PARAMS(mod))
DECLARE_TRACE_EVENT(sys_enter, PARAMS(struct pt_regs *regs, long id), PARAMS(regs, id))
DECLARE_TRACE_EVENT(sys_exit, PARAMS(struct pt_regs *regs, long ret), PARAMS(regs, ret))

/* The records (TP_STRUCT__entry); __data_loc strings are u32 fields named __data_loc_NAME. */
struct trace_event_raw_sched_switch {
	struct trace_entry ent;
	char prev_comm[16];
	pid_t prev_pid;
	int prev_prio;
	long prev_state;
	char next_comm[16];
	pid_t next_pid;
	int next_prio;
};

struct trace_event_raw_sched_wakeup_template {
	struct trace_entry ent;
	char comm[16];
	pid_t pid;
	int prio;
	int target_cpu;
};

struct trace_event_raw_sched_process_fork {
	struct trace_entry ent;
	char parent_comm[16];
	pid_t parent_pid;
	char child_comm[16];
	pid_t child_pid;
};

struct trace_event_raw_sched_process_template {
	struct trace_entry ent;
	char comm[16];
	pid_t pid;
	int prio;
};

struct trace_event_raw_irq_handler_entry {
	struct trace_entry ent;
	int irq;
	u32 __data_loc_name;
};

struct trace_event_raw_irq_handler_exit {
	struct trace_entry ent;
	int irq;
	int ret;
};

struct trace_event_raw_module_load {
	struct trace_entry ent;
	unsigned int taints;
	u32 __data_loc_name;
};

struct trace_event_raw_module_free {
	struct trace_entry ent;
	u32 __data_loc_name;
};

struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};

struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
};

#endif
