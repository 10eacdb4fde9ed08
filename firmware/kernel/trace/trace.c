// SPDX-License-Identifier: GPL-2.0
/*
 * Records any tracer may write (kernel/trace/trace.c): a stack trace, a
 * message. Notrace: they run inside tracers' handlers.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/trace.h>
#include <linux/fgraph.h>
#include <linux/ring_buffer.h>

extern char _stext[];

/*
 * A TRACE_STACK record of the frame-pointer chain from fp (a frame: the
 * caller's fp, then a return address), within fp's THREAD_SIZE-aligned
 * stack; return addresses function_graph replaced come back as the real ones.
 */
notrace void __trace_stack(struct trace_array *tr, unsigned int trace_ctx, unsigned long fp)
{
	unsigned long lo = fp & ~(THREAD_SIZE - 1), hi = lo + THREAD_SIZE;
	unsigned long callers[FTRACE_STACK_ENTRIES];
	struct stack_entry *entry;
	int n = 0;

	while (n < FTRACE_STACK_ENTRIES && !(fp & 7) && fp >= lo && fp + 16 <= hi) {
		unsigned long *frame = (unsigned long *)fp;
		unsigned long ret = ftrace_graph_ret_addr(current, NULL, frame[1], &frame[1]);

		if (ret < (unsigned long)_stext)
			break;
		callers[n++] = ret;
		if (frame[0] <= fp)
			break;
		fp = frame[0];
	}
	entry = trace_buffer_lock_reserve(&tr->buffer, TRACE_STACK, sizeof(*entry) + n * sizeof(long), trace_ctx);
	if (!entry)
		return;
	entry->size = n;
	for (int i = 0; i < n; i++)	/* not memcpy: a traced function */
		entry->caller[i] = callers[i];
	trace_buffer_unlock_commit(&tr->buffer, &entry->ent);
}

/* trace_puts(): a TRACE_PRINT record of size bytes of str; returns size, or 0 if none was written. */
notrace int __trace_puts(struct trace_array *tr, unsigned long ip, const char *str, int size)
{
	struct print_entry *entry;

	entry = trace_buffer_lock_reserve(&tr->buffer, TRACE_PRINT, sizeof(*entry) + size + 1, tracing_gen_ctx());
	if (!entry)
		return 0;
	entry->ip = ip;
	for (int i = 0; i < size; i++)
		entry->buf[i] = str[i];
	entry->buf[size] = '\0';
	trace_buffer_unlock_commit(&tr->buffer, &entry->ent);
	return size;
}

/*
 * trace_marker's writer: the message as a TRACE_PRINT record whose ip is this
 * function. (The host writes a marker from the shell into the same layout.)
 */
notrace int tracing_mark_write(struct trace_array *tr, const char *buf, int cnt)
{
	return __trace_puts(tr, (unsigned long)tracing_mark_write, buf, cnt);
}

/*
 * The snapshot (kernel/trace/trace.c's tracing_snapshot_instance and
 * update_max_tr): the trace array's ring and its spare buffer trade their
 * per-CPU rings, contents and all; each buffer keeps its own switches
 * (record_disabled, clock). Without a spare buffer the trace says so and
 * tracing stops, as Linux does. The snapshot file's host side trades the
 * same fields.
 */
notrace void tracing_snapshot_instance(struct trace_array *tr)
{
	static const char not_allocated[] = "*** SNAPSHOT NOT ALLOCATED ***\n";
	static const char stopping[] = "*** stopping trace here!   ***\n";
	struct trace_buffer *spare = READ_ONCE(tr->snapshot);
	unsigned long flags;

	if (!spare) {
		__trace_puts(tr, (unsigned long)tracing_snapshot_instance, not_allocated, sizeof(not_allocated) - 1);
		__trace_puts(tr, (unsigned long)tracing_snapshot_instance, stopping, sizeof(stopping) - 1);
		WRITE_ONCE(tr->buffer.record_disabled, 1);
		return;
	}
	flags = local_irq_save();
	for (int cpu = 0; cpu < NR_CPUS; cpu++) {
		struct ring_buffer_per_cpu *a = &tr->buffer.buffers[cpu], *b = &spare->buffers[cpu];
		int a_off = a->record_disabled, b_off = b->record_disabled;
		struct ring_buffer_per_cpu t = *a;	/* plain copies: memcpy is traced */

		*a = *b;
		*b = t;
		a->record_disabled = a_off;
		b->record_disabled = b_off;
	}
	local_irq_restore(flags);
}
