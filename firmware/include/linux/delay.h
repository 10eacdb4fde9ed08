/* Sleeping for a while (include/linux/delay.h): msleep and friends, kept by kernel/time/timer.c. */
#ifndef _LINUX_DELAY_H
#define _LINUX_DELAY_H

void msleep(unsigned int msecs);
unsigned long msleep_interruptible(unsigned int msecs);

#endif
