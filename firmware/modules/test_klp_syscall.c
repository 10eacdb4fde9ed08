// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_syscall: a livepatch of the getpid system call. On this machine
 * the call is sys_getpid (Linux's x86_64 wrapper is __x64_sys_getpid).
 *
 * For test-syscall.sh: the processes named by klp_pids= are counted as each
 * runs the new code, which it does only once it has switched to the patched
 * state; /sys/kernel/test_klp_syscall/npids tells how many have not yet.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/livepatch.h>

/* Protects klp_pids */
static DEFINE_MUTEX(kpid_mutex);

static unsigned int npids, npids_pending;
static int klp_pids[NR_CPUS];
module_param_array(klp_pids, int, &npids_pending, 0);
MODULE_PARM_DESC(klp_pids, "Array of pids to be transitioned to livepatched state.");

static ssize_t npids_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return snprintf(buf, PAGE_SIZE, "%u\n", npids_pending);
}

static struct kobj_attribute klp_attr = __ATTR_RO(npids);
static struct kobject *klp_kobj;

static long lp_sys_getpid(long a, long b, long c)
{
	unsigned int i;

	mutex_lock(&kpid_mutex);
	if (npids_pending > 0) {
		for (i = 0; i < npids; i++) {
			if (current->pid == klp_pids[i]) {
				klp_pids[i] = 0;
				npids_pending--;
				break;
			}
		}
	}
	mutex_unlock(&kpid_mutex);

	return current->tgid;
}

static struct klp_func vmlinux_funcs[] = {
	{
		.old_name = "sys_getpid",
		.new_func = lp_sys_getpid,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		/* no name: vmlinux */
		.funcs = vmlinux_funcs,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_init(void)
{
	int ret;

	klp_kobj = kobject_create_and_add("test_klp_syscall", kernel_kobj);
	if (!klp_kobj)
		return -ENOMEM;

	ret = sysfs_create_file(klp_kobj, &klp_attr.attr);
	if (ret) {
		kobject_put(klp_kobj);
		return ret;
	}

	/* How many to wait for, before the pending count goes down. */
	npids = npids_pending;

	return klp_enable_patch(&patch);
}

static void livepatch_exit(void)
{
	kobject_put(klp_kobj);
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Livepatch test: syscall transition");
