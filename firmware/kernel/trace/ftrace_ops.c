// SPDX-License-Identifier: GPL-2.0
/*
 * The ops list the trampolines' call slots reach, and the functions that walk
 * or guard it: the list function (several ops on a site, or one dynamic ops),
 * the assist (recursion protection for an ops that asks ftrace for it) and the
 * filter test. The machine links ops into ftrace_ops_list, fills their hashes
 * and points call slots here; this file only reads what it wrote. Everything
 * here is notrace: a traced list function would trace itself.
 */
#include <linux/kernel.h>
#include <linux/ftrace.h>
#include <linux/trace.h>
#include <linux/trace_recursion.h>
#include <linux/kprobes.h>

struct ftrace_ops ftrace_list_end = {
	.func = ftrace_stub,
	.flags = FTRACE_OPS_FL_STUB,
};

/* Newest registered first; always ends with &ftrace_list_end. */
struct ftrace_ops *ftrace_ops_list = &ftrace_list_end;
/* What ftrace_caller_op_ptr / ftrace_regs_caller_op_ptr load into the third argument. */
struct ftrace_ops *function_trace_op = &ftrace_list_end;

unsigned long ftrace_recursion_missed;

/* 1: ftrace_caller lets a handler redirect (mainline since 5.11); 0: the older rule, only ftrace_regs_caller. */
int ftrace_caller_can_redirect = 1;

/* __ftrace_lookup_ip: binary search of a sorted hash. No hash or an empty one holds nothing. */
notrace bool ftrace_lookup_ip(struct ftrace_hash *hash, unsigned long ip)
{
	unsigned long lo = 0, hi;

	if (!hash)
		return false;
	hi = hash->count;
	while (lo < hi) {
		unsigned long mid = lo + (hi - lo) / 2;
		unsigned long v = hash->ips[mid];

		if (v == ip)
			return true;
		if (v < ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static __always_inline bool ftrace_hash_empty(struct ftrace_hash *hash)
{
	return !hash || !hash->count;
}

/*
 * Whether op traces ip: an ops that wants pt_regs is not called without them
 * (from ftrace_caller); otherwise the filter hash, empty meaning every
 * function, must hold ip and the notrace hash must not.
 */
notrace int ftrace_ops_test(struct ftrace_ops *ops, unsigned long ip, void *regs)
{
	if (!regs && (ops->flags & FTRACE_OPS_FL_SAVE_REGS))
		return 0;
	return (ftrace_hash_empty(ops->filter_hash) || ftrace_lookup_ip(ops->filter_hash, ip)) &&
	       (ftrace_hash_empty(ops->notrace_hash) || !ftrace_lookup_ip(ops->notrace_hash, ip));
}

/* __ftrace_ops_list_func: every matching ops on the list, in list order, once per call. */
notrace void ftrace_ops_list_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *ignored,
				  struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	struct ftrace_ops *op;
	int bit;

	bit = trace_test_and_set_recursion(ip, parent_ip, TRACE_LIST_START);
	if (bit < 0)
		return;
	for (op = READ_ONCE(ftrace_ops_list); op != &ftrace_list_end; op = READ_ONCE(op->next)) {
		/* Stub functions need neither a test nor a call. */
		if (op->flags & FTRACE_OPS_FL_STUB)
			continue;
		if (ftrace_ops_test(op, ip, regs))
			op->func(ip, parent_ip, op, fregs);
	}
	trace_clear_recursion(bit);
}

/* For an ops with FTRACE_OPS_FL_RECURSION: ftrace's own recursion guard around its handler. */
notrace void ftrace_ops_assist_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				    struct ftrace_regs *fregs)
{
	int bit;

	bit = trace_test_and_set_recursion(ip, parent_ip, TRACE_LIST_START);
	if (bit < 0)
		return;
	op->func(ip, parent_ip, op, fregs);
	trace_clear_recursion(bit);
}
NOKPROBE_SYMBOL(ftrace_ops_list_func);
NOKPROBE_SYMBOL(ftrace_ops_assist_func);
