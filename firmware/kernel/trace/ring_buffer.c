// SPDX-License-Identifier: GPL-2.0
/*
 * The trace ring buffer's slow paths (the API and its inline fast path are in
 * include/linux/ring_buffer.h). Everything here is notrace: the writer runs
 * inside tracers' handlers.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/ring_buffer.h>

/* The top-level tracing directory's trace array; the host maps its rings at boot. */
struct trace_array global_trace;

/* trace_clock global or counter (local is inline in the reserve). */
notrace u64 trace_clock_other(struct trace_buffer *buffer)
{
	u64 now, last;

	if (buffer->clock == TRACE_CLOCK_COUNTER) {
		now = 1;
		__asm__ __volatile__("lock xaddq %0, %1" : "+r"(now), "+m"(buffer->counter) : : "memory");
		return now;
	}
	/* global: never behind any stamp another CPU already took. */
	now = local_clock();
	last = READ_ONCE(buffer->global_last);
	while (now > last) {
		u64 seen = last;

		__asm__ __volatile__("lock cmpxchgq %2, %1" : "+a"(seen), "+m"(buffer->global_last) : "r"(now) : "memory");
		if (seen == last)
			return now;
		last = seen;
	}
	return last;
}

/*
 * The writer's page is full (or there is none since the reset): begin the
 * next one, overwriting the oldest, whose records are lost. NULL: no ring.
 */
notrace struct buffer_data_page *rb_move_tail(struct ring_buffer_per_cpu *cpu_buffer, u64 ts)
{
	struct buffer_data_page *page;
	unsigned long n = cpu_buffer->tail;

	if (!cpu_buffer->nr_pages)
		return NULL;
	page = (struct buffer_data_page *)(cpu_buffer->pages + (n % cpu_buffer->nr_pages) * PAGE_SIZE);
	if (n >= cpu_buffer->nr_pages)
		cpu_buffer->overrun += page->entries;
	cpu_buffer->tail = n + 1;
	page->time_stamp = ts;
	page->commit = 0;
	page->entries = 0;
	cpu_buffer->tail_page = page;
	return page;
}
