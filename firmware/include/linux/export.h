/*
 * EXPORT_SYMBOL and EXPORT_SYMBOL_GPL: what a module may link against.
 *
 * Each export is a struct kernel_symbol in ___ksymtab+NAME (or
 * ___ksymtab_gpl+NAME), its name in __ksymtab_strings. The entry holds three
 * place-relative 32-bit offsets, as Linux's with PREL32 relocations: to the
 * symbol, to its name, to its namespace (always ""). vmlinux.lds gathers the
 * entries into __ksymtab and __ksymtab_gpl, sorted by name; a module's stay in
 * their own sections, which the loader reads as kbuild's final link would
 * have merged them. The loader resolves a module's undefined symbols against
 * these tables only (klpemu/kernel/module/ksymtab.py); anything else a
 * livepatch reaches through klp relocations.
 *
 * In an assembly file the same names are a gas macro (EXPORT_SYMBOL(__fentry__)).
 */
#ifndef _LINUX_EXPORT_H
#define _LINUX_EXPORT_H

#ifdef __ASSEMBLY__

.macro __ksymtab_entry name, sec
	.section "__ksymtab_strings", "aMS", @progbits, 1
__kstrtab_\name:
	.asciz "\name"
__kstrtabns_\name:
	.asciz ""
	.previous
	.section "___ksymtab\sec+\name", "a"
	.balign 4
__ksymtab_\name:
	.long \name - .
	.long __kstrtab_\name - .
	.long __kstrtabns_\name - .
	.previous
.endm

#define EXPORT_SYMBOL(sym) __ksymtab_entry sym,
#define EXPORT_SYMBOL_GPL(sym) __ksymtab_entry sym, _gpl

#else

#define __EXPORT_SYMBOL(sym, sec)						\
	extern typeof(sym) sym;							\
	asm("	.section \"__ksymtab_strings\", \"aMS\", @progbits, 1\n"	\
	    "__kstrtab_" #sym ":\n"						\
	    "	.asciz \"" #sym "\"\n"					\
	    "__kstrtabns_" #sym ":\n"						\
	    "	.asciz \"\"\n"						\
	    "	.previous\n"							\
	    "	.section \"___ksymtab" sec "+" #sym "\", \"a\"\n"		\
	    "	.balign 4\n"							\
	    "__ksymtab_" #sym ":\n"						\
	    "	.long " #sym " - .\n"						\
	    "	.long __kstrtab_" #sym " - .\n"				\
	    "	.long __kstrtabns_" #sym " - .\n"				\
	    "	.previous\n")

#define EXPORT_SYMBOL(sym) __EXPORT_SYMBOL(sym, "")
#define EXPORT_SYMBOL_GPL(sym) __EXPORT_SYMBOL(sym, "_gpl")

#endif

#endif
