/* printk, formatting and the odds and ends every file uses. */
#ifndef _LINUX_KERNEL_H
#define _LINUX_KERNEL_H

#include <linux/types.h>
#include <linux/compiler.h>
#include <stdarg.h>

#define KERN_SOH "\001"
#define KERN_EMERG KERN_SOH "0"
#define KERN_ALERT KERN_SOH "1"
#define KERN_CRIT KERN_SOH "2"
#define KERN_ERR KERN_SOH "3"
#define KERN_WARNING KERN_SOH "4"
#define KERN_NOTICE KERN_SOH "5"
#define KERN_INFO KERN_SOH "6"
#define KERN_DEBUG KERN_SOH "7"
#define LOGLEVEL_DEFAULT 4

#ifndef pr_fmt
#define pr_fmt(fmt) fmt
#endif
#define pr_emerg(fmt, ...) printk(KERN_EMERG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_err(fmt, ...) printk(KERN_ERR pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warn(fmt, ...) printk(KERN_WARNING pr_fmt(fmt), ##__VA_ARGS__)
#define pr_notice(fmt, ...) printk(KERN_NOTICE pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info(fmt, ...) printk(KERN_INFO pr_fmt(fmt), ##__VA_ARGS__)
#define pr_debug(fmt, ...) printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)

int printk(const char *fmt, ...) __printf(1, 2);
int vprintk(const char *fmt, va_list args);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list args);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
int scnprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
void panic(const char *fmt, ...) __printf(1, 2) __noreturn;
long simple_strtol(const char *s, char **end, unsigned int base);

#define BUG_ON(c) do { if (unlikely(c)) panic("BUG at %s:%d", __FILE__, __LINE__); } while (0)
#define WARN_ON(c) ({ int __c = !!(c); if (unlikely(__c)) pr_warn("WARNING: at %s:%d\n", __FILE__, __LINE__); __c; })
/* WARN_ON_ONCE(cond): each call site reports the first time only, as Linux's. */
#define WARN_ON_ONCE(c)                                                                 \
	({                                                                              \
		static bool __warned;                                                   \
		int __c = !!(c);                                                        \
		if (unlikely(__c) && !__warned) {                                       \
			__warned = true;                                                \
			printk(KERN_WARNING "------------[ cut here ]------------\n");  \
			printk(KERN_WARNING "WARNING: at %s:%d %s\n", __FILE__, __LINE__, __func__); \
		}                                                                       \
		__c;                                                                    \
	})
/* WARN(cond, fmt, ...): WARN_ON that says why, between the lines Linux's __warn prints. */
#define WARN(c, fmt, ...)                                                               \
	({                                                                              \
		int __c = !!(c);                                                        \
		if (unlikely(__c)) {                                                    \
			printk(KERN_WARNING "------------[ cut here ]------------\n");  \
			printk(KERN_WARNING fmt, ##__VA_ARGS__);                        \
			printk(KERN_WARNING "WARNING: at %s:%d\n", __FILE__, __LINE__); \
		}                                                                       \
		__c;                                                                    \
	})

extern char boot_command_line[];
const char *cmdline_get_param(const char *name);
long cmdline_get_long(const char *name, long dflt);

#endif
