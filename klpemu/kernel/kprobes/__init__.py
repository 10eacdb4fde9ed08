"""Kprobes and kretprobes (kernel/kprobes.c, arch/x86/kernel/kprobes/): the control plane.

core.py registers, enables and unregisters probes (kernel/kprobes.c); table.py is kprobe_table,
blacklist.py kprobe_blacklist; a probe is armed by arch.py (an int3) or ftrace.py (at a fentry
site); kretprobe.py adds the return probes; guest.py serves the API modules call; insn.py
decodes a probed instruction. The debugfs files are rendered by klpemu/fs/kprobesfs.py.
"""

from .core import Kprobes

__all__ = ["Kprobes"]
