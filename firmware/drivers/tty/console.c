// SPDX-License-Identifier: GPL-2.0
/*
 * The console device: the machine writes a request into console_mbox and
 * raises CONSOLE_VECTOR; the shell process, asleep in console_wait, wakes,
 * carries it out with ordinary system calls, writes its output to stdout and
 * reports with console_done.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/wait.h>
#include <linux/string.h>
#include <linux/interrupt.h>
#include <klpemu/syscalls.h>

#define CONSOLE_OUT_MAX 16384

struct console_mbox {
	struct console_request req;
	volatile int pending;	/* set by the machine */
	volatile int done;	/* set when the shell process reports */
	long status;
	unsigned long out_len;
	char out[CONSOLE_OUT_MAX];
};

struct console_mbox console_mbox;
static DECLARE_WAIT_QUEUE_HEAD(console_wait);

void console_interrupt(struct pt_regs *regs)
{
	irq_enter();
	wake_up(&console_wait);
	irq_exit();
}

long sys_console_wait(long req, long b, long c)
{
	long err = wait_event_interruptible(console_wait, READ_ONCE(console_mbox.pending));

	if (err)
		return err;
	console_mbox.pending = 0;
	console_mbox.out_len = 0;
	memcpy((void *)req, &console_mbox.req, sizeof(console_mbox.req));
	return 0;
}

long sys_console_done(long status, long b, long c)
{
	console_mbox.status = status;
	WRITE_ONCE(console_mbox.done, 1);
	return 0;
}

long console_write(const char *buf, size_t count)
{
	size_t room = CONSOLE_OUT_MAX - console_mbox.out_len;

	if (count > room)
		count = room;
	memcpy(console_mbox.out + console_mbox.out_len, buf, count);
	console_mbox.out_len += count;
	return count;
}
