/* struct pt_regs: the x86_64 register frame built by every kernel entry. */
#ifndef _ASM_PTRACE_H
#define _ASM_PTRACE_H

#ifndef __ASSEMBLY__
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx;
	unsigned long r11, r10, r9, r8, ax, cx, dx, si, di;
	unsigned long orig_ax; /* syscall number, error code, or -1 */
	unsigned long ip, cs, flags, sp, ss; /* the hardware frame */
};

static inline int user_mode(struct pt_regs *regs)
{
	return (regs->cs & 3) == 3;
}
#endif

#endif
