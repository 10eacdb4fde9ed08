/* The guest's own files (under /proc and /sys): a full path, a mode, show or write handlers. */
#ifndef _LINUX_PROC_FS_H
#define _LINUX_PROC_FS_H

#include <linux/types.h>
#include <linux/seq_file.h>

struct proc_dir_entry {
	const char *name;
	umode_t mode;
	int (*show)(struct seq_file *m, void *v);
	ssize_t (*write)(const char *buf, size_t count);
};

/*
 * Collected by the linker between __start_proc_entries and __stop_proc_entries; aligned to
 * their natural 8 bytes, or gcc pads 32-byte objects apart and the array has holes.
 */
#define DEFINE_PROC_ENTRY(var, name_, mode_, show_, write_)                      \
	static const struct proc_dir_entry var __used __aligned(8)                 \
		__section(".proc_entries") = {                                      \
		.name = name_, .mode = mode_, .show = show_, .write = write_,           \
	}

const struct proc_dir_entry *proc_lookup(const char *name);

/*
 * An entry made at run time, as a module makes its own: name under parent
 * (NULL: /proc), mode 0 meaning 0444, reads run show. NULL if the name is
 * taken or too long, or the table of such entries is full.
 */
struct proc_dir_entry *proc_create_single(const char *name, umode_t mode, struct proc_dir_entry *parent,
					  int (*show)(struct seq_file *m, void *v));
/* Removes an entry made by proc_create_single (NULL: nothing to do). */
void proc_remove(struct proc_dir_entry *de);

#endif
