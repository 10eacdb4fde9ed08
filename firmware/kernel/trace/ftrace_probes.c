// SPDX-License-Identifier: GPL-2.0
/*
 * Function triggers of set_ftrace_filter (`FUNC:traceoff[:N]` and friends),
 * as kernel/trace/ftrace.c's function probes and trace_functions.c's probe
 * callbacks: each kind of trigger is one ftrace_ops whose filter holds the
 * trigger's functions; its handler finds the function's entry in the probe's
 * mapper (the remaining count) and runs the kind's callback. The machine
 * allocates and fills the probes and mappers; the counts change only here.
 */
#include <linux/kernel.h>
#include <linux/ftrace.h>
#include <linux/trace.h>
#include <linux/trace_recursion.h>
#include <linux/trace_events.h>

/* ftrace_func_mapper: a function's remaining count, -1 when unlimited. Sorted by ip. */
struct ftrace_func_map {
	unsigned long ip;
	long data;
};

struct ftrace_func_mapper {
	unsigned long count;
	struct ftrace_func_map maps[];
};

struct ftrace_func_probe;
typedef void (*ftrace_probe_func_t)(struct ftrace_func_probe *probe, unsigned long ip, unsigned long parent_ip,
				    struct ftrace_regs *fregs, long *count);

/* What a probe's ops->private points to. */
struct ftrace_func_probe {
	ftrace_probe_func_t func;
	struct ftrace_func_mapper *mapper;
	struct trace_array *tr;	/* whose tracing the traceon/traceoff probes switch */
};

static notrace long *ftrace_func_mapper_find_ip(struct ftrace_func_mapper *mapper, unsigned long ip)
{
	unsigned long lo = 0, hi;

	if (!mapper)
		return NULL;
	hi = mapper->count;
	while (lo < hi) {
		unsigned long mid = lo + (hi - lo) / 2;

		if (mapper->maps[mid].ip == ip)
			return &mapper->maps[mid].data;
		if (mapper->maps[mid].ip < ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* function_trace_probe_call: the ops handler every probe shares. */
notrace void function_trace_probe_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				       struct ftrace_regs *fregs)
{
	struct ftrace_func_probe *probe = op->private;
	long *count;
	int bit;

	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (bit < 0)
		return;
	count = ftrace_func_mapper_find_ip(READ_ONCE(probe->mapper), ip);
	if (count)
		probe->func(probe, ip, parent_ip, fregs, count);
	ftrace_test_recursion_unlock(bit);
}

/* tracing_on of the probe's trace array: its ring buffer's record_disabled. */
static __always_inline int tracer_tracing_is_on(struct trace_array *tr)
{
	return !READ_ONCE(tr->buffer.record_disabled);
}

/* update_traceon_count: only a call that changes tracing_on uses up one of the count. */
static notrace void update_traceon_count(struct trace_array *tr, long *count, int on)
{
	long old_count = READ_ONCE(*count);

	if (old_count == 0)
		return;
	if (on == tracer_tracing_is_on(tr))
		return;
	WRITE_ONCE(tr->buffer.record_disabled, !on);
	if (old_count > 0)
		WRITE_ONCE(*count, old_count - 1);
}

notrace void ftrace_traceon_probe(struct ftrace_func_probe *probe, unsigned long ip, unsigned long parent_ip,
				  struct ftrace_regs *fregs, long *count)
{
	update_traceon_count(probe->tr, count, 1);
}

notrace void ftrace_traceoff_probe(struct ftrace_func_probe *probe, unsigned long ip, unsigned long parent_ip,
				   struct ftrace_regs *fregs, long *count)
{
	update_traceon_count(probe->tr, count, 0);
}

/*
 * ftrace_stacktrace(_count): a TRACE_STACK record of the traced function and
 * its callers while tracing is on; a count is used up by each record made.
 */
notrace void ftrace_stacktrace_probe(struct ftrace_func_probe *probe, unsigned long ip, unsigned long parent_ip,
				     struct ftrace_regs *fregs, long *count)
{
	struct trace_array *tr = probe->tr;
	struct pt_regs *regs = ftrace_get_regs(fregs);
	long old_count = READ_ONCE(*count);
	unsigned int trace_ctx;

	if (!tracer_tracing_is_on(tr) || old_count == 0)
		return;
	if (old_count > 0)
		WRITE_ONCE(*count, old_count - 1);
	trace_ctx = tracing_gen_ctx_dec(tracing_gen_ctx_flags(regs ? regs->flags : arch_local_save_flags()));
	/* From the trampoline's frame for the traced function: it first, then its callers. */
	__trace_stack(tr, trace_ctx, (unsigned long)fregs + sizeof(struct pt_regs));
}

/*
 * ftrace_snapshot / ftrace_count_snapshot: the snapshot of the probe's trace
 * array, whether tracing is on or not; a count is used up by each snapshot.
 */
notrace void ftrace_snapshot_probe(struct ftrace_func_probe *probe, unsigned long ip, unsigned long parent_ip,
				   struct ftrace_regs *fregs, long *count)
{
	long old_count = READ_ONCE(*count);

	if (old_count == 0)
		return;
	if (old_count > 0)
		WRITE_ONCE(*count, old_count - 1);
	tracing_snapshot_instance(probe->tr);
}

/*
 * The event triggers of set_ftrace_filter (trace_events.c's event_enable_probe
 * and event_enable_count_probe): `FUNC:enable_event:SYS:EVENT[:N]` and
 * `disable_event`. The trigger holds the event in soft mode while it exists;
 * a call flips the event's soft-disabled flag. A function's mapper entry
 * points at the trigger's data, shared by every function one write named.
 */
struct event_probe_data {
	struct trace_event_file *file;
	long count;		/* -1: unlimited (no count written) */
	int enable;		/* enable_event: nonzero */
};

notrace void event_enable_probe(struct ftrace_func_probe *probe, unsigned long ip, unsigned long parent_ip,
				struct ftrace_regs *fregs, long *data)
{
	struct event_probe_data *edata = (struct event_probe_data *)READ_ONCE(*data);
	struct trace_event_file *file;
	u16 flags;

	if (!edata)
		return;
	file = edata->file;
	flags = READ_ONCE(file->flags);
	if (edata->count != -1) {
		/* counted: only a call that changes the event's state uses up one of the count */
		if (!edata->count)
			return;
		if (edata->enable == !(flags & EVENT_FILE_FL_SOFT_DISABLED))
			return;
		edata->count--;
	}
	if (edata->enable)
		WRITE_ONCE(file->flags, flags & ~EVENT_FILE_FL_SOFT_DISABLED);
	else
		WRITE_ONCE(file->flags, flags | EVENT_FILE_FL_SOFT_DISABLED);
}
