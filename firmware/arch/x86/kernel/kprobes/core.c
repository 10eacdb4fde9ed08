// SPDX-License-Identifier: GPL-2.0
/*
 * The int3 half of kprobes on x86 (arch/x86/kernel/kprobes/core.c). A probe's
 * first byte is an int3; when a CPU hits it, the pre handler runs, then the
 * probed instruction either runs out of line (a copy the machine prepared,
 * followed by an int3 that brings the CPU back here, with interrupts off in
 * between) or, for branches and IF modifiers, is emulated on the saved regs.
 * Then the post handler runs and the CPU resumes after the probed instruction.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/kprobes.h>

#define X86_EFLAGS_CF 0x0001
#define X86_EFLAGS_PF 0x0004
#define X86_EFLAGS_ZF 0x0040
#define X86_EFLAGS_SF 0x0080
#define X86_EFLAGS_IF 0x0200
#define X86_EFLAGS_OF 0x0800

static notrace void kprobe_emulate_push(struct pt_regs *regs, unsigned long val)
{
	/* The int3 entry left a gap below the interrupted stack for this push. */
	regs->sp -= sizeof(unsigned long);
	*(unsigned long *)regs->sp = val;
}
NOKPROBE_SYMBOL(kprobe_emulate_push);

/* Condition code cc (the low nibble of a jcc opcode) against the flags. */
static notrace int kprobe_cond_test(unsigned long flags, int cc)
{
	int cf = !!(flags & X86_EFLAGS_CF), zf = !!(flags & X86_EFLAGS_ZF);
	int sf = !!(flags & X86_EFLAGS_SF), of = !!(flags & X86_EFLAGS_OF);
	int pf = !!(flags & X86_EFLAGS_PF);
	int taken;

	switch (cc >> 1) {
	case 0: taken = of; break;
	case 1: taken = cf; break;
	case 2: taken = zf; break;
	case 3: taken = cf || zf; break;
	case 4: taken = sf; break;
	case 5: taken = pf; break;
	case 6: taken = sf != of; break;
	default: taken = zf || sf != of; break;
	}
	return (cc & 1) ? !taken : taken;
}
NOKPROBE_SYMBOL(kprobe_cond_test);

/* Run the probed instruction on the saved registers instead of stepping it. */
static notrace void kprobe_emulate(struct kprobe *p, struct pt_regs *regs)
{
	struct arch_specific_insn *ai = &p->ainsn;
	unsigned long next = (unsigned long)p->addr + ai->size;
	unsigned long *reg = (unsigned long *)regs;
	unsigned long target;

	regs->ip = next;
	switch (ai->emulate_op) {
	case KPROBE_EMULATE_IFMODIFIERS:
		if (ai->opcode == 0xfa)
			regs->flags &= ~X86_EFLAGS_IF;
		else if (ai->opcode == 0xfb)
			regs->flags |= X86_EFLAGS_IF;
		else if (ai->opcode == 0x9c)
			kprobe_emulate_push(regs, regs->flags);
		else {
			regs->flags = *(unsigned long *)regs->sp;
			regs->sp += sizeof(unsigned long);
		}
		break;
	case KPROBE_EMULATE_RET:
		regs->ip = *(unsigned long *)regs->sp;
		regs->sp += sizeof(unsigned long) + ai->ret_imm;
		break;
	case KPROBE_EMULATE_CALL:
		kprobe_emulate_push(regs, next);
		regs->ip = next + ai->rel32;
		break;
	case KPROBE_EMULATE_JMP:
		regs->ip = next + ai->rel32;
		break;
	case KPROBE_EMULATE_JCC:
		if (kprobe_cond_test(regs->flags, ai->opcode))
			regs->ip = next + ai->rel32;
		break;
	case KPROBE_EMULATE_LOOP:
		/* e0 loopne, e1 loope, e2 loop, e3 jrcxz */
		if (ai->opcode == 0xe3)
			target = regs->cx == 0;
		else {
			regs->cx--;
			target = regs->cx != 0;
			if (ai->opcode == 0xe0)
				target = target && !(regs->flags & X86_EFLAGS_ZF);
			else if (ai->opcode == 0xe1)
				target = target && (regs->flags & X86_EFLAGS_ZF);
		}
		if (target)
			regs->ip = next + ai->rel32;
		break;
	case KPROBE_EMULATE_CALL_INDIRECT:
		target = reg[ai->indirect_reg];
		kprobe_emulate_push(regs, next);
		regs->ip = target;
		break;
	case KPROBE_EMULATE_JMP_INDIRECT:
		regs->ip = reg[ai->indirect_reg];
		break;
	}
}
NOKPROBE_SYMBOL(kprobe_emulate);

