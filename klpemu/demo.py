"""`klpemu demo`: a guided tour of the machine, each step a shell command with its output."""

from __future__ import annotations

import sys

from .kernel.tasks import all_tasks
from .shell import Shell
from .system import System


def _pid(system: System, comm: str) -> int:
    return next(t.pid for t in all_tasks(system.machine) if t.comm == comm)


def run_demo(system: System, out=sys.stdout) -> int:
    sh = Shell(system, out=out, err=out)
    steps = [
        ("The kernel booted on the emulated CPUs; its log:", "dmesg"),
        ("Its tasks: an idle task per CPU, kernel threads, user processes:", "ps"),
        ("cat runs in the guest's sh process, through open/read system calls:", "cat /proc/cmdline"),
        ("Every traceable function starts with a 5-byte fentry site; boot made each a NOP5:",
         "disas cmdline_proc_show"),
        ("Trace one function: the site becomes a call to a trampoline made for the tracer's ops:",
         "echo cmdline_proc_show > /sys/kernel/tracing/set_ftrace_filter; "
         "echo function > /sys/kernel/tracing/current_tracer; disas cmdline_proc_show"),
        ("Who owns the site now:", "cat /sys/kernel/tracing/enabled_functions"),
        ("Every call now leaves a line in the trace, from machine code alone:",
         "cat /proc/cmdline; cat /sys/kernel/tracing/trace"),
        ("Tracing off: the site is a NOP5 again:",
         "echo nop > /sys/kernel/tracing/current_tracer; disas cmdline_proc_show"),
        ("Let 20 ms of emulated time pass; the kernel threads sleep and wake:", "sleep 20ms"),
        ("A sleeping kernel thread's stack, from the context switch to its thread function:",
         f"cat /proc/{_pid(system, 'khungtaskd')}/stack"),
        ("The same walk with the verdict livepatch's consistency check would reach:",
         f"unwind {_pid(system, 'krecurse')}"),
        ("A user process asleep in a system call: its stack ends at its user-mode registers:",
         f"unwind {_pid(system, 'sysmon')}"),
        ("Step CPU 0 one instruction at a time, with the registers each one changes:", "step 8 --cpu 0"),
    ]
    status = 0
    for text, cmd in steps:
        print(f"\n### {text}\n# {cmd}", file=out)
        status |= sh.run_line(cmd)
    return status
