// SPDX-License-Identifier: GPL-2.0
/*
 * klab_shadow_target: objects with a seeded bug that a shadow variable can
 * fix, for the shadow variable lab and for anyone who wants one to practise on.
 *
 *   insmod klab_shadow_target.ko sessions=3
 *
 * creates that many sessions at load (session0, session1, ...; at most
 * KLAB_MAX_SESSIONS), each its own kzalloc'd struct klab_session. Every read
 * of /proc/klab_sessions serves each session once, through
 * klab_session_show, which prints one line per session.
 *
 * The bug: a session should be served only so many times, then throttled,
 * but struct klab_session has no field to count with, so every read prints
 * "served" for ever. Sessions already exist when a fix is loaded and a
 * livepatch cannot grow their struct: the missing count belongs in a shadow
 * variable attached to each session, which is what the lab asks for.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#define KLAB_MAX_SESSIONS 6

/* What a patch may rely on: its layout is the ABI the fix sees. */
struct klab_session {
	int id;
	char name[16];
};

static int sessions = 2;
module_param(sessions, int, 0444);
MODULE_PARM_DESC(sessions, "how many sessions to create at load");

static struct klab_session *klab_sessions[KLAB_MAX_SESSIONS];
static int nr_sessions;
static struct proc_dir_entry *klab_proc;

/* The function a fix replaces: noinline so that it keeps its own fentry site. */
static noinline void klab_session_show(struct seq_file *m, struct klab_session *s)
{
	seq_printf(m, "%s: served\n", s->name);
}

static int klab_sessions_show(struct seq_file *m, void *v)
{
	int i;

	for (i = 0; i < nr_sessions; i++)
		klab_session_show(m, klab_sessions[i]);
	return 0;
}

static void klab_free_sessions(void)
{
	while (nr_sessions > 0)
		kfree(klab_sessions[--nr_sessions]);
}

static int klab_shadow_target_init(void)
{
	struct klab_session *s;
	int i;

	if (sessions < 1 || sessions > KLAB_MAX_SESSIONS) {
		pr_err("sessions=%d: give 1 to %d\n", sessions, KLAB_MAX_SESSIONS);
		return -EINVAL;
	}
	for (i = 0; i < sessions; i++) {
		s = kzalloc(sizeof(*s), GFP_KERNEL);
		if (!s) {
			klab_free_sessions();
			return -ENOMEM;
		}
		s->id = i;
		snprintf(s->name, sizeof(s->name), "session%d", i);
		klab_sessions[nr_sessions++] = s;
	}
	klab_proc = proc_create_single("klab_sessions", 0444, NULL, klab_sessions_show);
	if (!klab_proc) {
		klab_free_sessions();
		return -ENOMEM;
	}
	pr_info("%d sessions\n", nr_sessions);
	return 0;
}

static void klab_shadow_target_exit(void)
{
	proc_remove(klab_proc);
	klab_free_sessions();
}

module_init(klab_shadow_target_init);
module_exit(klab_shadow_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sessions never throttled: a bug for a shadow variable to fix");
