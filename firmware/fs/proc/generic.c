// SPDX-License-Identifier: GPL-2.0
/*
 * Looking up /proc entries: the kernel's own, registered at build time, and
 * those made at run time by proc_create_single (modules make theirs so). The
 * machine lists the run-time ones from proc_dynamic for /proc's directory.
 */
#include <linux/kernel.h>
#include <linux/proc_fs.h>
#include <linux/spinlock.h>
#include <linux/string.h>

extern const struct proc_dir_entry __start_proc_entries[], __stop_proc_entries[];

#define PROC_DYNAMIC_MAX 16
#define PROC_PATH_MAX 64

/* An entry and the full path its name points to; free while de.name is NULL. */
struct proc_dynamic_entry {
	struct proc_dir_entry de;
	char path[PROC_PATH_MAX];
};

struct proc_dynamic_entry proc_dynamic[PROC_DYNAMIC_MAX];
static raw_spinlock_t proc_dynamic_lock = __RAW_SPIN_LOCK_UNLOCKED;

static const struct proc_dir_entry *lookup_locked(const char *name)
{
	const struct proc_dir_entry *de;
	int i;

	for (de = __start_proc_entries; de < __stop_proc_entries; de++)
		if (!strcmp(de->name, name))
			return de;
	for (i = 0; i < PROC_DYNAMIC_MAX; i++)
		if (proc_dynamic[i].de.name && !strcmp(proc_dynamic[i].de.name, name))
			return &proc_dynamic[i].de;
	return NULL;
}

const struct proc_dir_entry *proc_lookup(const char *name)
{
	unsigned long flags = raw_spin_lock_irqsave(&proc_dynamic_lock);
	const struct proc_dir_entry *de = lookup_locked(name);

	raw_spin_unlock_irqrestore(&proc_dynamic_lock, flags);
	return de;
}

struct proc_dir_entry *proc_create_single(const char *name, umode_t mode, struct proc_dir_entry *parent,
					  int (*show)(struct seq_file *m, void *v))
{
	struct proc_dynamic_entry *e = NULL;
	char path[PROC_PATH_MAX];
	unsigned long flags;
	int i;

	if (snprintf(path, sizeof(path), "%s/%s", parent ? parent->name : "/proc", name) >= (int)sizeof(path))
		return NULL;
	flags = raw_spin_lock_irqsave(&proc_dynamic_lock);
	if (lookup_locked(path)) {
		raw_spin_unlock_irqrestore(&proc_dynamic_lock, flags);
		pr_warn("proc_dir_entry '%s' already registered\n", path);
		return NULL;
	}
	for (i = 0; i < PROC_DYNAMIC_MAX && !e; i++)
		if (!proc_dynamic[i].de.name)
			e = &proc_dynamic[i];
	if (e) {
		memcpy(e->path, path, sizeof(path));
		e->de.mode = (mode & 0777) ? (mode & 0777) : 0444;
		e->de.show = show;
		e->de.write = NULL;
		WRITE_ONCE(e->de.name, e->path);
	}
	raw_spin_unlock_irqrestore(&proc_dynamic_lock, flags);
	return e ? &e->de : NULL;
}

void proc_remove(struct proc_dir_entry *de)
{
	struct proc_dynamic_entry *e;
	unsigned long flags;

	if (!de)
		return;
	e = container_of(de, struct proc_dynamic_entry, de);
	if (WARN_ON(e < proc_dynamic || e >= proc_dynamic + PROC_DYNAMIC_MAX))
		return;
	flags = raw_spin_lock_irqsave(&proc_dynamic_lock);
	WRITE_ONCE(de->name, NULL);
	/* A file still open on it reads nothing more (-EINVAL) rather than call into a freed module. */
	WRITE_ONCE(de->show, NULL);
	raw_spin_unlock_irqrestore(&proc_dynamic_lock, flags);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(proc_create_single);
EXPORT_SYMBOL(proc_remove);
