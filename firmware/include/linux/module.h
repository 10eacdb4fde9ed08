/*
 * Loadable modules: what a module's source declares (module_init, module_exit,
 * module_param, MODULE_LICENSE, THIS_MODULE) and the struct module the loader
 * builds for each module it loads. Names and values follow Linux's
 * include/linux/module.h and moduleparam.h, reduced to what klpemu needs.
 *
 * A module is a relocatable object (`gcc -c` with the kernel's flags plus
 * -DMODULE -DKBUILD_MODNAME='"name"'). There is no modpost: the loader (the
 * host, klpemu/kernel/module/) finds init_module and cleanup_module in the
 * symbol table, makes struct module itself and binds __this_module to it.
 */
#ifndef _LINUX_MODULE_H
#define _LINUX_MODULE_H

#include <linux/types.h>
#include <linux/compiler.h>
#include <linux/list.h>
#include <linux/export.h>

#define MODULE_NAME_LEN 56
/* struct module.refcnt holds this while nobody holds a reference (kernel/module/main.c). */
enum { MODULE_REF_BASE = 1 };

typedef struct {
	int counter;
} atomic_t;

enum module_state {
	MODULE_STATE_LIVE,	/* Normal state. */
	MODULE_STATE_COMING,	/* Full formed, running module_init. */
	MODULE_STATE_GOING,	/* Going away. */
	MODULE_STATE_UNFORMED,	/* Still setting it up. */
};

/* The memory of a module, by kind; each kind is one allocation (Linux's mod_mem_type). */
enum mod_mem_type {
	MOD_TEXT = 0,		/* executable: the module text area, read-only to the guest */
	MOD_DATA,
	MOD_RODATA,
	MOD_INIT_TEXT,		/* .init.* sections: freed once init has returned 0 */
	MOD_INIT_DATA,
	MOD_MEM_NUM_TYPES,
};

struct module_memory {
	void *base;
	unsigned int size;
};

/*
 * A module parameter (module_param). Linux keeps a kernel_param_ops pointer;
 * here the type is its name ("int", "uint", "long", "ulong", "short",
 * "ushort", "bool", "invbool", "charp"), which the loader and
 * /sys/module/<mod>/parameters parse and print as Linux's param_ops_<type> do.
 */
struct kernel_param {
	const char *name;
	const char *type;
	u16 perm;
	void *arg;
};

struct module {
	enum module_state state;
	struct list_head list;	/* on `modules`, newest first; only the loader changes it */
	char name[MODULE_NAME_LEN];
	struct module_memory mem[MOD_MEM_NUM_TYPES];
	int (*init)(void);
	void (*exit)(void);
	struct kernel_param *kp;
	unsigned int num_kp;
	unsigned long *ftrace_callsites;	/* the module's __mcount_loc */
	unsigned int num_ftrace_callsites;
	unsigned long *kprobe_blacklist;	/* its _kprobe_blacklist: NOKPROBE_SYMBOL functions */
	unsigned int num_kprobe_blacklist;
	void *kprobes_text_start;	/* its .kprobes.text: __kprobes functions */
	unsigned int kprobes_text_size;
	atomic_t refcnt;	/* MODULE_REF_BASE + the references held (try_module_get) */
	unsigned long taints;	/* TAINT_* bits this module set */
	bool klp;		/* MODULE_INFO(livepatch, "Y") */
	bool klp_alive;		/* set by the livepatch core while the module may be patched */
};

extern struct list_head modules;

bool try_module_get(struct module *mod);
void module_put(struct module *mod);
unsigned int module_refcount(struct module *mod);

#ifdef MODULE
extern struct module __this_module;
#define THIS_MODULE (&__this_module)
#else
#define THIS_MODULE ((struct module *)0)
#endif

/* Init code and data: freed after init succeeds (the loader drops them and their ftrace records). */
#define __init __section(".init.text")
#define __initdata __section(".init.data")
#define __exit __section(".exit.text")

#define module_init(initfn)                                                     \
	static inline __maybe_unused int (*__inittest(void))(void) { return initfn; } \
	int init_module(void) __attribute__((alias(#initfn)))
#define module_exit(exitfn)                                                     \
	static inline __maybe_unused void (*__exittest(void))(void) { return exitfn; } \
	void cleanup_module(void) __attribute__((alias(#exitfn)))


#define ___PASTE(a, b) a##b
#define __PASTE(a, b) ___PASTE(a, b)
#define __UNIQUE_ID(prefix) __PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)

/* "tag=value" strings in .modinfo, which the loader reads and does not load. */
#define __MODULE_INFO(tag, name, info)                                          \
	static const char __UNIQUE_ID(name)[] __used __section(".modinfo")      \
		__aligned(1) = #tag "=" info
#define MODULE_INFO(tag, info) __MODULE_INFO(tag, tag, info)
#define MODULE_LICENSE(_license) MODULE_INFO(license, _license)
#define MODULE_AUTHOR(_author) MODULE_INFO(author, _author)
#define MODULE_DESCRIPTION(_description) MODULE_INFO(description, _description)
#define MODULE_VERSION(_version) MODULE_INFO(version, _version)
#define MODULE_PARM_DESC(_parm, desc) __MODULE_INFO(parm, _parm, #_parm ":" desc)

#ifdef KBUILD_MODNAME
MODULE_INFO(name, KBUILD_MODNAME);
#endif
#ifdef KLPEMU_INTREE
MODULE_INFO(intree, "Y");	/* built with the kernel: no out-of-tree taint */
#endif

/* module_param(name, type, perm): the variable's type must match, as Linux's param_check_<type>. */
#define __param_check(name, p, type) \
	static inline __maybe_unused type *__check_##name(void) { return (p); }
#define param_check_int(name, p) __param_check(name, p, int)
#define param_check_uint(name, p) __param_check(name, p, unsigned int)
#define param_check_long(name, p) __param_check(name, p, long)
#define param_check_ulong(name, p) __param_check(name, p, unsigned long)
#define param_check_short(name, p) __param_check(name, p, short)
#define param_check_ushort(name, p) __param_check(name, p, unsigned short)
#define param_check_bool(name, p) __param_check(name, p, bool)
#define param_check_invbool(name, p) __param_check(name, p, bool)
#define param_check_charp(name, p) __param_check(name, p, char *)

#define module_param_named(name, value, type, perm)                            \
	param_check_##type(name, &(value));                                     \
	static const char __param_str_##name[] = #name;                         \
	static const struct kernel_param __param_##name __used                  \
		__section("__param") __aligned(sizeof(void *)) = {              \
			__param_str_##name, #type, perm, &(value) }
#define module_param(name, type, perm) module_param_named(name, name, type, perm)

#endif
