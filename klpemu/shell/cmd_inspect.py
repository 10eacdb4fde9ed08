"""Looking at the machine as a debugger does: C expressions and types through drgn (`print`,
`ptype`), drgn's own console (`drgn`), and an ELF core for gdb (`dump`)."""

from __future__ import annotations

from errno import ENOSYS
from typing import TYPE_CHECKING, Any

from ..errors import KlpemuError
from .commands import no_arguments
from .core import Shell, UsageError, command

if TYPE_CHECKING:
    from ..debug.kernel_program import KernelProgram

# print's /FMT letters, as gdb's: the base integers are shown in
FORMAT_BASES = {"x": 16, "d": 10, "u": 10, "o": 8, "t": 2}


def kernel_program(sh: Shell) -> KernelProgram:
    """The shell's drgn Program, made on first use (drgn is optional) and remade after reboot."""
    from ..debug.kernel_program import KernelProgram

    if sh.kernel_program is None or sh.kernel_program.system is not sh.system:
        try:
            import drgn  # noqa: F401
        except ImportError:
            raise KlpemuError("drgn is not installed: pip install 'klpemu[drgn]'", ENOSYS) from None
        sh.kernel_program = KernelProgram(sh.system)
    return sh.kernel_program


def registers(sh: Shell) -> dict[str, Any]:
    """What `$name` reads in an expression: the registers of the CPU the shell looks at, and
    `$current`, the task running there (a struct task_struct *)."""
    import drgn

    cpu = sh.debug_cpu
    variables: dict[str, Any] = dict(sh.machine.cpus[cpu].regs())
    current = sh.machine.pcpu(cpu).current_task
    variables["current"] = drgn.Object(kernel_program(sh).prog, "struct task_struct *", int(current))
    return variables


def split_format(args: list[str], command_name: str) -> tuple[str, str]:
    fmt = args[0][1:] if args and args[0].startswith("/") else ""
    rest = args[1:] if fmt or (args and args[0] == "/") else args
    if not rest:
        raise UsageError(f"an expression is needed (e.g. {command_name} ftrace_ops_list->func)")
    return fmt, rest[0]


@command("print", "print[/FMT] EXPR", raw=True)
def cmd_print(sh: Shell, args: list[str]) -> int:
    """A C expression over the kernel's types and the loaded modules', evaluated by drgn on
    the live machine: globals, `->` and `.`, `*` and `&`, `[i]`, casts, sizeof, arithmetic,
    `$rip`-style registers and `$current` (the task on the CPU looked at). FMT x, d, u, o or
    t prints integers in that base. Values are numbered `$1`, `$2`... as in gdb."""
    from ..debug.c_expression import evaluate, format_value

    fmt, text = split_format(args, "print")
    if fmt and fmt not in FORMAT_BASES:
        raise UsageError(f'undefined output format "{fmt}" (one of {", ".join(FORMAT_BASES)})')
    obj = evaluate(kernel_program(sh).prog, text, registers(sh))
    shown = obj.format_(integer_base=FORMAT_BASES[fmt], dereference=False) if fmt else format_value(obj)
    sh.print_count += 1
    print(f"${sh.print_count} = {shown}", file=sh.out)
    return 0


@command("p", "p[/FMT] EXPR", raw=True)
def cmd_p(sh: Shell, args: list[str]) -> int:
    """gdb's short name for print."""
    return cmd_print(sh, args)


@command("ptype", "ptype TYPE|EXPR", raw=True)
def cmd_ptype(sh: Shell, args: list[str]) -> int:
    """A type's definition (`ptype struct klp_func`), or the type of an expression."""
    from ..debug.c_expression import type_of

    _, text = split_format(args, "ptype")
    print(f"type = {type_of(kernel_program(sh).prog, text, registers(sh))}", file=sh.out)
    return 0


@command("drgn", "drgn")
def cmd_drgn(sh: Shell, args: list[str]) -> int:
    """drgn's interactive console on the live machine (`prog`, drgn's helpers, `machine`);
    leave it with Ctrl-D to come back to this shell."""
    from ..debug.drgn_console import run_drgn_console

    no_arguments(args)
    kernel_program(sh)  # the clear error when drgn is missing
    return run_drgn_console(sh.system)


@command("dump", "dump FILE")
def cmd_dump(sh: Shell, args: list[str]) -> int:
    """An ELF core of the machine as it is now: `gdb IMAGE FILE` opens it, with a thread per
    CPU (LWP N+1 is CPU N) and every mapped page (`klpemu image-path` names IMAGE)."""
    from ..debug.elf_core import write_core

    if len(args) != 1:
        raise UsageError("one file name expected")
    try:
        size = write_core(sh.machine, args[0])
    except OSError as e:
        return sh.error(f"dump: {args[0]}: {e.strerror}")
    print(f"core of {len(sh.machine.cpus)} CPUs written to {args[0]} ({size} bytes)", file=sh.out)
    return 0
