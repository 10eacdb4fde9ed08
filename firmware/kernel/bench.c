// SPDX-License-Identifier: GPL-2.0
/*
 * A call loop for measuring the machine: write a decimal N to
 * /sys/kernel/debug/klpemu/call_loop and the writing task calls the traceable
 * bench_leaf() N times from the notrace bench_call_loop(), in its own context.
 * benchmarks/machine_speed.py times it against bare Unicorn running the same loop.
 */
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/proc_fs.h>
#include <linux/errno.h>
#include <linux/kprobes.h>

long bench_result;

/* Traceable: an fentry site at its first byte, like any kernel function. */
noinline int bench_leaf(int x)
{
	return x + 1;
}

/*
 * What the handler-overhead benchmark's livepatches redirect bench_leaf to when
 * two patches stack (ftrace_selftest_leaf being the other): the same code, and,
 * like a replacement function in a livepatch module, traceable.
 */
noinline int livepatch_bench_leaf(int x)
{
	return x + 1;
}

/*
 * Native kprobe and kretprobe handlers for the same benchmark: each counts its
 * calls, so a run can check that every traced call reached it, and does no
 * more, so what is measured is the kprobes path around it.
 */
unsigned long bench_kprobe_pre_calls, bench_kprobe_post_calls, bench_kretprobe_calls;

notrace int bench_kprobe_pre_handler(struct kprobe *p, struct pt_regs *regs)
{
	bench_kprobe_pre_calls++;
	return 0;
}

notrace void bench_kprobe_post_handler(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
	bench_kprobe_post_calls++;
}

notrace int bench_kretprobe_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	bench_kretprobe_calls++;
	return 0;
}

/* Each call's result feeds the next, so gcc must make every call. */
notrace noinline long bench_call_loop(long n)
{
	int acc = 0;
	long i;

	for (i = 0; i < n; i++) {
		acc = bench_leaf(acc);
		barrier();
	}
	return acc;
}

static ssize_t call_loop_write(const char *buf, size_t count)
{
	char num[24];
	size_t n = count < sizeof(num) - 1 ? count : sizeof(num) - 1;
	char *end;
	long calls;

	memcpy(num, buf, n);
	num[n] = '\0';
	calls = simple_strtol(num, &end, 10);
	if (end == num || calls < 0)
		return -EINVAL;
	WRITE_ONCE(bench_result, bench_call_loop(calls));
	return count;
}

DEFINE_PROC_ENTRY(bench_call_loop_entry, "/sys/kernel/debug/klpemu/call_loop", 0200, NULL, call_loop_write);
