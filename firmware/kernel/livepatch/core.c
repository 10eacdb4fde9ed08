// SPDX-License-Identifier: GPL-2.0
/*
 * klp_enable_patch, as a livepatch module's init calls it. The checks, the
 * func stacks and the transition are the machine's (kernel/livepatch/ in
 * the host). The object callbacks are the module's own code, so they run
 * here: the machine answers KLP_RUN_CALLBACK with the callback it needs in
 * klp_call_request, in the order the kernel runs them, until it has a verdict.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <klpemu/hypercall.h>

/* What HC_KLP_ENABLE_PATCH answers besides an errno; an enum, so it is in DWARF. */
enum klp_enable_request { KLP_RUN_CALLBACK = 1 };

LIST_HEAD(klp_patches);
struct klp_patch *klp_transition_patch;

struct klp_call_request {
	long (*fn)(void *arg);
	void *arg;
} klp_call_request;

int klp_enable_patch(struct klp_patch *patch)
{
	long ret = hypercall(HC_KLP_ENABLE_PATCH, (long)patch, 0, 0);

	while (ret == KLP_RUN_CALLBACK)
		ret = hypercall(HC_KLP_CALLBACK_DONE, klp_call_request.fn(klp_call_request.arg), 0, 0);
	return ret;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL_GPL(klp_enable_patch);
