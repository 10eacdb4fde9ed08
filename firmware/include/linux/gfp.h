/* Allocation flags. The heap never sleeps, so they only record the caller's intent. */
#ifndef _LINUX_GFP_H
#define _LINUX_GFP_H

typedef unsigned int gfp_t;

/* The bits, with Linux's values. */
#define __GFP_HIGH 0x20u
#define __GFP_IO 0x40u
#define __GFP_FS 0x80u
#define __GFP_ZERO 0x100u
#define __GFP_DIRECT_RECLAIM 0x400u
#define __GFP_KSWAPD_RECLAIM 0x800u
#define __GFP_RECLAIM (__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM)

#define GFP_ATOMIC (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
#define GFP_KERNEL (__GFP_RECLAIM | __GFP_IO | __GFP_FS)
#define GFP_NOWAIT __GFP_KSWAPD_RECLAIM

/*
 * Names for %pGg, composite masks before the bits they contain, as
 * include/trace/events/mmflags.h orders them.
 */
#define __def_gfpflag_names                                     \
	{ GFP_KERNEL, "GFP_KERNEL" }, { GFP_ATOMIC, "GFP_ATOMIC" }, \
	{ GFP_NOWAIT, "GFP_NOWAIT" }, { __GFP_HIGH, "__GFP_HIGH" }, \
	{ __GFP_IO, "__GFP_IO" }, { __GFP_FS, "__GFP_FS" },         \
	{ __GFP_ZERO, "__GFP_ZERO" },                               \
	{ __GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM" },           \
	{ __GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM" }

#endif
