/*
 * Saving and restoring the general registers in struct pt_regs order (r15 at
 * the lowest address, rdi at the highest), for the entry code and the
 * kretprobe trampoline, which both build a pt_regs frame on the stack.
 */
#ifndef _ASM_X86_CALLING_H
#define _ASM_X86_CALLING_H

#ifdef __ASSEMBLY__
	.macro PUSH_REGS
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx
	pushq	%rax
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	.endm

	.macro POP_REGS
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rax
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
	.endm
#endif

#endif
