// SPDX-License-Identifier: GPL-2.0
/*
 * sh: the process the emulator's shell runs its file commands in, so that
 * reading /proc/cmdline happens in a real task, through real system calls.
 */
#include "ulib.h"

static struct console_request sh_req USER_DATA;
static char sh_buf[512] USER_DATA;

static USER long sh_cat(const char *path)
{
	long fd = u_open(path, O_RDONLY), n;

	if (fd < 0)
		return fd;
	while ((n = u_read(fd, sh_buf, sizeof(sh_buf))) > 0)
		u_write(1, sh_buf, n);
	u_close(fd);
	return n;
}

static USER long sh_echo(const char *path, const char *data, long len)
{
	long fd = u_open(path, O_WRONLY), n;

	if (fd < 0)
		return fd;
	n = syscall3(__NR_write, fd, (long)data, len);
	u_close(fd);
	return n < 0 ? n : 0;
}

USER void sh_main(void)
{
	for (;;) {
		long status;

		if (syscall3(__NR_console_wait, (long)&sh_req, 0, 0))
			continue;
		switch (sh_req.op) {
		case CONSOLE_READ_FILE:
			status = sh_cat(sh_req.path);
			break;
		case CONSOLE_WRITE_FILE:
			status = sh_echo(sh_req.path, sh_req.data, sh_req.len);
			break;
		case CONSOLE_INIT_MODULE:	/* insmod: the host has loaded it; run its init here */
			status = syscall3(__NR_init_module, *(long *)sh_req.data, 0, 0);
			break;
		case CONSOLE_DELETE_MODULE:	/* rmmod */
			status = syscall3(__NR_delete_module, (long)sh_req.data, 0, 0);
			break;
		default:
			status = -22;
		}
		syscall3(__NR_console_done, status, 0, 0);
	}
}
