/*
 * Host calls: the machine runs a guest function on this stack with the
 * return address set to hostcall_return, and stops when execution gets there.
 */
	.bss
	.balign 16
	.globl hostcall_stack
hostcall_stack:
	.skip 16384
	.globl hostcall_stack_top
hostcall_stack_top:

	.text
	.globl hostcall_return
	.type hostcall_return, @function
hostcall_return:
	ud2
	.size hostcall_return, . - hostcall_return
