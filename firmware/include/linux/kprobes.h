/*
 * Kprobes and kretprobes: the structs a module fills (as include/linux/kprobes.h
 * has them) and the per-CPU state of the int3 and ftrace paths.
 *
 * Registering is the machine's work (the host decodes the instruction, checks
 * the address, prepares the out-of-line copy, arms the int3 or the ftrace ops);
 * hitting a probe is machine code only: kprobe_int3_handler or
 * kprobe_ftrace_handler find the probe in kprobe_table and run its handlers.
 */
#ifndef _LINUX_KPROBES_H
#define _LINUX_KPROBES_H

#include <linux/types.h>
#include <linux/compiler.h>
#include <linux/list.h>
#include <linux/llist.h>
#include <linux/spinlock.h>
#include <asm/ptrace.h>

typedef u8 kprobe_opcode_t;

#define BREAKPOINT_INSTRUCTION 0xcc
#define INT3_INSN_SIZE 1
/* An enum, so that the emulator reads these from DWARF. */
enum {
	MAX_INSN_SIZE = 16,
	KPROBE_HASH_BITS = 6,
	KPROBE_TABLE_SIZE = 1 << KPROBE_HASH_BITS,
	KRETPROBE_MAX_DATA_SIZE = 4096,
};

/* kprobe.flags; an enum so that the emulator reads them from DWARF */
enum kprobe_flags {
	KPROBE_FLAG_GONE = 1,	/* the probed code went away (its module was removed) */
	KPROBE_FLAG_DISABLED = 2,
	KPROBE_FLAG_OPTIMIZED = 4,
	KPROBE_FLAG_FTRACE = 8,	/* armed through ftrace, at a fentry site */
};

/* kprobe_ctlblk.kprobe_status */
#define KPROBE_HIT_ACTIVE 0x00000001
#define KPROBE_HIT_SS 0x00000002
#define KPROBE_REENTER 0x00000004
#define KPROBE_HIT_SSDONE 0x00000008

/* How the probed instruction runs once the pre handler is done (arch_specific_insn.emulate_op). */
enum kprobe_emulate_op {
	KPROBE_EMULATE_NONE,	/* single-stepped out of line: the copy in insn, then an int3 */
	KPROBE_EMULATE_IFMODIFIERS,	/* cli, sti, pushf, popf: they would see the step's IF */
	KPROBE_EMULATE_RET,
	KPROBE_EMULATE_CALL,
	KPROBE_EMULATE_JMP,
	KPROBE_EMULATE_JCC,
	KPROBE_EMULATE_LOOP,
	KPROBE_EMULATE_CALL_INDIRECT,
	KPROBE_EMULATE_JMP_INDIRECT,
};

struct kprobe;
struct kretprobe_instance;
struct task_struct;

typedef int (*kprobe_pre_handler_t)(struct kprobe *, struct pt_regs *);
typedef void (*kprobe_post_handler_t)(struct kprobe *, struct pt_regs *, unsigned long flags);
typedef int (*kretprobe_handler_t)(struct kretprobe_instance *, struct pt_regs *);

struct arch_specific_insn {
	kprobe_opcode_t *insn;	/* the out-of-line copy, followed by an int3 */
	u8 size;		/* the probed instruction's length */
	u8 emulate_op;		/* enum kprobe_emulate_op */
	u8 opcode;		/* the emulated opcode (jcc: its condition, 0-15) */
	u8 indirect_reg;	/* call/jmp *%reg: the pt_regs slot of reg */
	s32 rel32;		/* the branch displacement */
	u16 ret_imm;		/* ret $imm16 */
};

struct kprobe {
	struct kprobe *hlist_next;	/* the next probe in its kprobe_table bucket */
	struct list_head list;	/* on an aggregate probe: the probes sharing its address */
	unsigned long nmissed;
	kprobe_opcode_t *addr;
	const char *symbol_name;
	unsigned int offset;
	kprobe_pre_handler_t pre_handler;
	kprobe_post_handler_t post_handler;
	kprobe_opcode_t opcode;	/* the probed instruction's first byte, under the int3 */
	struct arch_specific_insn ainsn;
	u32 flags;
};

struct kretprobe {
	struct kprobe kp;
	kretprobe_handler_t handler;
	kretprobe_handler_t entry_handler;
	int maxactive;
	int nmissed;
	size_t data_size;
	struct llist_head freelist;	/* instances not waiting on any call */
	raw_spinlock_t lock;
};

struct kretprobe_instance {
	struct llist_node llist;	/* on the freelist, or on the task's kretprobe_instances */
	struct kretprobe *rp;	/* NULL once the kretprobe is unregistered */
	kprobe_opcode_t *ret_addr;
	void *fp;		/* where the return address was: the frame this call returns through */
	char data[];
};

struct prev_kprobe {
	struct kprobe *kp;
	unsigned long status;
	unsigned long saved_irqflag;
};

struct kprobe_ctlblk {
	struct kprobe *current_kprobe;
	unsigned long kprobe_status;
	unsigned long kprobe_saved_irqflag;
	struct prev_kprobe prev_kprobe;
};

/* Filled by the machine; read by the handlers. */
extern struct kprobe *kprobe_table[KPROBE_TABLE_SIZE];
extern struct kprobe_ctlblk kprobe_ctlblk[];
extern struct llist_head kretprobe_orphans;

static __always_inline unsigned long kprobe_hash(unsigned long addr)
{
	return (addr ^ (addr >> KPROBE_HASH_BITS) ^ (addr >> (2 * KPROBE_HASH_BITS))) & (KPROBE_TABLE_SIZE - 1);
}

static inline int kprobe_disabled(struct kprobe *p)
{
	return p->flags & (KPROBE_FLAG_DISABLED | KPROBE_FLAG_GONE);
}

static inline struct kretprobe *get_kretprobe(struct kretprobe_instance *ri)
{
	return READ_ONCE(ri->rp);
}

struct kprobe *get_kprobe(void *addr);
struct kprobe_ctlblk *get_kprobe_ctlblk(void);
struct kprobe *kprobe_running(void);
void kprobes_inc_nmissed_count(struct kprobe *p);
int pre_handler_kretprobe(struct kprobe *p, struct pt_regs *regs);
int kprobe_int3_handler(struct pt_regs *regs);
void __kretprobe_trampoline(void);
unsigned long kretprobe_trampoline_handler(struct pt_regs *regs);
void kprobe_busy_begin(void);
void dump_kprobe(struct kprobe *kp);
void kprobe_flush_task(struct task_struct *tk);
void kprobe_busy_end(void);

int register_kprobe(struct kprobe *p);
void unregister_kprobe(struct kprobe *p);
int register_kretprobe(struct kretprobe *rp);
void unregister_kretprobe(struct kretprobe *rp);
int enable_kprobe(struct kprobe *kp);
int disable_kprobe(struct kprobe *kp);

/*
 * NOKPROBE_SYMBOL(fn): fn may not be probed (it runs on the probe path itself).
 * Its address goes to _kprobe_blacklist, which the machine reads at boot.
 */
#define NOKPROBE_SYMBOL(fname)                                                 \
	static unsigned long __used __section("_kprobe_blacklist")             \
		_kbl_addr_##fname = (unsigned long)fname;
#define __kprobes __section(".kprobes.text")

#endif
