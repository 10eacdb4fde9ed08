/*
 * Kernel entries and exits: interrupts, the system call gate, the context
 * switch and the first return of a new task. The register frame is Linux's
 * struct pt_regs; the frame-pointer conventions are Linux's too, so the
 * unwinder can tell an interrupt frame (an encoded pointer, bit 0 set) from a
 * plain call frame and find the end of every task's stack.
 */
#include <asm/segment.h>
#include <asm/calling.h>
#include <generated/asm-offsets.h>

	.section .entry.text, "ax"

/* An interrupt: save the frame, mark it for the unwinder, call the C handler. */
	.macro IDTENTRY_IRQ name handler
	.globl \name
	.type \name, @function
\name:
	pushq	$-1			/* orig_ax: not a system call */
	PUSH_REGS
	leaq	1(%rsp), %rbp		/* ENCODE_FRAME_POINTER */
	movq	%rsp, %rdi
	call	\handler
	jmp	common_interrupt_return
	.size \name, . - \name
	.endm

IDTENTRY_IRQ asm_sysvec_apic_timer_interrupt sysvec_apic_timer_interrupt
IDTENTRY_IRQ asm_sysvec_reschedule_ipi sysvec_reschedule_ipi
IDTENTRY_IRQ asm_console_interrupt console_interrupt

/*
 * int3. From kernel mode the five-word hardware frame (and orig_ax) is copied
 * six words lower first, leaving a gap below the interrupted stack: emulating
 * a call there (text_poke) pushes a return address into the gap instead of
 * over the live frame, as Linux's int3 entry does.
 */
	.globl asm_exc_int3
	.type asm_exc_int3, @function
asm_exc_int3:
	pushq	$-1			/* orig_ax */
	testb	$3, 16(%rsp)		/* cs of the interrupted context */
	jnz	1f
	.rept 6
	pushq	5*8(%rsp)
	.endr
1:
	PUSH_REGS
	leaq	1(%rsp), %rbp		/* ENCODE_FRAME_POINTER */
	movq	%rsp, %rdi
	call	do_int3
	POP_REGS
	addq	$8, %rsp
	iretq
	.size asm_exc_int3, . - asm_exc_int3

	.globl common_interrupt_return
	.type common_interrupt_return, @function
common_interrupt_return:
	movq	%rsp, %rdi
	call	irqentry_exit
	.globl swapgs_restore_regs_and_return_to_usermode
swapgs_restore_regs_and_return_to_usermode:
	POP_REGS
	addq	$8, %rsp
	iretq
	.size common_interrupt_return, . - common_interrupt_return

/*
 * User space enters through the int $0x80 gate with the x86_64 system call
 * registers. (The syscall instruction cannot be vectored by the emulator
 * without stopping it; the gate keeps entry a plain instruction.) rbp is
 * cleared, as PUSH_AND_CLEAR_REGS does, so do_syscall_64 is the last frame.
 */
	.globl entry_INT80_64
	.type entry_INT80_64, @function
entry_INT80_64:
	pushq	%rax			/* orig_ax: the system call number */
	PUSH_REGS
	xorl	%ebp, %ebp
	movq	%rsp, %rdi
	call	do_syscall_64
	POP_REGS
	addq	$8, %rsp
	iretq
	.size entry_INT80_64, . - entry_INT80_64

/*
 * __switch_to_asm(prev, next): save prev's callee-saved registers as a struct
 * inactive_task_frame, switch stacks, restore next's and finish in C.
 */
	.globl __switch_to_asm
	.type __switch_to_asm, @function
__switch_to_asm:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, TASK_threadsp(%rdi)
	movq	TASK_threadsp(%rsi), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	jmp	__switch_to
	.size __switch_to_asm, . - __switch_to_asm

/*
 * A new task's first return from __switch_to lands here, with rsp at its
 * pt_regs, rbx = kernel thread function (0 for a user task), r12 = argument.
 */
	.globl ret_from_fork_asm
	.type ret_from_fork_asm, @function
ret_from_fork_asm:
	movq	%rax, %rdi		/* prev */
	movq	%rsp, %rsi		/* regs */
	movq	%rbx, %rdx		/* fn */
	movq	%r12, %rcx		/* fn_arg */
	call	ret_from_fork
	POP_REGS
	addq	$8, %rsp
	iretq
	.size ret_from_fork_asm, . - ret_from_fork_asm

/*
 * The idle instruction. The machine knows a CPU halted when it stops just
 * after this hlt with pcpu_hot.halting set; waking the CPU clears the flag,
 * so returning here from the wake-up interrupt never looks like a halt.
 */
	.text
	.globl arch_cpu_idle
	.type arch_cpu_idle, @function
arch_cpu_idle:
	movl	$1, %gs:PCPU_halting
	sti
	.globl arch_cpu_idle_hlt
arch_cpu_idle_hlt:
	hlt
	movl	$0, %gs:PCPU_halting
	ret
	.size arch_cpu_idle, . - arch_cpu_idle
