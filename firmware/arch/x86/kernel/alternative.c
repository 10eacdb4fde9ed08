// SPDX-License-Identifier: GPL-2.0
/*
 * The int3 half of live code patching (text_poke): while the machine rewrites
 * a site it first puts an int3 on the site's first byte and publishes what the
 * site will become here. A CPU that hits that int3 does not wait for the new
 * bytes: it emulates the new instruction, as Linux's
 * smp_text_poke_int3_handler does.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/kprobes.h>
#include <asm/ptrace.h>

#define TP_VEC_MAX 256
#define INT3_INSN_SIZE 1
#define CALL_INSN_OPCODE 0xe8
#define JMP32_INSN_OPCODE 0xe9
#define JMP8_INSN_OPCODE 0xeb
#define RET_INSN_OPCODE 0xc3
#define INT3_INSN_OPCODE 0xcc

/* One site being patched: where, how long, and the new instruction (a NOP5 is a jmp32 +0). */
struct text_poke_loc {
	unsigned long addr;
	s32 disp;
	u8 len;
	u8 opcode;
};

/* Written by the machine before the first int3 goes in, cleared after the last byte lands. */
struct text_poke_array {
	struct text_poke_loc vec[TP_VEC_MAX];
	int nr_entries;
	int refs; /* CPUs inside the handler; the machine waits for 0 before clearing */
};

struct text_poke_array text_poke_array;

static notrace struct text_poke_loc *text_poke_find(unsigned long ip)
{
	int lo = 0, hi = READ_ONCE(text_poke_array.nr_entries) - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		struct text_poke_loc *tp = &text_poke_array.vec[mid];

		if (tp->addr == ip)
			return tp;
		if (tp->addr < ip)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static notrace void int3_emulate_push(struct pt_regs *regs, unsigned long val)
{
	/* The int3 entry left a gap below the interrupted stack for exactly this push. */
	regs->sp -= sizeof(unsigned long);
	*(unsigned long *)regs->sp = val;
}

/* Returns 1 when the int3 was one of ours and its instruction has been emulated. */
notrace int poke_int3_handler(struct pt_regs *regs)
{
	struct text_poke_loc *tp;
	unsigned long ip;
	int handled = 0;

	if (user_mode(regs) || !READ_ONCE(text_poke_array.nr_entries))
		return 0;
	__atomic_add_fetch(&text_poke_array.refs, 1, __ATOMIC_SEQ_CST);
	ip = regs->ip - INT3_INSN_SIZE;
	tp = text_poke_find(ip);
	if (!tp)
		goto out;
	switch (tp->opcode) {
	case INT3_INSN_OPCODE: /* a real breakpoint: not ours to consume */
		goto out;
	case RET_INSN_OPCODE:
		regs->ip = *(unsigned long *)regs->sp;
		regs->sp += sizeof(unsigned long);
		break;
	case CALL_INSN_OPCODE:
		int3_emulate_push(regs, ip + tp->len);
		regs->ip = ip + tp->len + tp->disp;
		break;
	case JMP32_INSN_OPCODE:
	case JMP8_INSN_OPCODE:
		regs->ip = ip + tp->len + tp->disp;
		break;
	default:
		goto out;
	}
	handled = 1;
out:
	__atomic_sub_fetch(&text_poke_array.refs, 1, __ATOMIC_SEQ_CST);
	return handled;
}
NOKPROBE_SYMBOL(text_poke_find);
NOKPROBE_SYMBOL(int3_emulate_push);
NOKPROBE_SYMBOL(poke_int3_handler);

void do_int3(struct pt_regs *regs)
{
	if (poke_int3_handler(regs))
		return;
	if (kprobe_int3_handler(regs))
		return;
	panic("int3 at %px that no one claims", (void *)(regs->ip - 1));
}
NOKPROBE_SYMBOL(do_int3);
