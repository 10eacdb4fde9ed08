/* Interrupt flag control. */
#ifndef _ASM_IRQFLAGS_H
#define _ASM_IRQFLAGS_H

#include <linux/compiler.h>

static __always_inline unsigned long arch_local_save_flags(void)
{
	unsigned long flags;
	__asm__ __volatile__("pushfq; popq %0" : "=rm"(flags) : : "memory");
	return flags;
}

static __always_inline void local_irq_disable(void)
{
	__asm__ __volatile__("cli" ::: "memory");
}

static __always_inline void local_irq_enable(void)
{
	__asm__ __volatile__("sti" ::: "memory");
}

static __always_inline unsigned long local_irq_save(void)
{
	unsigned long flags = arch_local_save_flags();
	local_irq_disable();
	return flags;
}

static __always_inline void local_irq_restore(unsigned long flags)
{
	if (flags & 0x200)
		local_irq_enable();
}

static __always_inline int irqs_disabled(void)
{
	return !(arch_local_save_flags() & 0x200);
}

#endif
