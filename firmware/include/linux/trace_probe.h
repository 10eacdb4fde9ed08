/*
 * Probe events' data plane (kernel/trace/trace_probe.h, trace_probe_tmpl.h,
 * trace_kprobe.c): each argument of a kprobe event is a fetch program the
 * host compiled from the definition (`+0(%si):u8`, `$comm`, ...), and the
 * guest interprets it at every hit, as Linux's process_fetch_insn does, to
 * fill the event's record in the trace ring.
 */
#ifndef _LINUX_TRACE_PROBE_H
#define _LINUX_TRACE_PROBE_H

#include <linux/types.h>
#include <linux/kprobes.h>
#include <linux/sched.h>
#include <linux/ring_buffer.h>
#include <linux/trace_events.h>

/* An enum, so that the emulator reads the opcodes from DWARF. */
enum fetch_op {
	FETCH_OP_NOP = 0,
	/* stage 1: where the value comes from */
	FETCH_OP_REG,		/* param: the pt_regs slot */
	FETCH_OP_STACK,		/* param: the stack word's index */
	FETCH_OP_STACKP,	/* the stack pointer */
	FETCH_OP_RETVAL,	/* the return value */
	FETCH_OP_IMM,		/* immediate */
	FETCH_OP_COMM,		/* current->comm */
	FETCH_OP_ARG,		/* param: the function argument's index */
	FETCH_OP_FOFFS,		/* a file offset (uprobes only) */
	FETCH_OP_DATA,		/* immediate: the address of an immediate string */
	FETCH_OP_EDATA,		/* entry data (unused: no entry arguments on return) */
	/* stage 2: dereferences */
	FETCH_OP_DEREF,		/* offset */
	FETCH_OP_UDEREF,	/* offset, from user memory */
	/* stage 3: store */
	FETCH_OP_ST_RAW,	/* size */
	FETCH_OP_ST_MEM,	/* offset, size */
	FETCH_OP_ST_UMEM,	/* offset, size */
	FETCH_OP_ST_STRING,	/* offset */
	FETCH_OP_ST_USTRING,	/* offset */
	FETCH_OP_ST_SYMSTR,	/* offset */
	FETCH_OP_ST_EDATA,
	/* stage 4: modify */
	FETCH_OP_MOD_BF,	/* basesize, lshift, rshift */
	/* stage 5: loop */
	FETCH_OP_LP_ARRAY,	/* param: the array's length */
	FETCH_OP_TP_ARG,
	FETCH_OP_END,
	FETCH_NOP_SYMBOL,	/* a symbol the host resolved into the next IMM */
};

enum {
	FETCH_INSN_MAX = 16,
	MAX_STRING_SIZE = 4096,	/* PATH_MAX, Linux's cap on a fetched string */
	PROBE_NOFAULT_RANGES = 32,
	PARAM_MAX_STACK = THREAD_SIZE / sizeof(unsigned long),	/* the highest $stackN and $argN */
};

/* Linux's is a union of these; a flat struct keeps the host's DWARF view simple. */
struct fetch_insn {
	u8 op;			/* enum fetch_op */
	u8 basesize;
	u8 lshift;
	u8 rshift;
	u32 size;
	u32 param;
	s32 offset;
	unsigned long immediate;
};

struct probe_arg {
	struct fetch_insn *code;
	u32 offset;		/* in the record, after the probe's head */
	u32 dynamic;		/* a string: a __data_loc field, its bytes after the fields */
};

struct trace_probe {
	u32 nr_args;
	u32 size;		/* the fields of the arguments */
	struct probe_arg *args;
	struct fetch_insn *entry_arg;	/* a return probe's $argN: ARG, ST_EDATA pairs run at entry */
};

struct trace_kprobe {
	struct kretprobe rp;	/* rp.kp is the kprobe; rp alone is used by a return probe */
	unsigned long nhit;
	struct trace_event_file file;	/* the event's switch, filter and triggers, as a static event's */
	struct trace_probe tp;
};

struct kprobe_trace_entry_head {
	struct trace_entry ent;
	unsigned long ip;
};

struct kretprobe_trace_entry_head {
	struct trace_entry ent;
	unsigned long func;
	unsigned long ret_ip;
};

/* What probes may read without faulting: the host lists the mapped ranges, kernel or user. */
struct probe_nofault_range {
	unsigned long start, end;
	unsigned long user;	/* user memory: only +u, ustring and umem read it */
};
extern struct probe_nofault_range probe_nofault_ranges[PROBE_NOFAULT_RANGES];

int kprobe_dispatcher(struct kprobe *kp, struct pt_regs *regs);
int kretprobe_dispatcher(struct kretprobe_instance *ri, struct pt_regs *regs);
int kretprobe_entry_dispatcher(struct kretprobe_instance *ri, struct pt_regs *regs);

#endif
