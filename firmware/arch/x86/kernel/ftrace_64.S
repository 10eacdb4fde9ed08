/*
 * x86_64 ftrace trampolines, as arch/x86/kernel/ftrace_64.S has them with
 * frame pointers and DYNAMIC_FTRACE_WITH_REGS/ARGS.
 *
 * An enabled fentry site is `call ftrace_caller` (or ftrace_regs_caller, or a
 * private copy of either): on entry [rsp] is site+5 and [rsp+8] the traced
 * function's return address into its parent. The trampoline pushes two fake
 * frames (parent, then traced function) so an unwinder in the handler sees
 * both, saves a struct pt_regs below them and calls the function in its call
 * slot as handler(ip = site, parent_ip, ops, fregs = &pt_regs). On the way
 * back it copies regs->ip over its own return slot, so `ret` resumes at
 * regs->ip: site+5 if the handler left it alone, or the entry of the function
 * it redirected to, with the stack and argument registers exactly as at the
 * traced function's entry.
 *
 * Stack while the handler runs, as offsets from the pt_regs (MCOUNT_REG_SIZE = 208);
 * ftrace_regs_caller has its pushfq'd flags at 208 and the two words above one slot up:
 *	216	return address into the parent
 *	208	site+5: the trampoline's return slot (regs->ip is copied here)
 *	200	original rbp
 *	192	parent return address	} the parent's fake frame
 *	184	-> original rbp		}
 *	176	site+5			} the traced function's fake frame
 *	168	-> 184			}  <- rbp (ftrace_caller)
 *	0	struct pt_regs		   <- rsp = fregs (ftrace_regs_caller: rbp = fregs + 1)
 *
 * The template contract the machine relies on to make private trampolines by
 * copying bytes: [ftrace_caller, ftrace_caller_end) and [ftrace_regs_caller,
 * ftrace_regs_caller_end) each end with their own ret and hold no
 * rip-relative operand and no branch leaving the range except two marked
 * instructions: *_op_ptr, `movq function_trace_op(%rip), %rdx` (48 8b 15
 * disp32), and the call slot ftrace_call / ftrace_regs_call, `call rel32`
 * (e8 rel32). ftrace_caller_can_redirect is read with an absolute
 * (sign-extended 32-bit) address, which a copy keeps valid.
 */
#include <asm/segment.h>

/* struct pt_regs offsets (asm/ptrace.h) */
#define R15	0
#define R14	8
#define R13	16
#define R12	24
#define RBP	32
#define RBX	40
#define R11	48
#define R10	56
#define R9	64
#define R8	72
#define RAX	80
#define RCX	88
#define RDX	96
#define RSI	104
#define RDI	112
#define ORIG_RAX 120
#define RIP	128
#define CS	136
#define EFLAGS	144
#define RSP	152
#define SS	160
#define PTREGS_SIZE 168

#define MCOUNT_FRAME_SIZE (8 + 16 * 2)	/* original rbp + two fake frames */
#define MCOUNT_REG_SIZE (PTREGS_SIZE + MCOUNT_FRAME_SIZE)
#define MCOUNT_INSN_SIZE 5

/*
 * @added: what the trampoline pushed before (8: ftrace_regs_caller's flags).
 * Leaves rdi = the site (return address - 5), rsi = the parent's return address.
 */
	.macro save_mcount_regs added=0
	/* The original rbp, then the parent's frame, then the traced function's. */
	pushq	%rbp
	pushq	\added+8*2(%rsp)
	pushq	%rbp
	movq	%rsp, %rbp
	pushq	\added+8*3(%rsp)
	pushq	%rbp
	movq	%rsp, %rbp

	subq	$PTREGS_SIZE, %rsp
	movq	%rax, RAX(%rsp)
	movq	%rcx, RCX(%rsp)
	movq	%rdx, RDX(%rsp)
	movq	%rsi, RSI(%rsp)
	movq	%rdi, RDI(%rsp)
	movq	%r8, R8(%rsp)
	movq	%r9, R9(%rsp)
	movq	$0, ORIG_RAX(%rsp)
	movq	MCOUNT_REG_SIZE-8(%rsp), %rdx
	movq	%rdx, RBP(%rsp)
	movq	MCOUNT_REG_SIZE+8+\added(%rsp), %rsi
	movq	MCOUNT_REG_SIZE+\added(%rsp), %rdi
	movq	%rdi, RIP(%rsp)
	subq	$MCOUNT_INSN_SIZE, %rdi
	.endm

/* The argument registers and rbp from pt_regs (a handler may have changed them); pop the frame. */
	.macro restore_mcount_regs save=0
	movq	RBP(%rsp), %rbp
	movq	R9(%rsp), %r9
	movq	R8(%rsp), %r8
	movq	RDI(%rsp), %rdi
	movq	RSI(%rsp), %rsi
	movq	RDX(%rsp), %rdx
	movq	RCX(%rsp), %rcx
	movq	RAX(%rsp), %rax
	addq	$MCOUNT_REG_SIZE-\save, %rsp
	.endm

	.text

/* Target of every fentry call site until boot turns the sites into NOPs. */
	.globl __fentry__
	.type __fentry__, @function
__fentry__:
	ret
	.size __fentry__, . - __fentry__

/* The empty handler an unused call slot calls. */
	.globl ftrace_stub
	.type ftrace_stub, @function
ftrace_stub:
	ret
	.size ftrace_stub, . - ftrace_stub

