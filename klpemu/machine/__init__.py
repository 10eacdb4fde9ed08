"""The hardware: CPUs, memory and page tables, interrupts, hypercalls, the kernel image."""
