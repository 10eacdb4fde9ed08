// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel log: fixed-size records in a ring, each with its emulated
 * timestamp, level and caller. The machine reads the ring as dmesg.
 */
#include <linux/kernel.h>
#include <linux/printk.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <klpemu/hypercall.h>

#define PRINTK_RECORDS 1024
#define PRINTK_TEXT_MAX 200

struct printk_record {
	u64 seq;
	u64 ts_nsec;
	u32 caller_id; /* pid, or 0x80000000 | cpu in interrupt context, as Linux's caller ids */
	u16 text_len;
	u8 level;
	char text[PRINTK_TEXT_MAX];
};

struct printk_ringbuffer {
	u64 next_seq;
	struct printk_record records[PRINTK_RECORDS];
};

struct printk_ringbuffer printk_rb;

/* console_loglevel, default_message_loglevel, minimum_console_loglevel, default_console_loglevel */
int console_printk[4] = {
	CONSOLE_LOGLEVEL_DEFAULT,
	MESSAGE_LOGLEVEL_DEFAULT,
	CONSOLE_LOGLEVEL_MIN,
	CONSOLE_LOGLEVEL_DEFAULT,
};

static raw_spinlock_t logbuf_lock = __RAW_SPIN_LOCK_UNLOCKED;

static notrace void log_store(int level, const char *text, size_t len)
{
	unsigned long flags = raw_spin_lock_irqsave(&logbuf_lock);
	struct printk_record *r = &printk_rb.records[printk_rb.next_seq % PRINTK_RECORDS];
	struct pcpu_hot *pcpu = this_pcpu();

	r->seq = printk_rb.next_seq;
	r->ts_nsec = local_clock();
	r->caller_id = (pcpu->preempt_count & 0xffff0000) ? (0x80000000 | pcpu->cpu_number)
							   : (u32)pcpu->current_task->pid;
	r->level = level;
	r->text_len = len;
	memcpy(r->text, text, len);
	WRITE_ONCE(printk_rb.next_seq, printk_rb.next_seq + 1);
	raw_spin_unlock_irqrestore(&logbuf_lock, flags);
}

/* One record per line; a KERN_<level> prefix sets the level. */
notrace int vprintk(const char *fmt, va_list args)
{
	char buf[512], *line, *nl;
	int len, level = LOGLEVEL_DEFAULT;

	len = vsnprintf(buf, sizeof(buf), fmt, args);
	if (len >= (int)sizeof(buf))
		len = sizeof(buf) - 1;
	line = buf;
	if (line[0] == KERN_SOH[0] && line[1] >= '0' && line[1] <= '7') {
		level = line[1] - '0';
		line += 2;
	}
	while (*line) {
		size_t n;

		nl = strchr(line, '\n');
		n = nl ? (size_t)(nl - line) : strlen(line);
		log_store(level, line, n < PRINTK_TEXT_MAX ? n : PRINTK_TEXT_MAX);
		if (!nl)
			break;
		line = nl + 1;
	}
	return len;
}

notrace int printk(const char *fmt, ...)
{
	va_list args;
	int r;

	va_start(args, fmt);
	r = vprintk(fmt, args);
	va_end(args);
	return r;
}

void __noreturn panic(const char *fmt, ...)
{
	static char buf[256];
	va_list args;

	local_irq_disable();
	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	printk(KERN_EMERG "Kernel panic - not syncing: %s\n", buf);
	for (;;)
		hypercall(HC_PANIC, (long)buf, 0, 0);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(printk);
EXPORT_SYMBOL_GPL(console_printk);
