/* Target of every fentry call site until boot turns the sites into NOPs. */
	.text
	.globl __fentry__
	.type __fentry__, @function
__fentry__:
	ret
	.size __fentry__, . - __fentry__
