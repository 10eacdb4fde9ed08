/*
 * Array module parameters (include/linux/moduleparam.h's module_param_array):
 * name=v1,v2,... fills the array and stores how many values came in *nump.
 *
 * The parameter's type is "array" and its arg a struct kparam_array, which
 * the loader reads with this layout (32 bytes): max, elemsize, num, type
 * (the element's type name, one of module_param's), elem.
 */
#ifndef _LINUX_MODULEPARAM_H
#define _LINUX_MODULEPARAM_H

#include <linux/module.h>

struct kparam_array {
	unsigned int max;
	unsigned int elemsize;
	unsigned int *num;
	const char *type;
	void *elem;
};

#define module_param_array_named(name, array, type, nump, perm)               \
	param_check_##type(name, &(array)[0]);                                  \
	static const struct kparam_array __param_arr_##name = {                 \
		ARRAY_SIZE(array), sizeof((array)[0]), nump, #type, array };   \
	static const char __param_str_##name[] = #name;                         \
	static const struct kernel_param __param_##name __used                  \
		__section("__param") __aligned(sizeof(void *)) = {              \
			__param_str_##name, "array", perm, (void *)&__param_arr_##name }
#define module_param_array(name, type, nump, perm)                             \
	module_param_array_named(name, name, type, nump, perm)

#endif
