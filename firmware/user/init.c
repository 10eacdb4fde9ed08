// SPDX-License-Identifier: GPL-2.0
/* /sbin/init: pid 1, mostly asleep, waking once a second. */
#include "ulib.h"

USER void init_main(void)
{
	for (;;) {
		u_compute(200);
		u_msleep(1000);
	}
}
