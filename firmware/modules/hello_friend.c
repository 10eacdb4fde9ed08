// SPDX-License-Identifier: GPL-2.0
/*
 * hello_friend: uses hello_greet from the hello module, so it loads only
 * after hello, and while it is loaded hello is in use (lsmod's "Used by")
 * and cannot be removed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/module.h>

int hello_greet(const char *who);

static int __init hello_friend_init(void)
{
	hello_greet("friend");
	return 0;
}

static void __exit hello_friend_exit(void)
{
	pr_info("bye\n");
}

module_init(hello_friend_init);
module_exit(hello_friend_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("a module that depends on hello");
