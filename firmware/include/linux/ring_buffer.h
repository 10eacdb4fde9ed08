/*
 * The trace ring buffer: typed records of varying length in per-CPU rings of
 * pages, as kernel/trace/ring_buffer.c keeps them, and the API other guest
 * code writes records through (the function tracer, function_graph, trace
 * events, trace_marker).
 *
 * Writing a record, from any context (task, interrupt, with or without a
 * recursion lock of one's own):
 *
 *	struct my_entry *entry;
 *
 *	entry = trace_buffer_lock_reserve(buffer, TYPE, sizeof(*entry), tracing_gen_ctx());
 *	if (!entry)
 *		return;		// tracing off, this CPU disabled, or no ring yet
 *	entry->field = ...;	// the common header (struct trace_entry) is already filled
 *	trace_buffer_unlock_commit(buffer, &entry->ent);
 *
 * - struct my_entry starts with `struct trace_entry ent`; len is the size of
 *   the whole record (header included) and at most BUF_MAX_DATA_SIZE.
 * - TYPE is an enum trace_type value, or a type the host registered for an
 *   event (>= __TRACE_LAST_TYPE); the host formats each line of `trace` with
 *   the decoder registered for the type (klpemu/kernel/ftrace/trace_output.py)
 *   and prints "Unknown type N" for a type without one.
 * - trace_ctx is tracing_gen_ctx() (flags << 16 | preempt depth), or
 *   tracing_gen_ctx_dec() from a handler that took a preempt level itself.
 * - Reserving claims the space with interrupts off, so a record written by an
 *   interrupt between reserve and commit gets its own space; the host shows
 *   only committed records.
 * - When the ring is full the writer moves onto its oldest page: every record
 *   on it is lost and counted in overrun (Linux's default overwrite mode).
 *
 * The buffer a writer uses is its trace array's: &global_trace.buffer, or an
 * instance's (tr->buffer). The host maps the pages and sizes the rings
 * (buffer_size_kb); a CPU whose ring has no pages yet records nothing.
 */
#ifndef _LINUX_RING_BUFFER_H
#define _LINUX_RING_BUFFER_H

#include <linux/types.h>
#include <linux/compiler.h>
#include <linux/sched.h>
#include <linux/mm.h>
#include <linux/trace_recursion.h>
#include <asm/irqflags.h>
#include <asm/segment.h>

/* kernel/trace/trace.h's enum trace_type: the record types of the trace output. */
enum trace_type {
	__TRACE_FIRST_TYPE = 0,
	TRACE_FN,
	TRACE_CTX,
	TRACE_WAKE,
	TRACE_STACK,
	TRACE_PRINT,
	TRACE_BPRINT,
	TRACE_MMIO_RW,
	TRACE_MMIO_MAP,
	TRACE_BRANCH,
	TRACE_GRAPH_RET,
	TRACE_GRAPH_ENT,
	TRACE_USER_STACK,
	TRACE_BLK,
	TRACE_BPUTS,
	TRACE_HWLAT,
	TRACE_OSNOISE,
	TRACE_TIMERLAT,
	TRACE_RAW_DATA,
	TRACE_FUNC_REPEATS,
	__TRACE_LAST_TYPE,
};

enum trace_flag_type {
	TRACE_FLAG_IRQS_OFF = 0x01,
	TRACE_FLAG_NEED_RESCHED = 0x04,
	TRACE_FLAG_HARDIRQ = 0x08,
	TRACE_FLAG_SOFTIRQ = 0x10,
	TRACE_FLAG_PREEMPT_RESCHED = 0x20,
	TRACE_FLAG_NMI = 0x40,
};

/* include/linux/trace_events.h: the common fields every record starts with. */
struct trace_entry {
	unsigned short type;	/* enum trace_type, or an event's registered type */
	unsigned char flags;	/* enum trace_flag_type */
	unsigned char preempt_count;	/* preempt depth, as tracing_gen_ctx() reports it */
	int pid;
};

/* The ring's own header in front of each record. */
struct ring_buffer_event {
	u32 len;	/* bytes, this header included; a multiple of 8 */
	u32 committed;	/* nonzero once the writer committed the record */
	u64 ts;		/* the buffer's trace_clock at reserve */
};

/* One page of a CPU's ring: records packed from data[0] up to commit. */
struct buffer_data_page {
	u64 time_stamp;	/* the first record's */
	u32 commit;	/* bytes of data[] in use */
	u32 entries;	/* records on the page, lost as one when the writer overwrites it */
	unsigned char data[];
};

#define BUF_PAGE_HDR_SIZE offsetof(struct buffer_data_page, data)
#define BUF_PAGE_SIZE (PAGE_SIZE - BUF_PAGE_HDR_SIZE)
#define BUF_MAX_DATA_SIZE (BUF_PAGE_SIZE - sizeof(struct ring_buffer_event))

/* trace_clock: what stamps the records (tracefs trace_clock). */
enum trace_clock_id {
	TRACE_CLOCK_LOCAL,	/* this CPU's clock, ns */
	TRACE_CLOCK_GLOBAL,	/* ns, never going backwards across CPUs */
	TRACE_CLOCK_COUNTER,	/* an atomic count of records, not a time */
};

