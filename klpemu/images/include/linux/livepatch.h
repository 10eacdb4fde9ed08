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

#define KLP_TRANSITION_IDLE -1
#define KLP_TRANSITION_UNPATCHED 0
#define KLP_TRANSITION_PATCHED 1

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

#endif
