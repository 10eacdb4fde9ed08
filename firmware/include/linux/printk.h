/*
 * The console's log levels (kernel/printk/printk.c's console_printk, shown and
 * set through /proc/sys/kernel/printk): which records a console prints.
 */
#ifndef _LINUX_PRINTK_H
#define _LINUX_PRINTK_H

#include <linux/kernel.h>

#define CONSOLE_LOGLEVEL_SILENT 0	/* nothing reaches the console */
#define CONSOLE_LOGLEVEL_MIN 1		/* the lowest a write to /proc/sys/kernel/printk may set */
#define CONSOLE_LOGLEVEL_DEBUG 10	/* debug records too */
#define CONSOLE_LOGLEVEL_MOTORMOUTH 15	/* every record, whatever its level */
#define CONSOLE_LOGLEVEL_DEFAULT 7
#define MESSAGE_LOGLEVEL_DEFAULT LOGLEVEL_DEFAULT

extern int console_printk[4];

#define console_loglevel (console_printk[0])
#define default_message_loglevel (console_printk[1])
#define minimum_console_loglevel (console_printk[2])
#define default_console_loglevel (console_printk[3])

#endif
