// SPDX-License-Identifier: GPL-2.0
/*
 * Fixtures for testing and measuring the trampolines from the host, as
 * kernel/trace/trace_selftest.c has its own traced test functions: a traced
 * leaf that depends on nothing, a notrace loop calling it, a handler that
 * counts and one that calls a traced function from inside the handler.
 */
#include <linux/kernel.h>
#include <linux/ftrace.h>
#include <linux/trace.h>
#include <linux/ring_buffer.h>

/* What ftrace_selftest_count_func saw last. */
struct ftrace_selftest_args {
	unsigned long ip;
	unsigned long parent_ip;
	struct ftrace_ops *op;
	struct ftrace_regs *fregs;
};

/* What op->private points to for ftrace_selftest_count_func. */
struct ftrace_selftest_counter {
	unsigned long hits;
	unsigned long last_seq;	/* ftrace_selftest_seq at its latest call: the order ops ran in */
};

struct ftrace_selftest_args ftrace_selftest_last;
unsigned long ftrace_selftest_seq;
unsigned long ftrace_selftest_recurse_calls;
int ftrace_selftest_sink;
long ftrace_selftest_depth, ftrace_selftest_max_depth;

/*
 * Traceable: an fentry site at its first byte. noipa: callers must not learn
 * that it touches no memory, since a handler it reaches through its site may.
 */
__attribute__((noipa)) int ftrace_selftest_leaf(int x)
{
	return x + 1;
}

/* n calls of the leaf; each result feeds the next, so every call is made. */
notrace noinline long ftrace_selftest_call(long n)
{
	int acc = 0;
	long i;

	for (i = 0; i < n; i++) {
		acc = ftrace_selftest_leaf(acc);
		barrier();
	}
	return acc;
}

/* Counts its calls in the struct ftrace_selftest_counter at op->private and keeps its arguments. */
notrace void ftrace_selftest_count_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
					struct ftrace_regs *fregs)
{
	struct ftrace_selftest_counter *c = op->private;

	c->hits++;
	c->last_seq = ++ftrace_selftest_seq;
	ftrace_selftest_last.ip = ip;
	ftrace_selftest_last.parent_ip = parent_ip;
	ftrace_selftest_last.op = op;
	ftrace_selftest_last.fregs = fregs;
}

/* Calls a traced function from inside the handler: only recursion protection stops it. */
notrace void ftrace_selftest_recurse_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
					  struct ftrace_regs *fregs)
{
	ftrace_selftest_recurse_calls++;
	if (++ftrace_selftest_depth > ftrace_selftest_max_depth)
		ftrace_selftest_max_depth = ftrace_selftest_depth;
	WRITE_ONCE(ftrace_selftest_sink, ftrace_selftest_leaf(0));	/* used, so gcc keeps the call */
	ftrace_selftest_depth--;
}

/* A record of any type and length through the ring buffer API, its payload bytes counting up from seed. */
notrace int trace_selftest_write(unsigned short type, unsigned long len, unsigned char seed)
{
	struct trace_entry *entry;
	unsigned char *p;
	unsigned long i;

	entry = trace_buffer_lock_reserve(&global_trace.buffer, type, len, tracing_gen_ctx());
	if (!entry)
		return 0;
	p = (unsigned char *)(entry + 1);
	for (i = 0; i + sizeof(*entry) < len; i++)
		p[i] = seed + i;
	trace_buffer_unlock_commit(&global_trace.buffer, entry);
	return 1;
}
