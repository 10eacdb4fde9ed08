// SPDX-License-Identifier: GPL-2.0
/*
 * Livepatch selftest: the shadow variable API. Init attaches two shadow
 * variables to each of three objects, looks them up, gets-or-allocates them
 * again, frees them one id at a time, and logs every call and its result.
 *
 * Addresses differ from run to run, so the log names each pointer PTR<n>, n
 * counting distinct pointers in the order they are first seen (PTR0 is NULL):
 * the log is the same on every run, and the selftest compares it line by line.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/livepatch.h>
#include <linux/slab.h>
#include <linux/errno.h>

/* The pointers named so far, newest first; kept apart from the API under test. */
struct ptr_name {
	struct list_head node;
	const void *ptr;
	int n;
};

static LIST_HEAD(ptr_names);
static int ptr_count;

static int ptr_id(const void *ptr)
{
	struct ptr_name *pn;

	list_for_each_entry(pn, &ptr_names, node)
		if (pn->ptr == ptr)
			return pn->n;
	pn = kmalloc(sizeof(*pn), GFP_ATOMIC);
	if (!pn)
		return -ENOMEM;
	pn->ptr = ptr;
	pn->n = ptr_count++;
	list_add(&pn->node, &ptr_names);
	return pn->n;
}

static void forget_ptrs(void)
{
	struct ptr_name *pn, *tmp;

	list_for_each_entry_safe(pn, tmp, &ptr_names, node) {
		list_del(&pn->node);
		kfree(pn);
	}
}

/* Wrappers that log each call as klp_<call>(arguments) = result. */

static void *shadow_get(void *obj, unsigned long id)
{
	void *sv = klp_shadow_get(obj, id);
	int o = ptr_id(obj), r = ptr_id(sv);

	pr_info("klp_shadow_get(obj=PTR%d, id=0x%lx) = PTR%d\n", o, id, r);
	return sv;
}

static void log_alloc(const char *call, void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
		      klp_shadow_ctor_t ctor, void **ctor_data, void *sv)
{
	int o = ptr_id(obj), c = ptr_id(ctor), d = ptr_id(*ctor_data), r = ptr_id(sv);

	pr_info("klp_%s(obj=PTR%d, id=0x%lx, size=%zx, gfp_flags=%pGg), ctor=PTR%d, ctor_data=PTR%d = PTR%d\n",
		call, o, id, size, &gfp_flags, c, d, r);
}

static void *shadow_alloc(void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
			  klp_shadow_ctor_t ctor, void *ctor_data)
{
	void *sv = klp_shadow_alloc(obj, id, size, gfp_flags, ctor, ctor_data);

	log_alloc("shadow_alloc", obj, id, size, gfp_flags, ctor, ctor_data, sv);
	return sv;
}

static void *shadow_get_or_alloc(void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
				 klp_shadow_ctor_t ctor, void *ctor_data)
{
	void *sv = klp_shadow_get_or_alloc(obj, id, size, gfp_flags, ctor, ctor_data);

	log_alloc("shadow_get_or_alloc", obj, id, size, gfp_flags, ctor, ctor_data, sv);
	return sv;
}

static void shadow_free(void *obj, unsigned long id, klp_shadow_dtor_t dtor)
{
	int o, d;

	klp_shadow_free(obj, id, dtor);
	o = ptr_id(obj);
	d = ptr_id(dtor);
	pr_info("klp_shadow_free(obj=PTR%d, id=0x%lx, dtor=PTR%d)\n", o, id, d);
}

static void shadow_free_all(unsigned long id, klp_shadow_dtor_t dtor)
{
	klp_shadow_free_all(id, dtor);
	pr_info("klp_shadow_free_all(id=0x%lx, dtor=PTR%d)\n", id, ptr_id(dtor));
}

/* The shadow variable holds a pointer: the constructor copies the one ctor_data points to. */
static int shadow_ctor(void *obj, void *shadow_data, void *ctor_data)
{
	void **sv = shadow_data, **var = ctor_data;
	int s, v;

	if (!var)
		return -EINVAL;
	*sv = *var;
	s = ptr_id(sv);
	v = ptr_id(*var);
	pr_info("shadow_ctor: PTR%d -> PTR%d\n", s, v);
	return 0;
}

/* Passed only where one variable is freed: free_all's order over several is the hash's. */
static void shadow_dtor(void *obj, void *shadow_data)
{
	int o = ptr_id(obj), s = ptr_id(shadow_data);

	pr_info("shadow_dtor(obj=PTR%d, shadow_data=PTR%d)\n", o, s);
}

#define NUM_OBJS 3
#define SV_ID1 0x1234	/* a char field added to each object */
#define SV_ID2 0x1235	/* an int field */

