// SPDX-License-Identifier: GPL-2.0
/*
 * Static trace events (kernel/trace/trace_events.c and the TRACE_EVENT
 * expansions of include/trace/events/{sched,irq,module,syscalls}.h): the
 * event files the host switches, the reserve and commit every event goes
 * through (soft disable, set_event_pid, the filter, the triggers), and each
 * event's record filling. Reached only while an event is on.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/module.h>
#include <linux/trace_events.h>
#include <linux/trace.h>
#include <klpemu/hypercall.h>
#include <asm/ptrace.h>

struct trace_pid_list event_pid_list, event_notrace_pid_list;

struct trace_event_file event_sched_switch, event_sched_wakeup, event_sched_process_fork, event_sched_process_exit;
struct trace_event_file event_irq_handler_entry, event_irq_handler_exit;
struct trace_event_file event_module_load, event_module_free;
struct trace_event_file event_sys_enter, event_sys_exit;

/* lib/glob.c's glob_match: *, ? and [...] ranges, [!...] negated. */
static notrace bool glob_match(const char *pat, const char *str)
{
	const char *back_pat = NULL, *back_str = NULL;

	for (;;) {
		unsigned char c = *str++;
		unsigned char d = *pat++;

		switch (d) {
		case '?':
			if (c == '\0')
				return false;
			break;
		case '*':
			if (*pat == '\0')
				return true;
			back_pat = pat;
			back_str = --str;
			break;
		case '[': {
			bool match = false, inverted = (*pat == '!');
			const char *cls = pat + inverted;
			unsigned char a = *cls++;

			do {
				unsigned char b = a;

				if (a == '\0')
					goto literal;
				if (cls[0] == '-' && cls[1] != ']') {
					b = cls[1];
					if (b == '\0')
						goto literal;
					cls += 2;
				}
				match |= (a <= c && c <= b);
			} while ((a = *cls++) != ']');
			if (match == inverted)
				goto backtrack;
			pat = cls;
			break;
		}
		case '\\':
			d = *pat++;
			__attribute__((__fallthrough__));
		default:
literal:
			if (c == d) {
				if (d == '\0')
					return true;
				break;
			}
backtrack:
			if (c == '\0' || !back_pat)
				return false;
			pat = back_pat;
			str = ++back_str;
			break;
		}
	}
}

static notrace bool filter_pred_match(struct filter_pred *pred, void *rec)
{
	char *field = (char *)rec + pred->offset;
	s64 sval = 0;
	u64 uval = 0;
	bool r;

	switch (pred->fn) {
	case FILTER_PRED_FN_STRING:
		return glob_match(pred->str, field) ^ pred->not;
	case FILTER_PRED_FN_STRLOC:
		return glob_match(pred->str, (char *)rec + (*(u32 *)field & 0xffff)) ^ pred->not;
	case FILTER_PRED_FN_COMM:
		return glob_match(pred->str, current->comm) ^ pred->not;
	case FILTER_PRED_FN_CPU:
		sval = smp_processor_id();
		uval = sval;
		break;
	case FILTER_PRED_FN_S64:
		switch (pred->size) {
		case 1: sval = *(s8 *)field; break;
		case 2: sval = *(s16 *)field; break;
		case 4: sval = *(s32 *)field; break;
		default: sval = *(s64 *)field;
		}
		uval = sval;
		break;
	default:
		switch (pred->size) {
		case 1: uval = *(u8 *)field; break;
		case 2: uval = *(u16 *)field; break;
		case 4: uval = *(u32 *)field; break;
		default: uval = *(u64 *)field;
		}
		sval = uval;
	}
	switch (pred->cmp) {
	case FILTER_CMP_EQ: r = uval == (u64)pred->val; break;
	case FILTER_CMP_NE: r = uval != (u64)pred->val; break;
	case FILTER_CMP_BAND: r = (uval & (u64)pred->val) != 0; break;
	default:
		if (pred->fn == FILTER_PRED_FN_U64) {
			u64 v = pred->val;

			r = pred->cmp == FILTER_CMP_LT ? uval < v : pred->cmp == FILTER_CMP_LE ? uval <= v :
			    pred->cmp == FILTER_CMP_GT ? uval > v : uval >= v;
		} else {
			s64 v = pred->val;

			r = pred->cmp == FILTER_CMP_LT ? sval < v : pred->cmp == FILTER_CMP_LE ? sval <= v :
			    pred->cmp == FILTER_CMP_GT ? sval > v : sval >= v;
		}
	}
	return r ^ pred->not;
}

