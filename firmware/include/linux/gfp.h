/* Allocation flags. The heap never sleeps, so they only record the caller's intent. */
#ifndef _LINUX_GFP_H
#define _LINUX_GFP_H

typedef unsigned int gfp_t;

#define __GFP_ZERO 0x100u
#define GFP_ATOMIC 0x20u
#define GFP_KERNEL 0xcc0u
#define GFP_NOWAIT 0x800u

#endif
