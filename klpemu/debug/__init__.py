"""Stopping, inspecting and stepping the running machine: breakpoints, watchpoints and a GDB stub."""