/* filter_match_preds: the postfix program over the record. */
static notrace bool filter_match_preds(struct filter_pred *prog, void *rec)
{
	bool stack[FILTER_STACK_MAX];
	int sp = 0;

	for (; prog->op != FILTER_OP_END; prog++) {
		switch (prog->op) {
		case FILTER_OP_PRED:
			if (sp < FILTER_STACK_MAX)
				stack[sp++] = filter_pred_match(prog, rec);
			break;
		case FILTER_OP_NOT:
			if (sp > 0)
				stack[sp - 1] = !stack[sp - 1];
			break;
		case FILTER_OP_AND:
		case FILTER_OP_OR:
			if (sp > 1) {
				sp--;
				stack[sp - 1] = prog->op == FILTER_OP_AND ? (stack[sp - 1] && stack[sp])
									  : (stack[sp - 1] || stack[sp]);
			}
			break;
		}
	}
	return sp ? stack[sp - 1] : true;
}

/* One trigger acting; a counted trigger acts only when it changes something, then counts down. */
static notrace void event_trigger_act(struct event_trigger_data *data, unsigned long fp)
{
	bool changes;

	if (!data->count)
		return;
	switch (data->trigger_type) {
	case ETT_STACKTRACE:
		__trace_stack(&global_trace, tracing_gen_ctx(), fp);
		changes = true;
		break;
	case ETT_SNAPSHOT:	/* tracing_snapshot: the host swaps the rings */
		hypercall(HC_TRACE_SNAPSHOT, 0, 0, 0);
		changes = true;
		break;
	case ETT_TRACE_ONOFF:
		changes = (!global_trace.buffer.record_disabled) != data->on;
		if (changes)
			WRITE_ONCE(global_trace.buffer.record_disabled, !data->on);
		break;
	case ETT_EVENT_ENABLE:
		changes = (!(data->target->flags & EVENT_FILE_FL_SOFT_DISABLED)) != data->on;
		if (changes) {
			if (data->on)
				data->target->flags &= ~EVENT_FILE_FL_SOFT_DISABLED;
			else
				data->target->flags |= EVENT_FILE_FL_SOFT_DISABLED;
		}
		break;
	default:
		changes = false;
	}
	if (changes && data->count > 0)
		data->count--;
}

/*
 * event_triggers_call: without a record (no trigger needs one) every trigger
 * acts; with one, a trigger acts only on a record its filter matches, and a
 * post trigger is left for event_triggers_post_call: the types returned.
 */
static notrace unsigned int event_triggers_call(struct trace_event_file *file, void *rec, unsigned long fp)
{
	struct event_trigger_data *data;
	unsigned int tt = 0;

	for (data = file->triggers; data; data = data->next) {
		if (rec && data->filter && !filter_match_preds(data->filter, rec))
			continue;
		if (rec && data->post) {
			tt |= data->trigger_type;
			continue;
		}
		event_trigger_act(data, fp);
	}
	return tt;
}

/* The post triggers whose records matched, once the record is in the ring. */
static notrace void event_triggers_post_call(struct trace_event_file *file, unsigned int tt, unsigned long fp)
{
	struct event_trigger_data *data;

	for (data = file->triggers; data; data = data->next)
		if (data->post && (data->trigger_type & tt))
			event_trigger_act(data, fp);
}

/* Where a record goes that only triggers will see: tracing off, or the event soft-disabled. */
static u64 event_temp_record[NR_CPUS][EVENT_TEMP_RECORD / 8];

static notrace bool pid_listed(struct trace_pid_list *list, pid_t pid)
{
	int i, nr = READ_ONCE(list->nr);

	for (i = 0; i < nr; i++)
		if (list->pids[i] == pid)
			return true;
	return false;
}

