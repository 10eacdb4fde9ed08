// SPDX-License-Identifier: GPL-2.0
/*
 * Shadow variables: data a livepatch attaches to an existing object, found
 * again by the pair <obj, id>. One hash table keyed by the object's address;
 * entries of other ids share buckets, so every lookup compares both.
 *
 * Linux reads the table under RCU and frees entries after a grace period.
 * There is no RCU here, so readers take the lock too and entries are freed at
 * once: a klp_shadow_get never sees an entry that is being freed. Constructors
 * and destructors run under the lock and may call klp_shadow_get, as Linux
 * allows; the lock remembers its CPU so that such a lookup does not wait for
 * itself.
 */
#define pr_fmt(fmt) "livepatch: " fmt

#include <linux/kernel.h>
#include <linux/hashtable.h>
#include <linux/livepatch.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

static DEFINE_HASHTABLE(klp_shadow_hash, 12);

/* Guards klp_shadow_hash and the entries in it. Constructors run under it, as in Linux. */
static raw_spinlock_t klp_shadow_lock = __RAW_SPIN_LOCK_UNLOCKED;
static int klp_shadow_lock_cpu = -1;	/* the CPU holding it, interrupts off */

static notrace unsigned long klp_shadow_lock_irqsave(void)
{
	unsigned long flags = raw_spin_lock_irqsave(&klp_shadow_lock);

	WRITE_ONCE(klp_shadow_lock_cpu, smp_processor_id());
	return flags;
}

static notrace void klp_shadow_unlock_irqrestore(unsigned long flags)
{
	WRITE_ONCE(klp_shadow_lock_cpu, -1);
	raw_spin_unlock_irqrestore(&klp_shadow_lock, flags);
}

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
	unsigned long flags;
	void *data;

	/* From a constructor or destructor: this CPU holds the lock already. */
	if (READ_ONCE(klp_shadow_lock_cpu) == smp_processor_id())
		return __klp_shadow_get(obj, id);
	flags = klp_shadow_lock_irqsave();
	data = __klp_shadow_get(obj, id);
	klp_shadow_unlock_irqrestore(flags);
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
	flags = klp_shadow_lock_irqsave();
	data = __klp_shadow_get(obj, id);
	if (unlikely(data)) {
		klp_shadow_unlock_irqrestore(flags);
		kfree(new_shadow);
		goto exists;
	}

	new_shadow->obj = obj;
	new_shadow->id = id;
	if (ctor) {
		err = ctor(obj, new_shadow->data, ctor_data);
		if (err) {
			klp_shadow_unlock_irqrestore(flags);
			kfree(new_shadow);
			pr_err("Failed to construct shadow variable <%p, %lx> (%d)\n", obj, id, err);
			return NULL;
		}
	}
	hash_add(klp_shadow_hash, &new_shadow->node, (unsigned long)obj);
	klp_shadow_unlock_irqrestore(flags);
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
	unsigned long flags = klp_shadow_lock_irqsave();

	hash_for_each_possible(klp_shadow_hash, shadow, node, (unsigned long)obj) {
		if (klp_shadow_match(shadow, obj, id)) {
			klp_shadow_free_struct(shadow, dtor);
			break;
		}
	}
	klp_shadow_unlock_irqrestore(flags);
}

void klp_shadow_free_all(unsigned long id, klp_shadow_dtor_t dtor)
{
	struct klp_shadow *shadow;
	struct hlist_node *tmp;
	unsigned long flags = klp_shadow_lock_irqsave();
	int i;

	hash_for_each_safe(klp_shadow_hash, i, tmp, shadow, node)
		if (shadow->id == id)
			klp_shadow_free_struct(shadow, dtor);
	klp_shadow_unlock_irqrestore(flags);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL_GPL(klp_shadow_get);
EXPORT_SYMBOL_GPL(klp_shadow_alloc);
EXPORT_SYMBOL_GPL(klp_shadow_get_or_alloc);
EXPORT_SYMBOL_GPL(klp_shadow_free);
EXPORT_SYMBOL_GPL(klp_shadow_free_all);
