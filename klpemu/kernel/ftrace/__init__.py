"""ftrace's control plane: fentry sites, records, ops, trampolines (kernel/trace/ftrace.c)."""

from .core import Ftrace

__all__ = ["Ftrace"]
