/* GDT layout: selectors the host's interrupt delivery and iretq rely on. */
#ifndef _ASM_SEGMENT_H
#define _ASM_SEGMENT_H

#define GDT_ENTRY_KERNEL_CS 2
#define GDT_ENTRY_KERNEL_DS 3
#define GDT_ENTRY_USER_DS 5
#define GDT_ENTRY_USER_CS 6
#define GDT_ENTRY_TSS 8 /* 16 bytes: entries 8 and 9 */
#define GDT_ENTRIES 10

#define __KERNEL_CS (GDT_ENTRY_KERNEL_CS * 8)
#define __KERNEL_DS (GDT_ENTRY_KERNEL_DS * 8)
#define __USER_DS (GDT_ENTRY_USER_DS * 8 + 3)
#define __USER_CS (GDT_ENTRY_USER_CS * 8 + 3)
#define __TSS_SEL (GDT_ENTRY_TSS * 8)

#define X86_EFLAGS_IF 0x200
#define X86_EFLAGS_FIXED 0x2

#ifndef __ASSEMBLY__
/* Interrupt vectors; an enum so the machine reads them from the image's debug info. */
enum irq_vector {
	X86_TRAP_DE = 0,
	X86_TRAP_BP = 3,
	X86_TRAP_UD = 6,
	X86_TRAP_GP = 13,
	X86_TRAP_PF = 14,
	CONSOLE_VECTOR = 0x24,
	IA32_SYSCALL_VECTOR = 0x80,
	LOCAL_TIMER_VECTOR = 0xec,
	RESCHEDULE_VECTOR = 0xfd,
};
#endif

#endif
