// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp-call_getpid (Linux's selftest program of that name): calls getpid
 * in a loop until it is told to stop, then exits. Its SIGTERM handler is this
 * flag, one per pid, which the shell's `kill` sets.
 */
#include "ulib.h"

#define MAX_PIDS 16384	/* pids beyond it are not started: the shell checks */

/* In .user.bss, after every other user variable: their addresses stay as they were. */
volatile char call_getpid_stop[MAX_PIDS] USER_BSS;

USER void call_getpid_main(void)
{
	long pid = u_getpid();

	while (!call_getpid_stop[pid]) {
		u_getpid();
		/*
		 * Linux's loop has nothing else. Here a busy CPU costs the host about a minute per
		 * emulated second, so the loop naps: the calls keep coming, every millisecond.
		 */
		u_msleep(1);
	}
	syscall3(__NR_exit, 0, 0, 0);
}
