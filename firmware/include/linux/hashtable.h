/* Fixed-size hash tables of hlist buckets (include/linux/hashtable.h). */
#ifndef _LINUX_HASHTABLE_H
#define _LINUX_HASHTABLE_H

#include <linux/list.h>
#include <linux/hash.h>

#define DEFINE_HASHTABLE(name, bits) struct hlist_head name[1 << (bits)]

#define HASH_SIZE(name) (ARRAY_SIZE(name))
#define HASH_BITS(name) (__builtin_ctzl(HASH_SIZE(name)))

#define hash_min(val, bits) hash_long((unsigned long)(val), bits)

#define hash_add(table, node, key) hlist_add_head(node, &table[hash_min(key, HASH_BITS(table))])
#define hash_del(node) hlist_del(node)

#define hash_for_each(name, bkt, obj, member)                                   \
	for ((bkt) = 0; (bkt) < (int)HASH_SIZE(name); (bkt)++)                  \
		hlist_for_each_entry(obj, &name[bkt], member)
#define hash_for_each_safe(name, bkt, tmp, obj, member)                         \
	for ((bkt) = 0; (bkt) < (int)HASH_SIZE(name); (bkt)++)                  \
		hlist_for_each_entry_safe(obj, tmp, &name[bkt], member)
/* Every entry in key's bucket: the caller still compares the key. */
#define hash_for_each_possible(name, obj, member, key)                          \
	hlist_for_each_entry(obj, &name[hash_min(key, HASH_BITS(name))], member)
#define hash_for_each_possible_safe(name, obj, tmp, member, key)                \
	hlist_for_each_entry_safe(obj, tmp, &name[hash_min(key, HASH_BITS(name))], member)

#endif
