/* System call numbers, shared by the kernel and the user programs. */
#ifndef _KLPEMU_SYSCALLS_H
#define _KLPEMU_SYSCALLS_H

#define __NR_read 0
#define __NR_write 1
#define __NR_open 2
#define __NR_close 3
#define __NR_sched_yield 24
#define __NR_nanosleep 35
#define __NR_getpid 39
#define __NR_exit 60
#define __NR_init_module 175
#define __NR_delete_module 176
/* The console device the emulator's shell talks through. */
#define __NR_console_wait 450
#define __NR_console_done 451
#define NR_syscalls 452

#define O_RDONLY 0
#define O_WRONLY 1

/* Console requests, filled by the host, carried out by the guest's shell process. */
enum console_op {
	CONSOLE_IDLE = 0,
	CONSOLE_READ_FILE = 1,	/* path: write the file's contents to stdout */
	CONSOLE_WRITE_FILE = 2,	/* path, data: write data to the file */
	CONSOLE_INIT_MODULE = 3,	/* data: the address of a loaded struct module (8 bytes): init_module */
	CONSOLE_DELETE_MODULE = 4,	/* data: a module name, NUL-terminated: delete_module */
};

#define CONSOLE_PATH_MAX 256
#define CONSOLE_DATA_MAX 1024

struct console_request {
	int op;
	int len;
	char path[CONSOLE_PATH_MAX];
	char data[CONSOLE_DATA_MAX];
};

#endif
