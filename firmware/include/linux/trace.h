/*
 * ftrace's data plane in the guest: the trampolines' labels, the list
 * function and the assist, the function tracer's per-CPU ring buffers and the
 * native handlers the machine installs in call slots; the function tracer
 * writes its records through the ring buffer (linux/ring_buffer.h). Names follow Linux
 * (arch/x86/kernel/ftrace_64.S, kernel/trace/{ftrace.c,trace.h,trace_functions.c}).
 */
#ifndef _LINUX_TRACE_H
#define _LINUX_TRACE_H

#include <linux/types.h>
#include <linux/compiler.h>
#include <linux/ftrace.h>
#include <linux/sched.h>
#include <linux/ring_buffer.h>

/*
 * arch/x86/kernel/ftrace_64.S. Each [caller, caller_end) is a self-contained
 * template, ret included: a copy runs anywhere once its two marked
 * instructions are fixed up: *_op_ptr, a 7-byte `movq disp32(%rip), %rdx`
 * (48 8b 15 disp32) that loads the ops, and the call slot ftrace_call /
 * ftrace_regs_call, a 5-byte `call rel32` (e8 rel32) to the handler.
 */
extern char ftrace_caller[], ftrace_caller_op_ptr[], ftrace_call[], ftrace_caller_end[];
extern char ftrace_regs_caller[], ftrace_regs_caller_op_ptr[], ftrace_regs_call[],
	ftrace_regs_caller_jmp[], ftrace_regs_caller_end[];
/* pt_regs (168 bytes) + the 5 frame-pointer words pushed before it (40) */
#define MCOUNT_REG_SIZE (168 + 40)

/*
 * Whether ftrace_caller copies regs->ip back into its return slot: 1, the
 * mainline rule since 5.11 (DYNAMIC_FTRACE_WITH_ARGS); 0, the older rule in
 * which only ftrace_regs_caller can redirect. ftrace_regs_caller always can.
 */
extern int ftrace_caller_can_redirect;

/* kernel/trace/ftrace_ops.c */
bool ftrace_lookup_ip(struct ftrace_hash *hash, unsigned long ip);
int ftrace_ops_test(struct ftrace_ops *ops, unsigned long ip, void *regs);
void ftrace_ops_assist_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			    struct ftrace_regs *fregs);

/* kernel/trace/trace_entries.h's TRACE_FN record: one per call the function tracer sees. */
struct ftrace_entry {
	struct trace_entry ent;
	unsigned long ip;	/* the traced function */
	unsigned long parent_ip;	/* its caller's return address */
};

/* TRACE_PRINT: a message (trace_marker's, __trace_puts'), ip the writer. */
struct print_entry {
	struct trace_entry ent;
	unsigned long ip;
	char buf[];		/* NUL-terminated */
};

/* TRACE_STACK: return addresses, innermost first (func_stack_trace, the :stacktrace trigger). */
struct stack_entry {
	struct trace_entry ent;
	int size;		/* entries in caller[] */
	unsigned long caller[];
};

#define FTRACE_STACK_ENTRIES 32

/* kernel/trace/trace.c */
void __trace_stack(struct trace_array *tr, unsigned int trace_ctx, unsigned long fp);
int __trace_puts(struct trace_array *tr, unsigned long ip, const char *str, int size);
int tracing_mark_write(struct trace_array *tr, const char *buf, int cnt);
void tracing_snapshot_instance(struct trace_array *tr);

extern struct ftrace_ops function_trace_ops;
/* The function tracer with func_stack_trace: a TRACE_FN record, then a TRACE_STACK one. */
void function_stack_trace_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			       struct ftrace_regs *fregs);

void function_trace_call(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			 struct ftrace_regs *fregs);
/* Redirects the traced call to op->private (a function's entry address). */
void ftrace_redirect_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			  struct ftrace_regs *fregs);
/* Does nothing: the cost of a trampoline alone. */
void ftrace_empty_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
		       struct ftrace_regs *fregs);
/* kernel/trace/ftrace_callback.c: HC_FTRACE_CALLBACK, for an ops whose handler is Python. */
void ftrace_host_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
		      struct ftrace_regs *fregs);

#endif
