// SPDX-License-Identifier: GPL-2.0
/*
 * open/read/write/close over the /proc entries. A read runs the entry's show
 * function into a seq_file buffer at the first read and copies from it, as
 * seq_read_iter does.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/errno.h>
#include <linux/proc_fs.h>
#include <klpemu/syscalls.h>

#define SEQ_BUF_SIZE 4096

static char seq_buffers[NR_TASKS][NR_OPEN][SEQ_BUF_SIZE];

long console_write(const char *buf, size_t count);

static struct file *fget(long fd)
{
	if (fd < 3 || fd >= 3 + NR_OPEN || !current->files[fd - 3].entry)
		return NULL;
	return &current->files[fd - 3];
}

long sys_open(long path, long flags, long unused)
{
	const char *name = (const char *)path;
	const struct proc_dir_entry *de;
	int i;

	de = proc_lookup(name);
	if (!de)
		return -ENOENT;
	if ((flags & O_WRONLY) ? !(de->mode & 0200) : !(de->mode & 0400))
		return -EACCES;
	for (i = 0; i < NR_OPEN; i++) {
		struct file *f = &current->files[i];

		if (!f->entry) {
			f->entry = de;
			f->flags = flags;
			f->pos = 0;
			f->count = 0;
			f->buf = seq_buffers[current - task_table][i];
			return i + 3;
		}
	}
	return -EMFILE;
}

long sys_close(long fd, long unused1, long unused2)
{
	struct file *f = fget(fd);

	if (!f)
		return -EBADF;
	f->entry = NULL;
	return 0;
}

/* Out of line, as Linux's: a trace of a show function names seq_read_iter as its parent. */
noinline ssize_t seq_read_iter(struct file *f, char *ubuf, size_t count)
{
	size_t n;

	if (f->pos == 0) {
		struct seq_file m = { .buf = f->buf, .size = SEQ_BUF_SIZE };
		int err;

		if (!f->entry->show)
			return -EINVAL;
		err = f->entry->show(&m, NULL);
		if (err)
			return err;
		f->count = m.count;
	}
	n = f->count - f->pos;
	if (n > count)
		n = count;
	memcpy(ubuf, f->buf + f->pos, n);
	f->pos += n;
	return n;
}

/* Out of line, as Linux's: the read every file goes through, where kprobe examples probe. */
noinline ssize_t vfs_read(struct file *f, char *buf, size_t count)
{
	if (f->flags & O_WRONLY)
		return -EBADF;
	return seq_read_iter(f, buf, count);
}

long sys_read(long fd, long buf, long count)
{
	struct file *f = fget(fd);

	if (!f)
		return -EBADF;
	return vfs_read(f, (char *)buf, count);
}

long sys_write(long fd, long buf, long count)
{
	struct file *f;

	if (fd == 1 || fd == 2)
		return console_write((const char *)buf, count);
	f = fget(fd);
	if (!f || !(f->flags & O_WRONLY))
		return -EBADF;
	if (!f->entry->write)
		return -EINVAL;
	return f->entry->write((const char *)buf, count);
}
