/*
 * First instructions of each CPU. The machine starts CPU 0 at startup_64 and
 * the others, when CPU 0 asks, at secondary_startup_64; rdi holds the CPU
 * number and rsp the top of that CPU's idle stack, below its pt_regs.
 */
#include <asm/segment.h>

	.section .head.text, "ax"
	.globl startup_64
startup_64:
	xorl	%ebp, %ebp
	movq	%rdi, %rbx
	call	cpu_init
	call	start_kernel
	ud2

	.globl secondary_startup_64
secondary_startup_64:
	xorl	%ebp, %ebp
	movq	%rdi, %rbx
	call	cpu_init
	movq	%rbx, %rdi
	call	start_secondary
	ud2
