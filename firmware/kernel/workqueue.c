// SPDX-License-Identifier: GPL-2.0
/*
 * Workqueues: work items queued by schedule_work() and run by kworker threads
 * of one worker pool. The pool lock guards the worklist, the workers' state,
 * the flushers and every work item's PENDING bit; it is taken with interrupts
 * off, since delayed work is queued from the timer interrupt.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

/* Enough for a few sleeping work items at once; workers are never freed (the task table is static). */
#define WORKER_POOL_MAX 4

struct worker {
	struct task_struct *task;
	struct work_struct *current_work;
	work_func_t current_func;
	bool idle;		/* asleep, or about to be, waiting for work */
	int id;
};

/* A flush_work caller on its stack, waiting for one execution of work to end. */
struct wq_flusher {
	struct list_head node;
	struct work_struct *work;
	struct worker *worker;	/* running the execution waited for; NULL until it starts */
	bool done;
};

struct worker_pool {
	raw_spinlock_t lock;
	struct list_head worklist;
	struct list_head flushers;
	struct worker workers[WORKER_POOL_MAX];
	int nr_workers;
	int nr_running;		/* workers inside a work function */
	bool manager_active;	/* a worker is creating the spare */
	struct wait_queue_head flush_wait;
};

static struct worker_pool pool = {
	.lock = __RAW_SPIN_LOCK_UNLOCKED,
	.worklist = LIST_HEAD_INIT(pool.worklist),
	.flushers = LIST_HEAD_INIT(pool.flushers),
	.flush_wait = { __RAW_SPIN_LOCK_UNLOCKED, LIST_HEAD_INIT(pool.flush_wait.head) },
};

static int worker_thread(void *arg);

static struct worker *find_worker_executing_work(struct work_struct *work)
{
	int i;

	for (i = 0; i < pool.nr_workers; i++)
		if (pool.workers[i].current_work == work && pool.workers[i].current_func == work->func)
			return &pool.workers[i];
	return NULL;
}

/* The first queued item not already running on a worker: a work item never runs twice at once. */
static struct work_struct *first_runnable_work(void)
{
	struct work_struct *work;

	list_for_each_entry(work, &pool.worklist, entry)
		if (!find_worker_executing_work(work))
			return work;
	return NULL;
}

static void wake_up_worker(void)
{
	int i;

	for (i = 0; i < pool.nr_workers; i++) {
		if (pool.workers[i].idle) {
			pool.workers[i].idle = false;
			wake_up_process(pool.workers[i].task);
			return;
		}
	}
}

/* Flushers of a queued instance that will not run now (cancelled) have nothing left to wait for. */
static void complete_flushers(struct work_struct *work, struct worker *worker)
{
	struct wq_flusher *f, *n;
	bool woke = false;

	list_for_each_entry_safe(f, n, &pool.flushers, node) {
		if (f->work == work && f->worker == worker) {
			list_del_init(&f->node);
			WRITE_ONCE(f->done, true);
			woke = true;
		}
	}
	if (woke)
		wake_up(&pool.flush_wait);
}

/* Put a work item whose PENDING bit the caller set on the worklist. */
static void __queue_work(struct work_struct *work)
{
	unsigned long flags = raw_spin_lock_irqsave(&pool.lock);

	list_add_tail(&work->entry, &pool.worklist);
	wake_up_worker();
	raw_spin_unlock_irqrestore(&pool.lock, flags);
}

static bool test_and_set_pending(struct work_struct *work)
{
	unsigned long flags = raw_spin_lock_irqsave(&pool.lock);
	bool was = work->data & WORK_STRUCT_PENDING;

	work->data |= WORK_STRUCT_PENDING;
	raw_spin_unlock_irqrestore(&pool.lock, flags);
	return was;
}

static void clear_pending(struct work_struct *work)
{
	unsigned long flags = raw_spin_lock_irqsave(&pool.lock);

	work->data &= ~WORK_STRUCT_PENDING;
	raw_spin_unlock_irqrestore(&pool.lock, flags);
}

bool schedule_work(struct work_struct *work)
{
	if (test_and_set_pending(work))
		return false;
	__queue_work(work);
	return true;
}

void delayed_work_timer_fn(struct timer_list *t)
{
	struct delayed_work *dwork = container_of(t, struct delayed_work, timer);

	__queue_work(&dwork->work);
}

bool schedule_delayed_work(struct delayed_work *dwork, unsigned long delay)
{
	/* Interrupts off from taking PENDING to arming the timer: a canceller spins on that window. */
	unsigned long flags = local_irq_save();
	bool queued = !test_and_set_pending(&dwork->work);

	if (queued) {
		if (!delay) {
			__queue_work(&dwork->work);
		} else {
			dwork->timer.expires = jiffies + delay;
			add_timer(&dwork->timer);
		}
	}
	local_irq_restore(flags);
	return queued;
}

