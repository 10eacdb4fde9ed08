// SPDX-License-Identifier: GPL-2.0
/*
 * kmalloc and kfree. The heap itself is the machine's (klpemu/kernel/slab.py):
 * one hypercall each way, so the host knows every live object and can tell a
 * bad kfree from a good one.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <klpemu/hypercall.h>

void *kmalloc(size_t size, gfp_t flags)
{
	void *p;

	if (!size)
		return ZERO_SIZE_PTR;
	p = (void *)hypercall(HC_KMALLOC, size, flags, 0);
	if (p && (flags & __GFP_ZERO))
		memset(p, 0, size);
	return p;
}

void kfree(const void *ptr)
{
	if (unlikely(ZERO_OR_NULL_PTR(ptr)))
		return;
	hypercall(HC_KFREE, (long)ptr, 0, 0);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(kmalloc);
EXPORT_SYMBOL(kfree);
