/* Memory accounting shown by /proc/meminfo. */
#ifndef _LINUX_MM_H
#define _LINUX_MM_H

#define PAGE_SIZE 4096UL
#define PAGE_SHIFT 12

struct vm_stat {
	unsigned long nr_file_pages;
	unsigned long nr_active;
	unsigned long nr_inactive;
	unsigned long updates;
};

extern struct vm_stat vm_stat;
extern unsigned long totalram_pages;
extern unsigned long kernel_image_pages;

#endif
