// SPDX-License-Identifier: GPL-2.0
/* Per-CPU descriptor tables: GDT with a TSS, the shared IDT, %gs for per-CPU data. */
#include <linux/types.h>
#include <linux/sched.h>
#include <asm/segment.h>

struct x86_hw_tss {
	u32 reserved1;
	u64 sp0; /* the stack the CPU switches to when user mode is interrupted */
	u64 sp1;
	u64 sp2;
	u64 reserved2;
	u64 ist[7];
	u32 reserved3;
	u32 reserved4;
	u16 reserved5;
	u16 io_bitmap_base;
} __attribute__((packed));

struct gate_struct {
	u16 offset_low;
	u16 segment;
	u16 bits; /* ist:3, zero:5, type:5 (0xe interrupt gate), dpl:2, p:1 */
	u16 offset_middle;
	u32 offset_high;
	u32 reserved;
} __attribute__((packed));

struct desc_ptr {
	u16 size;
	u64 address;
} __attribute__((packed));

struct pcpu_hot pcpu_hot[NR_CPUS] __aligned(64);
struct x86_hw_tss cpu_tss[NR_CPUS] __aligned(64);
static u64 gdt_page[NR_CPUS][GDT_ENTRIES] __aligned(64);
static struct gate_struct idt_table[256] __aligned(4096);

extern char asm_sysvec_apic_timer_interrupt[], asm_sysvec_reschedule_ipi[];
extern char asm_console_interrupt[], entry_INT80_64[], asm_exc_int3[];

/* Flat 64-bit code (L=1) or data segment with the given privilege level. */
static notrace u64 segment_desc(int code, int dpl)
{
	u64 access = 0x80 | (dpl << 5) | 0x10 | (code ? 0x0a : 0x02);
	u64 flags = code ? 0xa : 0x8; /* G, and L for code */
	return 0xffffULL | (access << 40) | (0xfULL << 48) | (flags << 52);
}

static notrace void set_intr_gate(enum irq_vector vector, void *handler, int dpl)
{
	unsigned long addr = (unsigned long)handler;
	struct gate_struct *g = &idt_table[vector];

	g->offset_low = addr & 0xffff;
	g->segment = __KERNEL_CS;
	g->bits = 0x8e00 | (dpl << 13);
	g->offset_middle = (addr >> 16) & 0xffff;
	g->offset_high = addr >> 32;
	g->reserved = 0;
}

static notrace void idt_setup(void)
{
	set_intr_gate(LOCAL_TIMER_VECTOR, asm_sysvec_apic_timer_interrupt, 0);
	set_intr_gate(RESCHEDULE_VECTOR, asm_sysvec_reschedule_ipi, 0);
	set_intr_gate(CONSOLE_VECTOR, asm_console_interrupt, 0);
	set_intr_gate(IA32_SYSCALL_VECTOR, entry_INT80_64, 3);
	set_intr_gate(X86_TRAP_BP, asm_exc_int3, 3);
}

/* Load this CPU's GDT, TSS and the IDT, and point %gs at its per-CPU data. */
notrace void cpu_init(int cpu)
{
	u64 *gdt = gdt_page[cpu];
	unsigned long tss = (unsigned long)&cpu_tss[cpu];
	unsigned long gsbase = (unsigned long)&pcpu_hot[cpu];
	struct desc_ptr gdt_descr = { sizeof(gdt_page[0]) - 1, (u64)gdt };
	struct desc_ptr idt_descr = { sizeof(idt_table) - 1, (u64)idt_table };
	u64 limit = sizeof(struct x86_hw_tss) - 1;

	if (cpu == 0)
		idt_setup();
	gdt[GDT_ENTRY_KERNEL_CS] = segment_desc(1, 0);
	gdt[GDT_ENTRY_KERNEL_DS] = segment_desc(0, 0);
	gdt[GDT_ENTRY_USER_DS] = segment_desc(0, 3);
	gdt[GDT_ENTRY_USER_CS] = segment_desc(1, 3);
	gdt[GDT_ENTRY_TSS] = (limit & 0xffff) | ((tss & 0xffffff) << 16) | (0x89ULL << 40) |
			     (((tss >> 24) & 0xff) << 56);
	gdt[GDT_ENTRY_TSS + 1] = tss >> 32;
	cpu_tss[cpu].io_bitmap_base = sizeof(struct x86_hw_tss);

	__asm__ __volatile__("lgdt %0" : : "m"(gdt_descr));
	__asm__ __volatile__("pushq %0\n\t"
			     "leaq 1f(%%rip), %%rax\n\t"
			     "pushq %%rax\n\t"
			     "lretq\n"
			     "1:\n\t"
			     "movl %1, %%eax\n\t"
			     "movl %%eax, %%ds\n\t"
			     "movl %%eax, %%es\n\t"
			     "movl %%eax, %%ss\n\t"
			     : : "i"((long)__KERNEL_CS), "i"(__KERNEL_DS) : "rax", "memory");
	__asm__ __volatile__("ltr %w0" : : "r"(__TSS_SEL));
	__asm__ __volatile__("lidt %0" : : "m"(idt_descr));
	__asm__ __volatile__("wrmsr" : : "c"(0xc0000101), "a"((u32)gsbase), "d"((u32)(gsbase >> 32)));
	pcpu_hot[cpu].self = &pcpu_hot[cpu];
	pcpu_hot[cpu].cpu_number = cpu;
}

notrace void update_task_stack(struct task_struct *task)
{
	unsigned long top = (unsigned long)task_pt_regs(task) + sizeof(struct pt_regs);

	cpu_tss[smp_processor_id()].sp0 = top;
	this_pcpu()->top_of_stack = top;
}

/* What modules may link against (Linux's EXPORT_PER_CPU_SYMBOL(pcpu_hot)). */
EXPORT_SYMBOL(pcpu_hot);
