"""Kprobes and kretprobes (kernel/kprobes.c, arch/x86/kernel/kprobes/): the control plane."""

from .core import Kprobes

__all__ = ["Kprobes"]
