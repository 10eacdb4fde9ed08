// SPDX-License-Identifier: GPL-2.0
/*
 * Shadow variables: data a livepatch attaches to an existing object, found
 * again by the pair <obj, id>. One hash table keyed by the object's address;
 * entries of other ids share buckets, so every lookup compares both.
 *
 * Linux reads the table under RCU and frees entries after a grace period.
 * There is no RCU here, so readers take the lock too and entries are freed at
 * once: a klp_shadow_get never sees an entry that is being freed.
 */
#define pr_fmt(fmt) "livepatch: " fmt

#include <linux/kernel.h>
#include <linux/hashtable.h>
#include <linux/livepatch.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

static DEFINE_HASHTABLE(klp_shadow_hash, 12);

/* Guards klp_shadow_hash and the entries in it. Constructors run under it, as in Linux. */
static raw_spinlock_t klp_shadow_lock = __RAW_SPIN_LOCK_UNLOCKED;

struct klp_shadow {
	struct hlist_node node;
	void *obj;
	unsigned long id;
	char data[];
};

static inline bool klp_shadow_match(struct klp_shadow *shadow, void *obj, unsigned long id)
{
	return shadow->obj == obj && shadow->id == id;
}

/* Called with klp_shadow_lock held. */
static void *__klp_shadow_get(void *obj, unsigned long id)
{
	struct klp_shadow *shadow;

	hash_for_each_possible(klp_shadow_hash, shadow, node, (unsigned long)obj)
		if (klp_shadow_match(shadow, obj, id))
			return shadow->data;
	return NULL;
}

void *klp_shadow_get(void *obj, unsigned long id)
{
	unsigned long flags = raw_spin_lock_irqsave(&klp_shadow_lock);
	void *data = __klp_shadow_get(obj, id);

	raw_spin_unlock_irqrestore(&klp_shadow_lock, flags);
	return data;
}

static void *__klp_shadow_get_or_alloc(void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
				       klp_shadow_ctor_t ctor, void *ctor_data, bool warn_on_exist)
{
	struct klp_shadow *new_shadow;
	unsigned long flags;
	void *data;
	int err;

	data = klp_shadow_get(obj, id);
	if (data)
		goto exists;

	/* Allocated outside the lock; zeroed, so a variable without a constructor starts at 0. */
	new_shadow = kzalloc(sizeof(*new_shadow) + size, gfp_flags);
	if (!new_shadow)
		return NULL;

	/* Someone may have attached <obj, id> meanwhile: look again, under the lock. */
	flags = raw_spin_lock_irqsave(&klp_shadow_lock);
	data = __klp_shadow_get(obj, id);
	if (unlikely(data)) {
		raw_spin_unlock_irqrestore(&klp_shadow_lock, flags);
		kfree(new_shadow);
		goto exists;
	}

	new_shadow->obj = obj;
	new_shadow->id = id;
	if (ctor) {
		err = ctor(obj, new_shadow->data, ctor_data);
		if (err) {
			raw_spin_unlock_irqrestore(&klp_shadow_lock, flags);
			kfree(new_shadow);
			pr_err("Failed to construct shadow variable <%p, %lx> (%d)\n", obj, id, err);
			return NULL;
		}
	}
	hash_add(klp_shadow_hash, &new_shadow->node, (unsigned long)obj);
	raw_spin_unlock_irqrestore(&klp_shadow_lock, flags);
	return new_shadow->data;

exists:
	if (warn_on_exist) {
		WARN(1, "Duplicate shadow variable <%p, %lx>\n", obj, id);
		return NULL;
	}
	return data;
}

/* A new <obj, id>; NULL, with a warning, if it exists already. */
void *klp_shadow_alloc(void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
		       klp_shadow_ctor_t ctor, void *ctor_data)
{
	return __klp_shadow_get_or_alloc(obj, id, size, gfp_flags, ctor, ctor_data, true);
}

/* The existing <obj, id>, or a new one; the constructor runs only for a new one. */
void *klp_shadow_get_or_alloc(void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
			      klp_shadow_ctor_t ctor, void *ctor_data)
{
	return __klp_shadow_get_or_alloc(obj, id, size, gfp_flags, ctor, ctor_data, false);
}

static void klp_shadow_free_struct(struct klp_shadow *shadow, klp_shadow_dtor_t dtor)
{
	hash_del(&shadow->node);
	if (dtor)
		dtor(shadow->obj, shadow->data);
	kfree(shadow);
}

void klp_shadow_free(void *obj, unsigned long id, klp_shadow_dtor_t dtor)
{
	struct klp_shadow *shadow;
	unsigned long flags = raw_spin_lock_irqsave(&klp_shadow_lock);

	hash_for_each_possible(klp_shadow_hash, shadow, node, (unsigned long)obj) {
		if (klp_shadow_match(shadow, obj, id)) {
			klp_shadow_free_struct(shadow, dtor);
			break;
		}
	}
	raw_spin_unlock_irqrestore(&klp_shadow_lock, flags);
}

void klp_shadow_free_all(unsigned long id, klp_shadow_dtor_t dtor)
{
	struct klp_shadow *shadow;
	struct hlist_node *tmp;
	unsigned long flags = raw_spin_lock_irqsave(&klp_shadow_lock);
	int i;

	hash_for_each_safe(klp_shadow_hash, i, tmp, shadow, node)
		if (shadow->id == id)
			klp_shadow_free_struct(shadow, dtor);
	raw_spin_unlock_irqrestore(&klp_shadow_lock, flags);
}
