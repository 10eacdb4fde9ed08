// SPDX-License-Identifier: GPL-2.0
/* sysmon: a monitoring daemon that reads /proc/meminfo a few times a second. */
#include "ulib.h"

static char sysmon_buf[1024] USER_DATA;
static const char meminfo_path[] __attribute__((section(".user.rodata"))) = "/proc/meminfo";

USER void sysmon_main(void)
{
	for (;;) {
		long fd = u_open(meminfo_path, O_RDONLY);

		if (fd >= 0) {
			while (u_read(fd, sysmon_buf, sizeof(sysmon_buf)) > 0)
				;
			u_close(fd);
		}
		u_compute(2000);
		u_msleep(250);
	}
}