/* Stands for a structure in the patched kernel that gains fields through shadow variables. */
struct test_object {
	char payload[8];
};

static void expect_pair(void **sv, void **expected_sv, void *expected_ptr)
{
	if (sv == expected_sv && *sv == expected_ptr) {
		int s = ptr_id(sv), p = ptr_id(*sv);

		pr_info("  got expected PTR%d -> PTR%d result\n", s, p);
	}
}

static int test_klp_shadow_vars_init(void)
{
	struct test_object objs[NUM_OBJS];
	char nfields1[NUM_OBJS], *pnfields1[NUM_OBJS], **sv1[NUM_OBJS];
	int nfields2[NUM_OBJS], *pnfields2[NUM_OBJS], **sv2[NUM_OBJS];
	char *pndup[NUM_OBJS];
	void **sv;
	int ret = 0;
	int i;

	ptr_id(NULL);	/* PTR0 */

	/* An empty table finds nothing. */
	if (!shadow_get(&objs[0], SV_ID1))
		pr_info("  got expected NULL result\n");

	/* 1: a char* and an int* shadow variable for every object, each through a constructor. */
	for (i = 0; i < NUM_OBJS; i++) {
		pnfields1[i] = &nfields1[i];
		ptr_id(pnfields1[i]);
		if (i % 2)
			sv1[i] = shadow_alloc(&objs[i], SV_ID1, sizeof(pnfields1[i]), GFP_KERNEL,
					      shadow_ctor, &pnfields1[i]);
		else
			sv1[i] = shadow_get_or_alloc(&objs[i], SV_ID1, sizeof(pnfields1[i]), GFP_KERNEL,
						     shadow_ctor, &pnfields1[i]);
		if (!sv1[i]) {
			ret = -ENOMEM;
			goto out;
		}

		pnfields2[i] = &nfields2[i];
		ptr_id(pnfields2[i]);
		sv2[i] = shadow_alloc(&objs[i], SV_ID2, sizeof(pnfields2[i]), GFP_KERNEL,
				      shadow_ctor, &pnfields2[i]);
		if (!sv2[i]) {
			ret = -ENOMEM;
			goto out;
		}
	}

	/* 2: each lookup returns the variable allocated for it, holding what its constructor stored. */
	for (i = 0; i < NUM_OBJS; i++) {
		sv = shadow_get(&objs[i], SV_ID1);
		if (!sv) {
			ret = -EINVAL;
			goto out;
		}
		expect_pair(sv, (void **)sv1[i], pnfields1[i]);

		sv = shadow_get(&objs[i], SV_ID2);
		if (!sv) {
			ret = -EINVAL;
			goto out;
		}
		expect_pair(sv, (void **)sv2[i], pnfields2[i]);
	}

	/* 3: get_or_alloc of an existing variable returns it and leaves it alone. */
	for (i = 0; i < NUM_OBJS; i++) {
		pndup[i] = &nfields1[i];
		ptr_id(pndup[i]);
		sv = shadow_get_or_alloc(&objs[i], SV_ID1, sizeof(pndup[i]), GFP_KERNEL,
					 shadow_ctor, &pndup[i]);
		if (!sv) {
			ret = -EINVAL;
			goto out;
		}
		expect_pair(sv, (void **)sv1[i], pnfields1[i]);
	}

	/* 4: free the SV_ID1 variables one by one, through the destructor; they are gone. */
	for (i = 0; i < NUM_OBJS; i++) {
		shadow_free(&objs[i], SV_ID1, shadow_dtor);
		if (!shadow_get(&objs[i], SV_ID1))
			pr_info("  got expected NULL result\n");
	}

	/* 5: the SV_ID2 variables of the same objects are untouched. */
	for (i = 0; i < NUM_OBJS; i++) {
		sv = shadow_get(&objs[i], SV_ID2);
		if (!sv) {
			ret = -EINVAL;
			goto out;
		}
		expect_pair(sv, (void **)sv2[i], pnfields2[i]);
	}

	/* 6: free every SV_ID2 variable at once. */
	shadow_free_all(SV_ID2, NULL);
	for (i = 0; i < NUM_OBJS; i++)
		if (!shadow_get(&objs[i], SV_ID2))
			pr_info("  got expected NULL result\n");

	forget_ptrs();
	return 0;
out:
	shadow_free_all(SV_ID1, NULL);
	shadow_free_all(SV_ID2, NULL);
	forget_ptrs();
	return ret;
}

static void test_klp_shadow_vars_exit(void)
{
}

module_init(test_klp_shadow_vars_init);
module_exit(test_klp_shadow_vars_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Livepatch test: shadow variables");