/* The argument registers only; regs->cs = 0 tells ftrace_get_regs() there are no full regs. */
	.balign 16
	.globl ftrace_caller
	.type ftrace_caller, @function
ftrace_caller:
	save_mcount_regs

	/* The traced function's rsp at entry: just above our return slot. */
	leaq	MCOUNT_REG_SIZE+8(%rsp), %rcx
	movq	%rcx, RSP(%rsp)

	.globl ftrace_caller_op_ptr
ftrace_caller_op_ptr:
	movq	function_trace_op(%rip), %rdx

	/* struct ftrace_regs * in the 4th argument */
	leaq	(%rsp), %rcx
	movq	$0, CS(%rsp)

	.globl ftrace_call
ftrace_call:
	call	ftrace_stub

	/* Handlers can change the RIP (since 5.11; ftrace_caller_can_redirect = 0: before). */
	cmpl	$0, ftrace_caller_can_redirect
	je	1f
	movq	RIP(%rsp), %rax
	movq	%rax, MCOUNT_REG_SIZE(%rsp)
1:
	restore_mcount_regs
	ret

	.globl ftrace_caller_end
ftrace_caller_end:
	.size ftrace_caller, . - ftrace_caller

/* A full struct pt_regs: flags, all general registers, cs and ss. */
	.balign 16
	.globl ftrace_regs_caller
	.type ftrace_regs_caller, @function
ftrace_regs_caller:
	/* The flags, before anything changes them */
	pushfq
	save_mcount_regs 8

	.globl ftrace_regs_caller_op_ptr
ftrace_regs_caller_op_ptr:
	movq	function_trace_op(%rip), %rdx

	movq	%r15, R15(%rsp)
	movq	%r14, R14(%rsp)
	movq	%r13, R13(%rsp)
	movq	%r12, R12(%rsp)
	movq	%r11, R11(%rsp)
	movq	%r10, R10(%rsp)
	movq	%rbx, RBX(%rsp)
	movq	MCOUNT_REG_SIZE(%rsp), %rcx
	movq	%rcx, EFLAGS(%rsp)
	movq	$__KERNEL_DS, %rcx
	movq	%rcx, SS(%rsp)
	movq	$__KERNEL_CS, %rcx
	movq	%rcx, CS(%rsp)
	/* The traced function's rsp at entry: above the flags and our return slot. */
	leaq	MCOUNT_REG_SIZE+8*2(%rsp), %rcx
	movq	%rcx, RSP(%rsp)

	/* ENCODE_FRAME_POINTER: to an unwinder in the handler, this is a pt_regs frame. */
	leaq	1(%rsp), %rbp

	leaq	(%rsp), %rcx

	.globl ftrace_regs_call
ftrace_regs_call:
	call	ftrace_stub

	/* The flags, as the handler left them, back where popfq finds them */
	movq	EFLAGS(%rsp), %rax
	movq	%rax, MCOUNT_REG_SIZE(%rsp)

	/* Handlers can change the RIP */
	movq	RIP(%rsp), %rax
	movq	%rax, MCOUNT_REG_SIZE+8(%rsp)

	movq	R15(%rsp), %r15
	movq	R14(%rsp), %r14
	movq	R13(%rsp), %r13
	movq	R12(%rsp), %r12
	movq	R10(%rsp), %r10
	movq	RBX(%rsp), %rbx

	/*
	 * A nonzero orig_ax is a direct trampoline (arch_ftrace_set_direct_caller):
	 * return into it, with site+5 (or the new regs->ip) as its return address.
	 */
	movq	ORIG_RAX(%rsp), %rax
	movq	%rax, MCOUNT_REG_SIZE-8(%rsp)
	testq	%rax, %rax
	.globl ftrace_regs_caller_jmp
ftrace_regs_caller_jmp:
	jnz	2f

	restore_mcount_regs
	popfq
	ret

	/* Swap the flags with orig_ax: popfq, then ret into the direct trampoline. */
2:	movq	MCOUNT_REG_SIZE(%rsp), %rdi
	movq	%rdi, MCOUNT_REG_SIZE-8(%rsp)
	movq	%rax, MCOUNT_REG_SIZE(%rsp)
	restore_mcount_regs 8
	popfq
	ret

	.globl ftrace_regs_caller_end
ftrace_regs_caller_end:
	.size ftrace_regs_caller, . - ftrace_regs_caller

/*
 * Where a function whose return function_graph hooked returns to (its return
 * slot held the real address until prepare_ftrace_return replaced it). The
 * return values rax and rdx are kept; ftrace_return_to_handler(rax) pops the
 * task's ret_stack and gives the real return address, which goes back into
 * the slot the function's ret consumed, and we return there.
 */
	.balign 16
	.globl return_to_handler
	.type return_to_handler, @function
return_to_handler:
	subq	$8, %rsp
	pushq	%rax
	pushq	%rdx
	movq	%rax, %rdi
	call	ftrace_return_to_handler
	movq	%rax, 16(%rsp)
	popq	%rdx
	popq	%rax
	ret
	.size return_to_handler, . - return_to_handler

/* No kprobes on the trampolines: a probe's own handler runs through them (NOKPROBE_SYMBOL). */
	.section _kprobe_blacklist, "a"
	.balign 8
	.quad __fentry__, ftrace_stub, ftrace_caller, ftrace_regs_caller, return_to_handler
