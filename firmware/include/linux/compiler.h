/* Compiler attributes with the kernel's names. */
#ifndef _LINUX_COMPILER_H
#define _LINUX_COMPILER_H

#include <linux/export.h>

/* No fentry site: ftrace and livepatch handlers and the code they call must not recurse. */
#define notrace __attribute__((no_instrument_function))
#define noinline __attribute__((noinline))
#define __always_inline inline __attribute__((always_inline))
#define __used __attribute__((used))
#define __aligned(x) __attribute__((aligned(x)))
#define __section(s) __attribute__((section(s)))
#define __noreturn __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define __maybe_unused __attribute__((unused))
/* Scheduler functions, so stack dumps can tell where a task went to sleep. */
#define __sched __section(".sched.text")

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define barrier() __asm__ __volatile__("" ::: "memory")
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define smp_mb() __asm__ __volatile__("mfence" ::: "memory")
#define smp_rmb() barrier()
#define smp_wmb() barrier()

#define offsetof(t, m) __builtin_offsetof(t, m)
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
