// SPDX-License-Identifier: GPL-2.0
/*
 * klab_sleeper: kernel threads that go to sleep inside a chosen function and
 * stay there until told to leave, so that a livepatch of that function has a
 * task in its way. For the teaching labs, and for anyone who wants a task
 * blocked inside a function on demand.
 *
 *   insmod klab_sleeper.ko func=klab_parse_table,klab_commit
 *
 * starts one thread per name given, klabd/0, klabd/1, ..., in that order.
 * Thread i reaches its function through klab_thread -> klab_run_job ->
 * FUNC -> klab_wait and sleeps there on a wait queue. Writing its pid to
 * /sys/module/klab_sleeper/parameters/release lets it go (-1 lets every
 * thread go); it returns out of FUNC and exits. rmmod lets them all go.
 *
 * The limit: FUNC is one of this module's own functions (klab_read_config,
 * klab_parse_table, klab_apply_entry, klab_commit, klab_flush_log). A thread
 * cannot be made to sleep inside an arbitrary kernel function, which would
 * have to call back into us; these stand for the code a real patch changes.
 * A parameter write has no callback here, so a sleeper rechecks release
 * every KLAB_POLL_MS while it waits on the queue.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/wait.h>

#define KLAB_MAX_THREADS 6
#define KLAB_POLL_MS 20

struct klab_job {
	int id;
	int (*fn)(struct klab_job *job);
	struct task_struct *task;
	char comm[TASK_COMM_LEN];
};

static char *func = "klab_commit";
module_param(func, charp, 0444);
MODULE_PARM_DESC(func, "comma-separated functions to sleep in, one thread each");

static long release;
module_param(release, long, 0644);
MODULE_PARM_DESC(release, "write a sleeper's pid to let it go, -1 for all");

static int threads;
module_param(threads, int, 0444);
MODULE_PARM_DESC(threads, "how many threads are still asleep (read-only)");

static DECLARE_WAIT_QUEUE_HEAD(klab_wq);
static struct klab_job jobs[KLAB_MAX_THREADS];
static int nr_jobs;
static bool leaving;

static bool klab_released(struct klab_job *job)
{
	long r = READ_ONCE(release);

	return READ_ONCE(leaving) || r == -1 || r == job->task->pid;
}

static noinline void klab_wait(struct klab_job *job)
{
	struct wait_queue_entry w = { .task = current };

	for (;;) {
		prepare_to_wait(&klab_wq, &w, TASK_INTERRUPTIBLE);
		if (klab_released(job))
			break;
		schedule_timeout(msecs_to_jiffies(KLAB_POLL_MS));
	}
	finish_wait(&klab_wq, &w);
}

/* Each logs its own name, which also keeps gcc from folding them into one. */
#define KLAB_STEP(name)                                                        \
	static noinline int name(struct klab_job *job)                         \
	{                                                                      \
		pr_info("%s: %s asleep\n", #name, job->comm);                  \
		klab_wait(job);                                                \
		barrier();                                                     \
		pr_info("%s: %s released\n", #name, job->comm);                \
		return job->id;                                                \
	}

KLAB_STEP(klab_read_config)
KLAB_STEP(klab_parse_table)
KLAB_STEP(klab_apply_entry)
KLAB_STEP(klab_commit)
KLAB_STEP(klab_flush_log)

static const struct {
	const char *name;
	int (*fn)(struct klab_job *job);
} klab_steps[] = {
	{ "klab_read_config", klab_read_config },
	{ "klab_parse_table", klab_parse_table },
	{ "klab_apply_entry", klab_apply_entry },
	{ "klab_commit", klab_commit },
	{ "klab_flush_log", klab_flush_log },
};

static noinline int klab_run_job(struct klab_job *job)
{
	int ret = job->fn(job);

	barrier();
	return ret;
}

static int klab_thread(void *data)
{
	struct klab_job *job = data;

	klab_run_job(job);
	WRITE_ONCE(threads, READ_ONCE(threads) - 1);
	return 0;
}

/* The step named by s[0..len), or NULL. */
static int (*klab_lookup(const char *s, size_t len))(struct klab_job *)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(klab_steps); i++)
		if (strlen(klab_steps[i].name) == len && !strncmp(klab_steps[i].name, s, len))
			return klab_steps[i].fn;
	return NULL;
}

static int klab_sleeper_init(void)
{
	const char *s = func;

	/* Parse everything before starting anything: bad input starts no thread. */
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);

		if (nr_jobs == KLAB_MAX_THREADS) {
			pr_err("more than %d functions in func=\n", KLAB_MAX_THREADS);
			return -EINVAL;
		}
		jobs[nr_jobs].fn = klab_lookup(s, len);
		if (!jobs[nr_jobs].fn) {
			pr_err("func=: '%.*s' is not one of this module's functions\n", (int)len, s);
			return -EINVAL;
		}
		jobs[nr_jobs].id = nr_jobs;
		snprintf(jobs[nr_jobs].comm, sizeof(jobs[nr_jobs].comm), "klabd/%d", nr_jobs);
		nr_jobs++;
		s = end ? end + 1 : s + len;
	}
	if (!nr_jobs) {
		pr_err("func= names no function\n");
		return -EINVAL;
	}
	threads = nr_jobs;
	for (int i = 0; i < nr_jobs; i++)
		jobs[i].task = kthread_create(klab_thread, &jobs[i], jobs[i].comm);
	return 0;
}

static void klab_sleeper_exit(void)
{
	WRITE_ONCE(leaving, true);
	wake_up(&klab_wq);
	/* Our text must outlive every thread still running it. */
	while (READ_ONCE(threads) > 0)
		msleep(KLAB_POLL_MS);
}

module_init(klab_sleeper_init);
module_exit(klab_sleeper_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Kernel threads that sleep inside a chosen function until released");
