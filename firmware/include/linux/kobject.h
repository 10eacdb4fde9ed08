/*
 * Directories and attribute files a module adds under /sys/kernel
 * (kobject_create_and_add, sysfs_create_file, kobject_put), for what Linux's
 * modules do with them; reading a file calls its show() as sysfs does.
 *
 * This kernel has no sysfs of its own: /sys is the host's. A module keeps its
 * kobjects in the table __klpemu_kobjects, which the host finds by name in the
 * module's symbols and lists while the module is loaded. The layout the host
 * reads: struct kobject is name (a pointer), parent, attrs[KOBJ_MAX_ATTRS]
 * (pointers to struct attribute, NULL-terminated), in_use (an int); a
 * struct kobj_attribute is its attribute (name pointer, mode) then show and
 * store.
 */
#ifndef _LINUX_KOBJECT_H
#define _LINUX_KOBJECT_H

#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/mm.h>	/* PAGE_SIZE: what show() may write */

#define KOBJ_MAX_ATTRS 7
#define KOBJ_MAX 4

struct attribute {
	const char *name;
	umode_t mode;
};

struct kobject {
	const char *name;
	struct kobject *parent;
	struct attribute *attrs[KOBJ_MAX_ATTRS + 1];
	int in_use;
};

struct kobj_attribute {
	struct attribute attr;
	ssize_t (*show)(struct kobject *kobj, struct kobj_attribute *attr, char *buf);
	ssize_t (*store)(struct kobject *kobj, struct kobj_attribute *attr, const char *buf, size_t count);
};

#define __ATTR_RO(_name)                                                       \
	{ .attr = { .name = #_name, .mode = 0444 }, .show = _name##_show }

/* /sys/kernel itself: the only parent a module's directory has here. */
#define kernel_kobj ((struct kobject *)0)

static struct kobject __klpemu_kobjects[KOBJ_MAX] __used;

static inline struct kobject *kobject_create_and_add(const char *name, struct kobject *parent)
{
	for (int i = 0; i < KOBJ_MAX; i++) {
		struct kobject *k = &__klpemu_kobjects[i];

		if (!k->in_use) {
			k->name = name;
			k->parent = parent;
			k->attrs[0] = NULL;
			WRITE_ONCE(k->in_use, 1);
			return k;
		}
	}
	return NULL;
}

static inline int sysfs_create_file(struct kobject *kobj, const struct attribute *attr)
{
	for (int i = 0; i < KOBJ_MAX_ATTRS; i++) {
		if (!kobj->attrs[i]) {
			kobj->attrs[i + 1] = NULL;
			WRITE_ONCE(kobj->attrs[i], (struct attribute *)attr);
			return 0;
		}
	}
	return -ENOSPC;
}

static inline void kobject_put(struct kobject *kobj)
{
	if (kobj)
		WRITE_ONCE(kobj->in_use, 0);
}

#endif
