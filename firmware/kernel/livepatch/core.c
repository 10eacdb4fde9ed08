// SPDX-License-Identifier: GPL-2.0
/*
 * klp_enable_patch, as a livepatch module's init calls it. The checks, the
 * func stacks and the transition are the machine's (kernel/livepatch/ in
 * the host); this hands it the patch and returns its verdict.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <klpemu/hypercall.h>

LIST_HEAD(klp_patches);
struct klp_patch *klp_transition_patch;

int klp_enable_patch(struct klp_patch *patch)
{
	return hypercall(HC_KLP_ENABLE_PATCH, (long)patch, 0, 0);
}