/* trace_ignore_this_task: a set_event_pid list that lacks pid, or set_event_notrace_pid's having it. */
static notrace bool event_pid_ignore_task(pid_t pid)
{
	return (READ_ONCE(event_pid_list.nr) && !pid_listed(&event_pid_list, pid)) ||
	       pid_listed(&event_notrace_pid_list, pid);
}

/*
 * An event is left out when both current and the other task it is about
 * (the task switched to, woken or forked; 0: none) are to be ignored.
 */
static notrace bool event_pid_ignored(pid_t other)
{
	if (!event_pid_ignore_task(current->pid))
		return false;
	if (other)
		return event_pid_ignore_task(other);
	return !READ_ONCE(event_pid_list.nr) || !pid_listed(&event_pid_list, 0);
}

notrace void *trace_event_buffer_reserve(struct trace_event_buffer *fbuffer, struct trace_event_file *file,
					 unsigned long len, pid_t other_pid)
{
	u16 flags = READ_ONCE(file->flags);
	struct trace_entry *entry;
	unsigned int ctx;

	if (!(flags & EVENT_FILE_FL_TRIGGER_COND)) {
		if (flags & EVENT_FILE_FL_TRIGGER_MODE)
			event_triggers_call(file, NULL, *(unsigned long *)__builtin_frame_address(0));
		if (flags & EVENT_FILE_FL_SOFT_DISABLED)
			return NULL;
	}
	if ((flags & EVENT_FILE_FL_PID_FILTER) && event_pid_ignored(other_pid))
		return NULL;
	fbuffer->file = file;
	fbuffer->len = len;
	fbuffer->temp = false;
	ctx = tracing_gen_ctx();
	entry = NULL;
	if (!(flags & EVENT_FILE_FL_SOFT_DISABLED))
		entry = trace_buffer_lock_reserve(&global_trace.buffer, file->event_type, len, ctx);
	if (!entry && (flags & EVENT_FILE_FL_TRIGGER_COND) && len <= EVENT_TEMP_RECORD) {
		entry = (struct trace_entry *)event_temp_record[smp_processor_id()];
		entry->type = file->event_type;
		entry->flags = ctx >> 16;
		entry->preempt_count = ctx & 0xff;
		entry->pid = current->pid;
		fbuffer->temp = true;
	}
	fbuffer->entry = entry;
	return entry;
}

/*
 * A record its filter rejects stays uncommitted: the reader never shows it.
 * Conditional and post triggers see the filled record first.
 */
notrace void trace_event_buffer_commit(struct trace_event_buffer *fbuffer)
{
	struct trace_event_file *file = fbuffer->file;
	u16 flags = READ_ONCE(file->flags);
	/* The event function's frame: a stack trace begins at the tracepoint's caller. */
	unsigned long fp = *(unsigned long *)__builtin_frame_address(0);
	unsigned int tt = 0;

	if (flags & EVENT_FILE_FL_TRIGGER_COND)
		tt = event_triggers_call(file, fbuffer->entry, fp);
	if (!fbuffer->temp && !(READ_ONCE(file->flags) & EVENT_FILE_FL_SOFT_DISABLED) &&
	    !((flags & EVENT_FILE_FL_FILTERED) && file->filter && !filter_match_preds(file->filter, fbuffer->entry)))
		trace_buffer_unlock_commit(&global_trace.buffer, fbuffer->entry);
	if (tt)
		event_triggers_post_call(file, tt, fp);
}

static notrace void set_data_loc(void *entry, u32 *loc, unsigned long offset, const char *str, unsigned long len)
{
	memcpy((char *)entry + offset, str, len);
	*loc = (len << 16) | offset;
}

/* include/trace/events/sched.h: __trace_sched_switch_state, as a TASK_REPORT bit. */
static notrace long sched_switch_state(bool preempt, struct task_struct *prev)
{
	unsigned int state = READ_ONCE(prev->__state);

	if (preempt)
		return 0x100;	/* TASK_REPORT_MAX: "R+" */
	if (state & TASK_INTERRUPTIBLE)
		return 0x1;	/* S */
	if (state & TASK_UNINTERRUPTIBLE)
		return 0x2;	/* D */
	if (state & TASK_DEAD)
		return 0x10;	/* X */
	return 0;
}

