"""The kernel's control plane on the host: tasks, stacks, the log (and later ftrace, livepatch)."""
