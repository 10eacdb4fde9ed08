/* Multiplicative hashing of integers and pointers (include/linux/hash.h). */
#ifndef _LINUX_HASH_H
#define _LINUX_HASH_H

#include <linux/types.h>
#include <linux/compiler.h>

#define GOLDEN_RATIO_64 0x61C8864680B583EBull

/* The top bits of the product are the well mixed ones. */
static inline notrace u32 hash_64(u64 val, unsigned int bits)
{
	return val * GOLDEN_RATIO_64 >> (64 - bits);
}

#define hash_long(val, bits) hash_64(val, bits)

#endif