static notrace void kprobe_post_process(struct kprobe *cur, struct pt_regs *regs, struct kprobe_ctlblk *kcb)
{
	if (kcb->kprobe_status == KPROBE_REENTER) {
		kcb->current_kprobe = kcb->prev_kprobe.kp;
		kcb->kprobe_status = kcb->prev_kprobe.status;
		kcb->kprobe_saved_irqflag = kcb->prev_kprobe.saved_irqflag;
		return;
	}
	kcb->kprobe_status = KPROBE_HIT_SSDONE;
	if (cur->post_handler)
		cur->post_handler(cur, regs, 0);
	kcb->current_kprobe = NULL;
}
NOKPROBE_SYMBOL(kprobe_post_process);

static notrace void setup_singlestep(struct kprobe *p, struct pt_regs *regs, struct kprobe_ctlblk *kcb,
				     int reenter)
{
	if (reenter) {
		kcb->prev_kprobe.kp = kcb->current_kprobe;
		kcb->prev_kprobe.status = kcb->kprobe_status;
		kcb->prev_kprobe.saved_irqflag = kcb->kprobe_saved_irqflag;
		kcb->current_kprobe = p;
		kcb->kprobe_status = KPROBE_REENTER;
	} else
		kcb->kprobe_status = KPROBE_HIT_SS;

	if (p->ainsn.emulate_op) {
		kprobe_emulate(p, regs);
		kprobe_post_process(p, regs, kcb);
		return;
	}
	/* Step the copy with interrupts off: nothing may run between it and its int3. */
	kcb->kprobe_saved_irqflag = regs->flags & X86_EFLAGS_IF;
	regs->flags &= ~X86_EFLAGS_IF;
	regs->ip = (unsigned long)p->ainsn.insn;
}
NOKPROBE_SYMBOL(setup_singlestep);

/* The int3 after the out-of-line copy: back to the instruction after the probed one. */
static notrace void resume_singlestep(struct kprobe *p, struct pt_regs *regs, struct kprobe_ctlblk *kcb)
{
	unsigned long copy_ip = (unsigned long)p->ainsn.insn;
	unsigned long orig_ip = (unsigned long)p->addr;

	regs->flags |= kcb->kprobe_saved_irqflag;
	regs->ip += (orig_ip - copy_ip) - INT3_INSN_SIZE;
}
NOKPROBE_SYMBOL(resume_singlestep);

/* Returns 1 when the int3 was a kprobe's (or the end of a probe's step). */
notrace int kprobe_int3_handler(struct pt_regs *regs)
{
	kprobe_opcode_t *addr;
	struct kprobe *p;
	struct kprobe_ctlblk *kcb;

	if (user_mode(regs))
		return 0;
	addr = (kprobe_opcode_t *)(regs->ip - INT3_INSN_SIZE);
	kcb = get_kprobe_ctlblk();
	p = get_kprobe(addr);
	if (p) {
		if (kcb->current_kprobe) {
			if (kcb->kprobe_status == KPROBE_REENTER) {
				/* A probe hit while stepping a reentered one: no way back. */
				pr_err("Unrecoverable kprobe detected.\n");
				dump_kprobe(p);
				BUG_ON(1);
			}
			kprobes_inc_nmissed_count(p);
			setup_singlestep(p, regs, kcb, 1);
		} else {
			kcb->current_kprobe = p;
			kcb->kprobe_status = KPROBE_HIT_ACTIVE;
			/* A pre handler returning nonzero has set regs->ip itself: no step. */
			if (!p->pre_handler || !p->pre_handler(p, regs))
				setup_singlestep(p, regs, kcb, 0);
			else
				kcb->current_kprobe = NULL;
		}
		return 1;
	}
	p = kcb->current_kprobe;
	if (p && (kcb->kprobe_status & (KPROBE_HIT_SS | KPROBE_REENTER)) && p->ainsn.insn &&
	    addr == p->ainsn.insn + p->ainsn.size) {
		resume_singlestep(p, regs, kcb);
		kprobe_post_process(p, regs, kcb);
		return 1;
	}
	if (*addr != BREAKPOINT_INSTRUCTION) {
		/* The probe went away while this CPU was on its way here: run the real instruction. */
		regs->ip = (unsigned long)addr;
		return 1;
	}
	return 0;
}
NOKPROBE_SYMBOL(kprobe_int3_handler);