#define TASK_PRIO 120	/* every task is SCHED_NORMAL at nice 0 */

struct saved_cmdlines_buffer savedcmd;

/* trace_save_cmdline: a slot per pid, taken round robin; a new pid takes the oldest. */
static notrace void tracing_record_cmdline(struct task_struct *tsk)
{
	unsigned int num = READ_ONCE(savedcmd.cmdline_num), tpid, idx;
	char *comm;

	if (!tsk->pid || !num)
		return;
	tpid = tsk->pid & (SAVED_CMDLINES_PID_MAP - 1);
	idx = savedcmd.map_pid_to_cmdline[tpid];
	if (!idx || idx > num) {
		idx = (savedcmd.cmdline_idx + 1) % num;
		savedcmd.map_pid_to_cmdline[tpid] = idx + 1;
		savedcmd.cmdline_idx = idx;
	} else {
		idx--;
	}
	savedcmd.map_cmdline_to_pid[idx] = tsk->pid;
	comm = savedcmd.saved_cmdlines + idx * TASK_COMM_LEN;
	for (int i = 0; i < TASK_COMM_LEN; i++)	/* not memcpy: a traced function */
		comm[i] = tsk->comm[i];
}

notrace void trace_event_raw_event_sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_sched_switch *entry;
	int enabled = READ_ONCE(event_sched_switch.enabled);

	if (enabled & EVENT_ENABLED_CMDLINE) {
		tracing_record_cmdline(prev);
		tracing_record_cmdline(next);
		if (!(enabled & ~EVENT_ENABLED_CMDLINE))
			return;
	}

	entry = trace_event_buffer_reserve(&fbuffer, &event_sched_switch, sizeof(*entry), next->pid);
	if (!entry)
		return;
	memcpy(entry->prev_comm, prev->comm, TASK_COMM_LEN);
	entry->prev_pid = prev->pid;
	entry->prev_prio = TASK_PRIO;
	entry->prev_state = sched_switch_state(preempt, prev);
	memcpy(entry->next_comm, next->comm, TASK_COMM_LEN);
	entry->next_pid = next->pid;
	entry->next_prio = TASK_PRIO;
	trace_event_buffer_commit(&fbuffer);
}

notrace void trace_event_raw_event_sched_wakeup(struct task_struct *p)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_sched_wakeup_template *entry;

	entry = trace_event_buffer_reserve(&fbuffer, &event_sched_wakeup, sizeof(*entry), p->pid);
	if (!entry)
		return;
	memcpy(entry->comm, p->comm, TASK_COMM_LEN);
	entry->pid = p->pid;
	entry->prio = TASK_PRIO;
	entry->target_cpu = p->cpu;
	trace_event_buffer_commit(&fbuffer);
}

/*
 * options/event-fork (trace_filter_add_remove_task): a child of a listed
 * task joins its parent's pid lists; an exiting task leaves them.
 */
static notrace void event_pid_fork(struct trace_pid_list *list, pid_t parent, pid_t child)
{
	int nr = READ_ONCE(list->nr);

	if (nr < EVENT_PID_MAX && pid_listed(list, parent) && !pid_listed(list, child)) {
		list->pids[nr] = child;
		WRITE_ONCE(list->nr, nr + 1);
	}
}

static notrace void event_pid_exit(struct trace_pid_list *list, pid_t pid)
{
	int i, j, nr = READ_ONCE(list->nr);

	for (i = j = 0; i < nr; i++)
		if (list->pids[i] != pid)
			list->pids[j++] = list->pids[i];
	WRITE_ONCE(list->nr, j);
}

notrace void trace_event_raw_event_sched_process_fork(struct task_struct *parent, struct task_struct *child)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_sched_process_fork *entry;
	int enabled = READ_ONCE(event_sched_process_fork.enabled);

	if (enabled & EVENT_ENABLED_PID_FORK) {
		event_pid_fork(&event_pid_list, parent->pid, child->pid);
		event_pid_fork(&event_notrace_pid_list, parent->pid, child->pid);
		if (!(enabled & ~EVENT_ENABLED_PID_FORK))
			return;
	}

	entry = trace_event_buffer_reserve(&fbuffer, &event_sched_process_fork, sizeof(*entry), child->pid);
	if (!entry)
		return;
	memcpy(entry->parent_comm, parent->comm, TASK_COMM_LEN);
	entry->parent_pid = parent->pid;
	memcpy(entry->child_comm, child->comm, TASK_COMM_LEN);
	entry->child_pid = child->pid;
	trace_event_buffer_commit(&fbuffer);
}

