"""`help` and `CMD --help`: each command's usage, what it does and examples."""

from __future__ import annotations

import inspect

from .core import COMMANDS, Shell, command
from .filters import FILTERS

# One line for the list `help` prints; the command's docstring, when it has one, says more.
SUMMARY: dict[str, str] = {
    "blocking": "the tasks holding up a livepatch transition, and why",
    "break": "stop the machine when a CPU reaches a function or an address",
    "bt": "the stack of the task on the stopped CPU, with the unwinder's verdict",
    "c": "short for continue",
    "continue": "let a command stopped at a breakpoint run on",
    "delete": "delete breakpoints and watchpoints",
    "finish": "run the stopped CPU until its function returns",
    "info": "breakpoints, CPUs, tasks or registers",
    "nexti": "one instruction on the stopped CPU, over calls",
    "regs": "the registers of the stopped CPU",
    "si": "short for stepi",
    "stepi": "instructions one at a time on the stopped CPU, with their ftrace role",
    "tbreak": "a breakpoint that is deleted when first hit",
    "watch": "stop after a CPU writes to a variable or address",
    "x": "guest memory as gdb's x shows it",
    "cat": "print files of the guest (/proc, /sys, tracefs, debugfs)",
    "conflicts": "every meeting of two users of one function (ftrace, livepatch, kprobes)",
    "disas": "disassemble a kernel function, with its ftrace call site",
    "dmesg": "the kernel log",
    "drgn": "drgn's interactive console on the live machine",
    "dump": "write an ELF core of the machine for gdb",
    "echo": "print text, or write it to a guest file",
    "gdb-symbols": "add-symbol-file commands for gdb, one per loaded module",
    "gdbserver": "serve this machine to gdb",
    "help": "list the commands, or describe one",
    "insmod": "load a module (a .ko on the host, or a shipped module's name)",
    "kpatch": "manage livepatch modules as kpatch does",
    "kprobe": "place, list or remove kprobes and kretprobes",
    "ls": "list a guest directory",
    "lsmod": "the loaded modules",
    "mkdir": "make a directory the kernel makes on request (a trace instance)",
    "modinfo": "a module's .modinfo tags",
    "p": "short for print",
    "print": "evaluate a C expression over the kernel's types (drgn)",
    "ptype": "a type's definition, or an expression's type",
    "ps": "the tasks, with their livepatch state",
    "reboot": "a fresh machine with the same options",
    "rmdir": "remove a directory the kernel made (a trace instance)",
    "rmmod": "unload modules",
    "sleep": "run the machine for a while of emulated time",
    "step": "execute instructions one at a time on one CPU",
    "timeline": "record a livepatch transition and its tasks; write Chrome trace JSON and a PNG",
    "trace-call": "one call of a function, every instruction labelled by its part of ftrace",
    "unwind": "a task's kernel stack, with the livepatch reliability verdict",
    "wait": "run the machine until a file reads a value, or a path is gone",
}

EXAMPLES: dict[str, list[str]] = {
    "blocking": ["blocking -vv"],
    "break": ["break cmdline_proc_show", "break klp_ftrace_handler --cpu 1", "break get_idle_time,2"],
    "bt": ["bt"],
    "c": ["c"],
    "continue": ["continue"],
    "delete": ["delete", "delete 2"],
    "finish": ["finish"],
    "info": ["info break", "info cpus", "info tasks"],
    "nexti": ["nexti"],
    "regs": ["regs"],
    "si": ["si 5"],
    "stepi": ["stepi", "stepi 100"],
    "tbreak": ["tbreak klp_ftrace_handler"],
    "watch": ["watch pcpu_hot[1].current_task", "watch 0xffffffff81012390 8"],
    "x": ["x/4xg $rsp", "x/3i cmdline_proc_show", "x/s linux_banner"],
    "cat": ["cat /proc/version", "cat /sys/kernel/livepatch/livepatch_sample/transition"],
    "mkdir": ["mkdir /sys/kernel/tracing/instances/foo"],
    "rmdir": ["rmdir /sys/kernel/tracing/instances/foo"],
    "conflicts": ["conflicts", "conflicts --json"],
    "disas": ["disas cmdline_proc_show"],
    "dmesg": ["dmesg | grep livepatch | tail -n 2"],
    "drgn": ["drgn"],
    "dump": ["dump /tmp/klpemu.core"],
    "echo": ["echo hello > /dev/kmsg", "echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled"],
    "gdb-symbols": ["gdb-symbols"],
    "gdbserver": ["gdbserver 1234", "gdbserver 127.0.0.1:1234"],
    "help": ["help insmod", "insmod --help"],
    "insmod": ["insmod livepatch-sample", "insmod test_klp_callbacks_busy block_transition=Y"],
    "kpatch": ["kpatch load livepatch-sample", "kpatch list"],
    "kprobe": ["kprobe cmdline_proc_show", "kprobe -r cmdline_proc_show", "kprobe -l"],
    "ls": ["ls /sys/kernel/livepatch", "ls -l /proc/1"],
    "lsmod": ["lsmod"],
    "modinfo": ["modinfo livepatch-sample"],
    "p": ["p/x ftrace_ops_list->flags"],
    "print": [
        "print *klp_transition_patch",
        "print ftrace_ops_list->next->func",
        "print ((struct task_struct *)&task_table[7])->patch_state",
    ],
    "ptype": ["ptype struct klp_func", "ptype ftrace_ops_list->func"],
    "ps": ["ps", "ps | grep kworker"],
    "reboot": ["reboot"],
    "rmmod": ["rmmod livepatch_sample"],
    "sleep": ["sleep 10ms", "sleep 2s"],
    "step": ["step", "step 20 --cpu 1"],
    "timeline": ["timeline start", "timeline stop /tmp/transition.json --png /tmp/transition.png"],
    "trace-call": ["trace-call cmdline_proc_show --seq-file"],
    "unwind": ["unwind 1"],
    "wait": ["wait /sys/kernel/livepatch/livepatch_sample/transition 0", "wait --gone /sys/kernel/livepatch/x 5s"],
}

PIPES = "Output can go through filters: CMD | grep [-v] [-i] [-c] PATTERN | head [-n N] | tail [-n N] | wc -l"


def print_help(sh: Shell, name: str) -> int:
    if name in FILTERS:
        print(f"usage: {FILTERS[name][1]}\n{PIPES}", file=sh.out)
        return 0
    entry = COMMANDS.get(name)
    if entry is None:
        return sh.error(f"help: no help topics match '{name}'")
    fn, usage = entry
    lines = [f"usage: {usage}", "", SUMMARY.get(name, "")]
    doc = inspect.getdoc(fn)
    if doc:
        lines += ["", doc]
    if EXAMPLES.get(name):
        lines += ["", "examples:"] + [f"  {e}" for e in EXAMPLES[name]]
    print("\n".join(lines), file=sh.out)
    return 0


@command("help", "help [CMD]")
def cmd_help(sh: Shell, args: list[str]) -> int:
    """With a command name: its usage, description and examples (as CMD --help prints them)."""
    if len(args) == 1:
        return print_help(sh, args[0])
    if args:
        return sh.error("help: one command name at most")
    for name in sorted(COMMANDS):
        print(f"  {name:<11} {SUMMARY.get(name, '')}", file=sh.out)
    print(f"\n{PIPES}\n'help CMD' or 'CMD --help' describes one command; Ctrl-C stops a running command.", file=sh.out)
    return 0
