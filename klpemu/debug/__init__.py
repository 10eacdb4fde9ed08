"""Stopping, inspecting and stepping the running machine: breakpoints, watchpoints, a GDB stub,
C expressions and drgn, ELF cores."""