/* Keep a spare idle worker while work runs, so queued work finds one even if this work sleeps. */
static void manage_workers(void)
{
	char name[TASK_COMM_LEN];
	struct worker *worker;
	unsigned long flags;

	flags = raw_spin_lock_irqsave(&pool.lock);
	if (pool.manager_active || pool.nr_running < pool.nr_workers || pool.nr_workers == WORKER_POOL_MAX) {
		raw_spin_unlock_irqrestore(&pool.lock, flags);
		return;
	}
	pool.manager_active = true;
	worker = &pool.workers[pool.nr_workers];
	worker->id = pool.nr_workers + 1;
	raw_spin_unlock_irqrestore(&pool.lock, flags);

	snprintf(name, sizeof(name), "kworker/0:%d", worker->id);
	worker->task = kthread_create(worker_thread, worker, name);

	flags = raw_spin_lock_irqsave(&pool.lock);
	pool.nr_workers++;
	pool.manager_active = false;
	raw_spin_unlock_irqrestore(&pool.lock, flags);
}

static noinline void process_one_work(struct worker *worker, struct work_struct *work)
{
	worker->current_func(work);
}

static int worker_thread(void *arg)
{
	struct worker *worker = arg;
	struct work_struct *work;
	struct wq_flusher *f;
	unsigned long flags;

	for (;;) {
		flags = raw_spin_lock_irqsave(&pool.lock);
		work = first_runnable_work();
		if (!work) {
			/* Under the lock: a waker that queues after this sees idle and wakes us. */
			worker->idle = true;
			set_current_state(TASK_INTERRUPTIBLE);
			raw_spin_unlock_irqrestore(&pool.lock, flags);
			schedule();
			continue;
		}
		worker->idle = false;
		list_del_init(&work->entry);
		work->data &= ~WORK_STRUCT_PENDING;	/* from here on it may be queued again */
		worker->current_work = work;
		worker->current_func = work->func;
		list_for_each_entry(f, &pool.flushers, node)
			if (f->work == work && !f->worker)
				f->worker = worker;
		pool.nr_running++;
		raw_spin_unlock_irqrestore(&pool.lock, flags);

		manage_workers();
		process_one_work(worker, work);

		/* work may be freed by now: it is only compared, never read. */
		flags = raw_spin_lock_irqsave(&pool.lock);
		pool.nr_running--;
		worker->current_work = NULL;
		worker->current_func = NULL;
		complete_flushers(work, worker);
		raw_spin_unlock_irqrestore(&pool.lock, flags);
	}
	return 0;
}

bool flush_work(struct work_struct *work)
{
	struct wq_flusher f = { .work = work };
	unsigned long flags = raw_spin_lock_irqsave(&pool.lock);

	if (list_empty(&work->entry)) {
		/* Not queued: wait for the running instance, if there is one. */
		f.worker = find_worker_executing_work(work);
		if (!f.worker) {
			raw_spin_unlock_irqrestore(&pool.lock, flags);
			return false;
		}
	}
	list_add_tail(&f.node, &pool.flushers);
	raw_spin_unlock_irqrestore(&pool.lock, flags);
	wait_event(pool.flush_wait, READ_ONCE(f.done));
	return true;
}

bool flush_delayed_work(struct delayed_work *dwork)
{
	unsigned long flags = local_irq_save();

	if (del_timer(&dwork->timer))
		__queue_work(&dwork->work);	/* due now: PENDING stays set */
	local_irq_restore(flags);
	return flush_work(&dwork->work);
}

/*
 * Own the work's PENDING bit: 1 if the work was pending (queued or its timer armed) and is no
 * longer, 0 if it was idle, -EAGAIN while someone else is between setting PENDING and queueing.
 */
static int try_to_grab_pending(struct work_struct *work, struct delayed_work *dwork)
{
	unsigned long flags;

	if (dwork && del_timer(&dwork->timer))
		return 1;
	flags = raw_spin_lock_irqsave(&pool.lock);
	if (!(work->data & WORK_STRUCT_PENDING)) {
		work->data |= WORK_STRUCT_PENDING;
		raw_spin_unlock_irqrestore(&pool.lock, flags);
		return 0;
	}
	if (!list_empty(&work->entry)) {
		list_del_init(&work->entry);
		complete_flushers(work, NULL);
		raw_spin_unlock_irqrestore(&pool.lock, flags);
		return 1;
	}
	raw_spin_unlock_irqrestore(&pool.lock, flags);
	return -11; /* -EAGAIN */
}

static bool __cancel_work_sync(struct work_struct *work, struct delayed_work *dwork)
{
	int ret;

	while ((ret = try_to_grab_pending(work, dwork)) < 0)
		cond_resched();
	/* Holding PENDING keeps the work from being queued again, even by itself, while we wait. */
	flush_work(work);
	clear_pending(work);
	return ret;
}

bool cancel_work_sync(struct work_struct *work)
{
	return __cancel_work_sync(work, NULL);
}

bool cancel_delayed_work_sync(struct delayed_work *dwork)
{
	return __cancel_work_sync(&dwork->work, dwork);
}

/* The pool's first worker; the others are created as work needs them. */
void workqueue_init(void)
{
	struct worker *worker = &pool.workers[0];

	worker->id = 1;
	worker->task = kthread_create(worker_thread, worker, "kworker/0:1");
	pool.nr_workers = 1;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(schedule_work);
EXPORT_SYMBOL(schedule_delayed_work);
EXPORT_SYMBOL(delayed_work_timer_fn);
EXPORT_SYMBOL_GPL(flush_work);
EXPORT_SYMBOL(flush_delayed_work);
EXPORT_SYMBOL_GPL(cancel_work_sync);
EXPORT_SYMBOL(cancel_delayed_work_sync);
