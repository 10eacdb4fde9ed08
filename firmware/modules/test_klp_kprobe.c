// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_kprobe: a kprobe on cmdline_proc_show, the function the livepatch
 * selftests patch. With has_post_handler=1 (the default) the probe has a post
 * handler, so it is armed on kprobe_ipmodify_ops and a livepatch of the same
 * function is refused (-EBUSY), or refuses it; without one the two share the
 * function. The handlers count their calls in read-only parameters.
 *
 *   insmod test_klp_kprobe has_post_handler=0
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/kprobes.h>

static bool has_post_handler = true;
module_param(has_post_handler, bool, 0444);
MODULE_PARM_DESC(has_post_handler, "give the kprobe a post handler (default true)");

static unsigned long pre_calls;
module_param(pre_calls, ulong, 0444);
MODULE_PARM_DESC(pre_calls, "how many times the pre handler ran (read-only)");

static unsigned long post_calls;
module_param(post_calls, ulong, 0444);
MODULE_PARM_DESC(post_calls, "how many times the post handler ran (read-only)");

static int pre_handler(struct kprobe *p, struct pt_regs *regs)
{
	pre_calls++;
	return 0;
}

static void post_handler(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
	post_calls++;
}

static struct kprobe kp = {
	.symbol_name = "cmdline_proc_show",
	.pre_handler = pre_handler,
};

static int __init test_klp_kprobe_init(void)
{
	if (has_post_handler)
		kp.post_handler = post_handler;
	return register_kprobe(&kp);
}

static void __exit test_klp_kprobe_exit(void)
{
	unregister_kprobe(&kp);
}

module_init(test_klp_kprobe_init);
module_exit(test_klp_kprobe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Livepatch test: a kprobe on the patched function, with or without a post handler");
