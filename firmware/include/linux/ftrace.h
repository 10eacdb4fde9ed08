/*
 * ftrace's guest data: the per-site records, the ops the trampolines call, and
 * the filter hashes the list function tests. The machine (the control plane)
 * allocates and fills these in guest memory; machine code only reads them.
 * Names, flag bits and layouts follow Linux (include/linux/ftrace.h).
 */
#ifndef _LINUX_FTRACE_H
#define _LINUX_FTRACE_H

#include <linux/types.h>
#include <linux/compiler.h>
#include <asm/ptrace.h>

enum { MCOUNT_INSN_SIZE = 5 };	/* call __fentry__; an enum, so the emulator reads it from DWARF */
#define FTRACE_MAX_RECORDS 4096

/* struct dyn_ftrace.flags: the low bits count the enabled ops that trace this site. */
enum dyn_ftrace_flag_bits {
	FTRACE_FL_ENABLED = 1UL << 31,	/* the site calls a trampoline */
	FTRACE_FL_REGS = 1UL << 30,	/* some ops wants full pt_regs */
	FTRACE_FL_REGS_EN = 1UL << 29,	/* the site calls the regs trampoline */
	FTRACE_FL_TRAMP = 1UL << 28,	/* exactly one ops, and it has its own trampoline */
	FTRACE_FL_TRAMP_EN = 1UL << 27,
	FTRACE_FL_IPMODIFY = 1UL << 26,
	FTRACE_FL_DISABLED = 1UL << 25,
	FTRACE_FL_DIRECT = 1UL << 24,
	FTRACE_FL_DIRECT_EN = 1UL << 23,
	FTRACE_FL_CALL_OPS = 1UL << 22,
	FTRACE_FL_CALL_OPS_EN = 1UL << 21,
	FTRACE_FL_TOUCHED = 1UL << 20,	/* a callback was attached at some time */
	FTRACE_FL_MODIFIED = 1UL << 19,	/* sticky: had IPMODIFY or DIRECT */
	FTRACE_REF_MAX_SHIFT = 19,
	FTRACE_REF_MAX = (1UL << 19) - 1,
};

struct dyn_ftrace {
	unsigned long ip;
	unsigned long flags;
};

/* The records of every fentry site, sorted by ip: boot fills them, the machine maintains them. */
extern struct dyn_ftrace ftrace_records[FTRACE_MAX_RECORDS];
extern unsigned long ftrace_nr_records;
extern int ftrace_disabled;

/* struct ftrace_ops.flags, Linux's bit values. */
enum ftrace_ops_flag_bits {
	FTRACE_OPS_FL_ENABLED = 1UL << 0,
	FTRACE_OPS_FL_DYNAMIC = 1UL << 1,
	FTRACE_OPS_FL_SAVE_REGS = 1UL << 2,
	FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED = 1UL << 3,
	FTRACE_OPS_FL_RECURSION = 1UL << 4,	/* the ops wants ftrace's recursion protection (the assist) */
	FTRACE_OPS_FL_STUB = 1UL << 5,
	FTRACE_OPS_FL_INITIALIZED = 1UL << 6,
	FTRACE_OPS_FL_DELETED = 1UL << 7,
	FTRACE_OPS_FL_ADDING = 1UL << 8,
	FTRACE_OPS_FL_REMOVING = 1UL << 9,
	FTRACE_OPS_FL_MODIFYING = 1UL << 10,
	FTRACE_OPS_FL_ALLOC_TRAMP = 1UL << 11,
	FTRACE_OPS_FL_IPMODIFY = 1UL << 12,
	FTRACE_OPS_FL_PID = 1UL << 13,
	FTRACE_OPS_FL_RCU = 1UL << 14,
	FTRACE_OPS_FL_TRACE_ARRAY = 1UL << 15,
	FTRACE_OPS_FL_PERMANENT = 1UL << 16,
	FTRACE_OPS_FL_DIRECT = 1UL << 17,
};

/* The registers a trampoline saved: a full pt_regs from ftrace_regs_caller, the argument
 * registers (and cs == 0) from ftrace_caller. */
struct ftrace_regs {
	struct pt_regs regs;
};

static inline struct pt_regs *ftrace_get_regs(struct ftrace_regs *fregs)
{
	return fregs && fregs->regs.cs ? &fregs->regs : NULL;
}

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			      struct ftrace_regs *fregs);

/* A sorted array of function addresses; no hash, or count 0, in a filter means "all". */
struct ftrace_hash {
	unsigned long count;
	unsigned long ips[];
};

struct ftrace_ops {
	ftrace_func_t func;
	struct ftrace_ops *next;
	unsigned long flags;
	void *private;
	struct ftrace_hash *filter_hash;
	struct ftrace_hash *notrace_hash;
	unsigned long trampoline;	/* this ops' private trampoline, or 0 */
	unsigned long trampoline_size;
	long callback_id;		/* for ops whose handler is on the host */
	ftrace_func_t saved_func;	/* func, while ftrace_pid_func stands in for it (FTRACE_OPS_FL_PID) */
};

/* The list the list function walks, newest first, ended by ftrace_list_end. */
extern struct ftrace_ops *ftrace_ops_list;
extern struct ftrace_ops ftrace_list_end;
/* The ops the shared trampolines pass to the function in their call slot. */
extern struct ftrace_ops *function_trace_op;

void ftrace_stub(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
		 struct ftrace_regs *fregs);
void ftrace_ops_list_func(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			  struct ftrace_regs *fregs);
void ftrace_init(void);

#endif