struct ring_buffer_per_cpu {
	unsigned long pages;	/* the ring's first page; page i at pages + i * PAGE_SIZE */
	unsigned long nr_pages;	/* 0: no ring, nothing recorded */
	unsigned long tail;	/* pages begun since the reset; the writer's is (tail - 1) % nr_pages */
	struct buffer_data_page *tail_page;	/* NULL until the first record after a reset */
	unsigned long entries;	/* records written since the reset ("entries-written") */
	unsigned long overrun;	/* of those, lost when their page was overwritten */
	int record_disabled;	/* nonzero: this CPU records nothing */
};

struct trace_buffer {
	int record_disabled;	/* nonzero: nobody records (tracing_on 0) */
	int clock;		/* enum trace_clock_id */
	u64 counter;		/* TRACE_CLOCK_COUNTER's count */
	u64 global_last;	/* TRACE_CLOCK_GLOBAL's latest stamp */
	struct ring_buffer_per_cpu buffers[NR_CPUS];
};

/* A trace array: the top-level tracing directory or an instance. */
struct trace_array {
	struct trace_buffer buffer;
	struct trace_buffer *snapshot;	/* the spare buffer (max_buffer); NULL until allocated */
};

extern struct trace_array global_trace;

/*
 * tracing_gen_ctx(): flags << 16 | preempt depth, for the record's trace_entry,
 * eflags being the interrupted context's (regs->flags) or the current ones.
 */
static __always_inline unsigned int tracing_gen_ctx_flags(unsigned long eflags)
{
	unsigned int pc = preempt_count();
	unsigned int flags = 0;

	if (!(eflags & X86_EFLAGS_IF))
		flags |= TRACE_FLAG_IRQS_OFF;
	if (pc & NMI_MASK)
		flags |= TRACE_FLAG_NMI;
	if (pc & HARDIRQ_MASK)
		flags |= TRACE_FLAG_HARDIRQ;
	if (pc & SOFTIRQ_OFFSET)
		flags |= TRACE_FLAG_SOFTIRQ;
	if (test_tsk_thread_flag(current, TIF_NEED_RESCHED))
		flags |= TRACE_FLAG_NEED_RESCHED;
	return (flags << 16) | (pc & 0xff);
}

static __always_inline unsigned int tracing_gen_ctx(void)
{
	return tracing_gen_ctx_flags(arch_local_save_flags());
}

/* From a handler that holds one preempt level of its own (a recursion lock): one level less. */
static __always_inline unsigned int tracing_gen_ctx_dec(unsigned int trace_ctx)
{
	return (trace_ctx & 0xff) ? trace_ctx - 1 : trace_ctx;
}

/* kernel/trace/ring_buffer.c: the slow paths the inline reserve calls. */
u64 trace_clock_other(struct trace_buffer *buffer);
struct buffer_data_page *rb_move_tail(struct ring_buffer_per_cpu *cpu_buffer, u64 ts);

/*
 * Claims len bytes (the record, its struct trace_entry included) on this CPU's
 * ring and fills the common fields; NULL when nothing may be recorded. Inline:
 * it is on the path of every traced call.
 */
static __always_inline void *trace_buffer_lock_reserve(struct trace_buffer *buffer, unsigned short type,
						       unsigned long len, unsigned int trace_ctx)
{
	struct ring_buffer_per_cpu *cpu_buffer;
	struct buffer_data_page *page;
	struct ring_buffer_event *event;
	struct trace_entry *entry;
	unsigned long flags, length;
	u64 ts;

	if (unlikely(READ_ONCE(buffer->record_disabled)))
		return NULL;
	cpu_buffer = &buffer->buffers[smp_processor_id()];
	if (unlikely(READ_ONCE(cpu_buffer->record_disabled)))
		return NULL;
	length = (sizeof(*event) + len + 7) & ~7UL;
	if (unlikely(length > BUF_PAGE_SIZE))
		return NULL;

	/* Claim the space with interrupts off: an interrupt's record then goes after ours. */
	flags = local_irq_save();
	ts = likely(buffer->clock == TRACE_CLOCK_LOCAL) ? local_clock() : trace_clock_other(buffer);
	page = cpu_buffer->tail_page;
	if (unlikely(!page || page->commit + length > BUF_PAGE_SIZE)) {
		page = rb_move_tail(cpu_buffer, ts);
		if (unlikely(!page)) {
			local_irq_restore(flags);
			return NULL;
		}
	}
	event = (struct ring_buffer_event *)(page->data + page->commit);
	page->commit += length;
	page->entries++;
	cpu_buffer->entries++;
	event->len = length;
	event->committed = 0;
	event->ts = ts;
	local_irq_restore(flags);	/* a compiler barrier too: the header is written before the fields */

	entry = (struct trace_entry *)(event + 1);
	entry->type = type;
	entry->flags = trace_ctx >> 16;
	entry->preempt_count = trace_ctx & 0xff;
	entry->pid = current->pid;
	return entry;
}

/* Makes the record visible to readers. */
static __always_inline void trace_buffer_unlock_commit(struct trace_buffer *buffer, struct trace_entry *entry)
{
	barrier();
	WRITE_ONCE(((struct ring_buffer_event *)entry - 1)->committed, 1);
}

#endif
