// SPDX-License-Identifier: GPL-2.0
/* Looking up the /proc entries the kernel's files registered. */
#include <linux/proc_fs.h>
#include <linux/string.h>

extern const struct proc_dir_entry __start_proc_entries[], __stop_proc_entries[];

const struct proc_dir_entry *proc_lookup(const char *name)
{
	const struct proc_dir_entry *de;

	for (de = __start_proc_entries; de < __stop_proc_entries; de++)
		if (!strcmp(de->name, name))
			return de;
	return NULL;
}
