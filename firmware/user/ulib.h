/* The user programs' C library: system call wrappers and a few string helpers. */
#ifndef _USER_ULIB_H
#define _USER_ULIB_H

#include <klpemu/syscalls.h>

#define USER __attribute__((section(".user.text"), no_instrument_function))
#define USER_DATA __attribute__((section(".user.data")))
#define USER_BSS __attribute__((section(".user.bss")))

struct timespec {
	long tv_sec;
	long tv_nsec;
};

static inline USER long syscall3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ __volatile__("int $0x80"
			     : "=a"(ret)
			     : "a"(nr), "D"(a), "S"(b), "d"(c)
			     : "memory", "rcx", "r11");
	return ret;
}

static inline USER long u_read(int fd, void *buf, unsigned long n)
{
	return syscall3(__NR_read, fd, (long)buf, n);
}

static inline USER long u_write(int fd, const void *buf, unsigned long n)
{
	return syscall3(__NR_write, fd, (long)buf, n);
}

static inline USER long u_open(const char *path, int flags)
{
	return syscall3(__NR_open, (long)path, flags, 0);
}

static inline USER long u_close(int fd)
{
	return syscall3(__NR_close, fd, 0, 0);
}

static inline USER long u_msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	return syscall3(__NR_nanosleep, (long)&ts, 0, 0);
}

static inline USER long u_getpid(void)
{
	return syscall3(__NR_getpid, 0, 0, 0);
}

static inline USER unsigned long u_strlen(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

/* User-mode work between system calls: time a task spends outside the kernel. */
static inline USER unsigned long u_compute(unsigned long rounds)
{
	unsigned long x = 1;
	while (rounds--) {
		x = x * 6364136223846793005UL + 1442695040888963407UL;
		__asm__ __volatile__("" : "+r"(x));
	}
	return x;
}

#endif