static notrace void sched_process_exit_record(struct task_struct *p)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_sched_process_template *entry;

	entry = trace_event_buffer_reserve(&fbuffer, &event_sched_process_exit, sizeof(*entry), 0);
	if (!entry)
		return;
	memcpy(entry->comm, p->comm, TASK_COMM_LEN);
	entry->pid = p->pid;
	entry->prio = TASK_PRIO;
	trace_event_buffer_commit(&fbuffer);
}

/* The task's own exit is recorded before it leaves the pid lists. */
notrace void trace_event_raw_event_sched_process_exit(struct task_struct *p)
{
	int enabled = READ_ONCE(event_sched_process_exit.enabled);

	if (enabled & ~EVENT_ENABLED_PID_FORK)
		sched_process_exit_record(p);
	if (enabled & EVENT_ENABLED_PID_FORK) {
		event_pid_exit(&event_pid_list, p->pid);
		event_pid_exit(&event_notrace_pid_list, p->pid);
	}
}

notrace void trace_event_raw_event_irq_handler_entry(int irq, const char *name)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_irq_handler_entry *entry;
	unsigned long len = strlen(name) + 1;

	entry = trace_event_buffer_reserve(&fbuffer, &event_irq_handler_entry, sizeof(*entry) + len, 0);
	if (!entry)
		return;
	entry->irq = irq;
	set_data_loc(entry, &entry->__data_loc_name, sizeof(*entry), name, len);
	trace_event_buffer_commit(&fbuffer);
}

notrace void trace_event_raw_event_irq_handler_exit(int irq, int ret)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_irq_handler_exit *entry;

	entry = trace_event_buffer_reserve(&fbuffer, &event_irq_handler_exit, sizeof(*entry), 0);
	if (!entry)
		return;
	entry->irq = irq;
	entry->ret = ret;
	trace_event_buffer_commit(&fbuffer);
}

notrace void trace_event_raw_event_module_load(struct module *mod)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_module_load *entry;
	unsigned long len = strlen(mod->name) + 1;

	entry = trace_event_buffer_reserve(&fbuffer, &event_module_load, sizeof(*entry) + len, 0);
	if (!entry)
		return;
	entry->taints = mod->taints;
	set_data_loc(entry, &entry->__data_loc_name, sizeof(*entry), mod->name, len);
	trace_event_buffer_commit(&fbuffer);
}

notrace void trace_event_raw_event_module_free(struct module *mod)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_module_free *entry;
	unsigned long len = strlen(mod->name) + 1;

	entry = trace_event_buffer_reserve(&fbuffer, &event_module_free, sizeof(*entry) + len, 0);
	if (!entry)
		return;
	set_data_loc(entry, &entry->__data_loc_name, sizeof(*entry), mod->name, len);
	trace_event_buffer_commit(&fbuffer);
}

notrace void trace_event_raw_event_sys_enter(struct pt_regs *regs, long id)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_sys_enter *entry;

	entry = trace_event_buffer_reserve(&fbuffer, &event_sys_enter, sizeof(*entry), 0);
	if (!entry)
		return;
	entry->id = id;
	entry->args[0] = regs->di;
	entry->args[1] = regs->si;
	entry->args[2] = regs->dx;
	entry->args[3] = regs->r10;
	entry->args[4] = regs->r8;
	entry->args[5] = regs->r9;
	trace_event_buffer_commit(&fbuffer);
}

notrace void trace_event_raw_event_sys_exit(struct pt_regs *regs, long ret)
{
	struct trace_event_buffer fbuffer;
	struct trace_event_raw_sys_exit *entry;

	entry = trace_event_buffer_reserve(&fbuffer, &event_sys_exit, sizeof(*entry), 0);
	if (!entry)
		return;
	entry->id = regs->orig_ax;
	entry->ret = ret;
	trace_event_buffer_commit(&fbuffer);
}
