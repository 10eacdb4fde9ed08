// SPDX-License-Identifier: GPL-2.0
/*
 * Modules in the guest: the list of loaded modules, their reference counts,
 * and the two system calls that run a module's own code in the calling task,
 * as insmod and rmmod run init_module and delete_module.
 *
 * The loader is the host (klpemu/kernel/module/): it does load_module()'s
 * work (ELF checks, layout, relocations, symbols, ftrace records, struct
 * module, parameters), links the module on `modules` in MODULE_STATE_COMING,
 * and then asks the shell process to call init_module with the address of
 * that struct module. delete_module takes the module's name, as Linux's does;
 * once it returns 0 the host frees the module (free_module).
 */
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/trace_events.h>

#define EWOULDBLOCK EAGAIN

LIST_HEAD(modules);

static notrace struct module *find_module(const char *name)
{
	struct module *mod;

	list_for_each_entry(mod, &modules, list)
		if (!strcmp(mod->name, name))
			return mod;
	return NULL;
}

unsigned int module_refcount(struct module *mod)
{
	return (unsigned int)READ_ONCE(mod->refcnt.counter) - MODULE_REF_BASE;
}

bool try_module_get(struct module *mod)
{
	if (!mod)
		return true;
	if (READ_ONCE(mod->state) == MODULE_STATE_GOING)
		return false;
	__atomic_add_fetch(&mod->refcnt.counter, 1, __ATOMIC_SEQ_CST);
	return true;
}

void module_put(struct module *mod)
{
	if (mod)
		__atomic_sub_fetch(&mod->refcnt.counter, 1, __ATOMIC_SEQ_CST);
}

/* The part of do_init_module that runs module code: init, then LIVE (or GOING on failure). */
static noinline int do_init_module(struct module *mod)
{
	int ret = 0;

	if (mod->init)
		ret = mod->init();
	if (ret < 0) {
		WRITE_ONCE(mod->state, MODULE_STATE_GOING);
		return ret;
	}
	if (ret > 0)
		pr_warn("%s: '%s'->init suspiciously returned %d, it should follow 0/-E convention\n"
			"%s: loading module anyway...\n", __func__, mod->name, ret, __func__);
	WRITE_ONCE(mod->state, MODULE_STATE_LIVE);
	return 0;
}

/* init_module(umod, len, uargs): umod is the struct module the host loaded, not an ELF image. */
long sys_init_module(long umod, long len, long uargs)
{
	struct module *mod;

	list_for_each_entry(mod, &modules, list)
		if ((long)mod == umod)
			break;
	if (&mod->list == &modules)
		return -ENOENT;
	if (mod->state != MODULE_STATE_COMING)
		return -EBUSY;
	trace_module_load(mod);
	return do_init_module(mod);
}

/* delete_module(name, flags): Linux's checks, then exit; the host frees the module afterwards. */
long sys_delete_module(long name_user, long flags, long unused)
{
	struct module *mod = find_module((const char *)name_user);

	if (!mod)
		return -ENOENT;
	if (mod->state != MODULE_STATE_LIVE)
		return -EBUSY;
	/* If it has an init func, it must have an exit func to unload. */
	if (mod->init && !mod->exit)
		return -EBUSY;
	if (module_refcount(mod) != 0)
		return -EWOULDBLOCK;
	WRITE_ONCE(mod->state, MODULE_STATE_GOING);
	if (mod->exit)
		mod->exit();
	trace_module_free(mod);
	return 0;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(try_module_get);
EXPORT_SYMBOL(module_put);
EXPORT_SYMBOL(module_refcount);
