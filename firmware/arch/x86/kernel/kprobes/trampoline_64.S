/*
 * __kretprobe_trampoline: where a kretprobe'd call returns to instead of its
 * caller. It builds a struct pt_regs below a free slot, asks
 * kretprobe_trampoline_handler for the real return address (the handlers run
 * there), puts it in the slot and returns through it, with every register as
 * the probed function left it. regs->sp is the stack pointer the caller will
 * see, so the slot (regs->sp - 8) is where the return address was: the frame
 * the kretprobe instances of this return remember.
 */
#include <asm/segment.h>
#include <asm/calling.h>

#define PTREGS_SIZE 168

	.section .kprobes.text, "ax"
	.globl __kretprobe_trampoline
	.type __kretprobe_trampoline, @function
__kretprobe_trampoline:
	subq	$8, %rsp		/* the slot for the real return address */
	pushq	$__KERNEL_DS		/* ss */
	pushq	%rsp			/* sp: fixed up to the caller's just below */
	addq	$16, (%rsp)
	pushfq
	pushq	$__KERNEL_CS
	pushq	$__kretprobe_trampoline	/* ip */
	pushq	$-1			/* orig_ax */
	PUSH_REGS
	movq	%rsp, %rdi
	call	kretprobe_trampoline_handler
	movq	%rax, PTREGS_SIZE(%rsp)
	POP_REGS
	addq	$24, %rsp		/* orig_ax, ip, cs */
	popfq
	addq	$16, %rsp		/* sp, ss */
	ret
	.size __kretprobe_trampoline, . - __kretprobe_trampoline
