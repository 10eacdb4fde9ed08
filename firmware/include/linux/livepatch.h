/*
 * The livepatch API for modules, with Linux's names and fields: a livepatch
 * module is written here exactly as for Linux (klp_func, klp_object, klp_patch,
 * klp_enable_patch). The fields marked internal are the core's; the machine
 * (the control plane) fills them, and klp_ftrace_handler reads them.
 */
#ifndef _LINUX_LIVEPATCH_H
#define _LINUX_LIVEPATCH_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/ftrace.h>
#include <linux/gfp.h>
#include <linux/sched.h>	/* the KLP_TRANSITION_* states */

struct module;

struct klp_func {
	/* external */
	const char *old_name;		/* the function to replace */
	void *new_func;			/* its replacement */
	unsigned long old_sympos;	/* 0: the name must be unique; n: its n-th occurrence */

	/* internal */
	void *old_func;
	struct list_head node;		/* in the object's func_list */
	struct list_head stack_node;	/* in its klp_ops' func_stack */
	unsigned long old_size, new_size;
	bool nop;			/* added by atomic replace: run the original */
	bool patched;
	bool transition;
};

struct klp_object;

struct klp_callbacks {
	int (*pre_patch)(struct klp_object *obj);
	void (*post_patch)(struct klp_object *obj);
	void (*pre_unpatch)(struct klp_object *obj);
	void (*post_unpatch)(struct klp_object *obj);
	bool post_unpatch_enabled;
};

struct klp_object {
	/* external */
	const char *name;		/* NULL: vmlinux */
	struct klp_func *funcs;		/* ended by an entry with old_name NULL */
	struct klp_callbacks callbacks;

	/* internal */
	struct list_head func_list;
	struct list_head node;
	struct module *mod;
	bool dynamic;
	bool patched;
};

struct klp_state {
	unsigned long id;		/* non-zero; the array ends with id 0 */
	unsigned int version;
	void *data;
};

struct klp_patch {
	/* external */
	struct module *mod;
	struct klp_object *objs;	/* ended by an entry with funcs NULL */
	struct klp_state *states;
	bool replace;

	/* internal */
	struct list_head list;		/* in klp_patches */
	struct list_head obj_list;
	bool enabled;
	bool forced;
};

/*
 * One per patched function, shared by every patch that patches it: the ftrace
 * ops whose handler is klp_ftrace_handler, and the stack of klp_funcs, newest
 * (the one that runs) first.
 */
struct klp_ops {
	struct list_head node;
	struct list_head func_stack;
	struct ftrace_ops fops;
};

int klp_enable_patch(struct klp_patch *patch);

/* Kept by the core (the machine) in guest memory: the enabled patches, oldest first, and the
 * one in transition (NULL when none). */
extern struct list_head klp_patches;
extern struct klp_patch *klp_transition_patch;

#define klp_for_each_object_static(patch, obj) \
	for (obj = (patch)->objs; obj && (obj->funcs || obj->name); obj++)
#define klp_for_each_func_static(obj, func) \
	for (func = (obj)->funcs; func && (func->old_name || func->new_func || func->old_sympos); func++)

/* System states (kernel/livepatch/state.c). */
struct klp_state *klp_get_state(struct klp_patch *patch, unsigned long id);
struct klp_state *klp_get_prev_state(unsigned long id);

/* Shadow variables (kernel/livepatch/shadow.c): data attached to an object by <obj, id>. */
typedef int (*klp_shadow_ctor_t)(void *obj, void *shadow_data, void *ctor_data);
typedef void (*klp_shadow_dtor_t)(void *obj, void *shadow_data);

void *klp_shadow_get(void *obj, unsigned long id);
void *klp_shadow_alloc(void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
		       klp_shadow_ctor_t ctor, void *ctor_data);
void *klp_shadow_get_or_alloc(void *obj, unsigned long id, size_t size, gfp_t gfp_flags,
			      klp_shadow_ctor_t ctor, void *ctor_data);
void klp_shadow_free(void *obj, unsigned long id, klp_shadow_dtor_t dtor);
void klp_shadow_free_all(unsigned long id, klp_shadow_dtor_t dtor);

/*
 * klp-convert annotations (the kernel's proposed scripts/livepatch/klp-convert): a module that
 * uses a symbol it cannot link against (a static of vmlinux, a symbol of a module that may come
 * later) declares it extern and names, once, the object that has it and its position among
 * same-named symbols there (0: the name is unique in the object):
 *
 *	extern int last_pid;
 *	KLP_MODULE_RELOC(vmlinux) vmlinux_relocs[] = {
 *		KLP_SYMPOS(last_pid, 0),
 *	};
 *
 * The build (klpemu/klpconvert.py, after gcc -c) turns each such symbol into a livepatch symbol
 * .klp.sym.<object>.<symbol>,<pos>, moves the relocations against it into .klp.rela.<object>.*
 * sections, and drops the annotation. The livepatch core writes those relocations when the
 * object is there: vmlinux's at load, a module's when that module is loaded.
 */
struct klp_module_reloc {
	void *sym;
	unsigned int sympos;
} __attribute__((packed));

#define KLP_MODULE_RELOC(obj) \
	struct klp_module_reloc __section(".klp.module_relocs." #obj) __aligned(4)

#define KLP_SYMPOS(symbol, pos) \
	{ .sym = (void *)&(symbol), .sympos = (pos), }

#endif
