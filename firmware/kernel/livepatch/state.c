// SPDX-License-Identifier: GPL-2.0
/*
 * System states: what a livepatch module asks about the states its patch
 * and the patches before it declare. The compatibility check at enable time
 * is the machine's; these only read klp_patches.
 */
#define pr_fmt(fmt) "livepatch: " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>

#define klp_for_each_state(patch, state) \
	for (state = (patch)->states; state && state->id; state++)

struct klp_state *klp_get_state(struct klp_patch *patch, unsigned long id)
{
	struct klp_state *state;

	klp_for_each_state(patch, state)
		if (state->id == id)
			return state;
	return NULL;
}

/* The newest state with this id among the patches installed before the one in transition. */
struct klp_state *klp_get_prev_state(unsigned long id)
{
	struct klp_patch *patch;
	struct klp_state *state, *last_state = NULL;

	if (WARN_ON_ONCE(!klp_transition_patch))
		return NULL;
	list_for_each_entry(patch, &klp_patches, list) {
		if (patch == klp_transition_patch)
			break;
		state = klp_get_state(patch, id);
		if (state)
			last_state = state;
	}
	return last_state;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL_GPL(klp_get_state);
EXPORT_SYMBOL_GPL(klp_get_prev_state);
