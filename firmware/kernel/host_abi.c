// SPDX-License-Identifier: GPL-2.0
/*
 * No code: this unit only brings into DWARF the enums the emulator reads and
 * no kernel code uses, such as dyn_ftrace's FTRACE_FL_* bits, which only the
 * host's record keeping reads. gcc leaves an unused enum out of the debug info
 * unless told otherwise, so this one file is built with
 * -fno-eliminate-unused-debug-types (see the Makefile).
 */
#include <linux/sched.h>
#include <linux/ftrace.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/livepatch.h>
#include <klpemu/hypercall.h>
