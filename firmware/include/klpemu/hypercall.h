/*
 * Hypercalls: the few named crossings from the guest to the emulator. One
 * instruction each (an out to HYPERCALL_PORT); number in rax, arguments in
 * rdi, rsi, rdx, rcx, result in rax. The host reads these numbers from DWARF.
 */
#ifndef _KLPEMU_HYPERCALL_H
#define _KLPEMU_HYPERCALL_H

enum { HYPERCALL_PORT = 0xf4 };

enum klpemu_hypercall {
	HC_SEND_IPI = 1,	/* (cpu, vector) */
	HC_START_CPU = 2,	/* (cpu, entry, stack top) */
	HC_BOOT_DONE = 3,	/* () the kernel reached user space */
	HC_PANIC = 4,		/* (message) */
	HC_HOSTCALL_RETURN = 5,	/* (value) a host call into the guest returned */
	HC_FTRACE_INIT = 6,	/* () convert the fentry sites, build the records (ftrace_init) */
	HC_FTRACE_CALLBACK = 7,	/* (op, ip, parent_ip, fregs in rcx) an ops whose handler is Python */
	HC_KLP_ENABLE_PATCH = 8,	/* (patch) klp_enable_patch, from a livepatch module's init */
	HC_KLP_CALLBACK_DONE = 9,	/* (ret) a callback the livepatch core asked for returned */
	HC_KMALLOC = 10,	/* (size, gfp) kmalloc: memory from the machine's kernel heap */
	HC_KFREE = 11,		/* (ptr) kfree */
	/* 12-15: reserved for the livepatch core */
	HC_KPROBE_REGISTER = 16,	/* (kprobe) register_kprobe */
	HC_KPROBE_UNREGISTER = 17,	/* (kprobe) unregister_kprobe */
	HC_KRETPROBE_REGISTER = 18,	/* (kretprobe) register_kretprobe */
	HC_KRETPROBE_UNREGISTER = 19,	/* (kretprobe) unregister_kretprobe */
	HC_KPROBE_CALLBACK = 20,	/* (which, probe, regs, arg) a kprobe handler that is Python */
	HC_KPROBE_ENABLE = 21,		/* (kprobe, enable) enable_kprobe / disable_kprobe */
	HC_KPROBE_DUMP = 22,		/* (kprobe) dump_kprobe */
	HC_TRACE_SNAPSHOT = 23,		/* () a snapshot trigger: swap the top ring with its snapshot */
	/* 23-31: reserved for kprobes */
	HC_NR,
};

#ifndef __ASSEMBLY__
static inline __attribute__((no_instrument_function)) long
hypercall(long nr, long a0, long a1, long a2)
{
	long ret;
	__asm__ __volatile__("outb %%al, %[port]"
			     : "=a"(ret)
			     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), [port] "i"(HYPERCALL_PORT)
			     : "memory");
	return ret;
}

static inline __attribute__((no_instrument_function)) long
hypercall4(long nr, long a0, long a1, long a2, long a3)
{
	long ret;
	register long rcx __asm__("rcx") = a3;
	__asm__ __volatile__("outb %%al, %[port]"
			     : "=a"(ret)
			     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(rcx), [port] "i"(HYPERCALL_PORT)
			     : "memory");
	return ret;
}
#endif

#endif
