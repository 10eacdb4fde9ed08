// SPDX-License-Identifier: GPL-2.0
/* seq_file output helpers. */
#include <linux/kernel.h>
#include <linux/seq_file.h>
#include <linux/string.h>

void seq_printf(struct seq_file *m, const char *fmt, ...)
{
	va_list args;
	int len;

	if (m->count >= m->size)
		return;
	va_start(args, fmt);
	len = vsnprintf(m->buf + m->count, m->size - m->count, fmt, args);
	va_end(args);
	m->count += (size_t)len < m->size - m->count ? (size_t)len : m->size - m->count;
}

void seq_puts(struct seq_file *m, const char *s)
{
	size_t len = strlen(s);

	if (len > m->size - m->count)
		len = m->size - m->count;
	memcpy(m->buf + m->count, s, len);
	m->count += len;
}

void seq_putc(struct seq_file *m, char c)
{
	if (m->count < m->size)
		m->buf[m->count++] = c;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(seq_printf);
EXPORT_SYMBOL(seq_puts);
EXPORT_SYMBOL(seq_putc);
