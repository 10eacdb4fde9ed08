"""klpemu: Linux ftrace and livepatch on an emulated x86_64 machine, instruction by instruction."""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable

from . import __version__
from .errors import KlpemuError
from .kernel.livepatch.models import MODELS
from .kernel.printk import dmesg
from .machine.machine import DEFAULT_CMDLINE, Machine, MachineConfig
from .shell import Shell
from .system import System

# Emulated clocks whose period is a whole number of ns (MachineConfig.insn_ns is an int): the
# divisors of 1000.
CPU_MHZ = tuple(mhz for mhz in range(1000, 0, -1) if 1000 % mhz == 0)
DEFAULT_CPU_MHZ = 1000  # insn_ns = 1, as MachineConfig has it: the tests' counts and transcripts
# A person at a terminal: an emulated second of a busy CPU costs about a second of host time
# (10^8 instructions, uncounted), instead of about 28 s at the scripted default.
INTERACTIVE_CPU_MHZ = 100
INTERACTIVE_SLICING = "uncounted"
SLICINGS = ("counted", "uncounted")
MEM_MB_MIN, MEM_MB_MAX = 64, 4096
KLP_BUILD_HELP = "build a livepatch module from a source patch (git diff form) against firmware/ (needs gcc)"


def cpu_mhz(text: str) -> int:
    """--cpu-mhz: a clock whose period is a whole number of ns, else an error naming those there are."""
    try:
        mhz = int(text)
    except ValueError:
        mhz = 0
    if mhz not in CPU_MHZ:
        choices = ", ".join(map(str, CPU_MHZ))
        raise argparse.ArgumentTypeError(
            f"{text!r} MHz does not give a whole number of ns per instruction; use one of {choices}"
        )
    return mhz


def mem_mb(text: str) -> int:
    """--mem-mb: guest RAM in MiB, enough for the kernel and not more than Unicorn maps at once."""
    try:
        mb = int(text)
    except ValueError:
        mb = 0
    if not MEM_MB_MIN <= mb <= MEM_MB_MAX:
        raise argparse.ArgumentTypeError(f"{text!r}: guest RAM is {MEM_MB_MIN} to {MEM_MB_MAX} MiB")
    return mb


def _machine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpus", type=int, default=2, help="emulated CPUs (default 2)")
    p.add_argument(
        "--mem-mb",
        type=mem_mb,
        default=MachineConfig.mem_mb,
        metavar="MB",
        help=f"guest RAM in MiB (default {MachineConfig.mem_mb}); "
        "each kernel thread past the 64 of a boot takes about 17 KiB",
    )
    p.add_argument(
        "--cpu-mhz",
        type=cpu_mhz,
        default=None,
        metavar="MHZ",
        help=f"emulated clock: each instruction takes 1000/MHZ ns of emulated time (default {DEFAULT_CPU_MHZ}, "
        f"{INTERACTIVE_CPU_MHZ} for `shell` on a terminal); slower clocks pass emulated time in fewer instructions",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the CPU interleaving (default 0)")
    p.add_argument(
        "--slicing",
        choices=SLICINGS,
        default=None,
        help="counted: Unicorn counts each CPU's slice to the instruction (the default); uncounted: slices "
        "end at translation-block boundaries and a CPU running alone runs to the next tick, two to three "
        f"times as fast, as deterministic for a seed but interleaved differently (the default of `shell` on a "
        f"terminal, with --cpu-mhz {INTERACTIVE_CPU_MHZ})",
    )
    p.add_argument("--cmdline", default=DEFAULT_CMDLINE, help="kernel command line")
    p.add_argument("--image", default=None, help="kernel image (default: the shipped one)")
    p.add_argument(
        "--consistency-model",
        choices=MODELS,
        default="linux",
        help="livepatch's consistency model: linux (default), stop_machine (kpatch), lazy (kGraft), "
        "immediate (before 4.12)",
    )
    p.add_argument(
        "--no-klp-stack-check",
        dest="klp_stack_check",
        action="store_false",
        help="debug: linux's model switches a task whatever its stack holds",
    )


def _config(args: argparse.Namespace, *, interactive: bool = False) -> MachineConfig:
    """The machine the options ask for; what they leave out follows interactive use or scripted use."""
    mhz = args.cpu_mhz or (INTERACTIVE_CPU_MHZ if interactive else DEFAULT_CPU_MHZ)
    slicing = args.slicing or (INTERACTIVE_SLICING if interactive and _uncounted_runs_here() else "counted")
    return MachineConfig(
        image=args.image,
        cpus=args.cpus,
        seed=args.seed,
        cmdline=args.cmdline,
        insn_ns=1000 // mhz,
        consistency_model=args.consistency_model,
        klp_stack_check=args.klp_stack_check,
        mem_mb=args.mem_mb,
        uncounted=slicing == "uncounted",
    )


def _uncounted_runs_here() -> bool:
    """Whether this host can run the block counter's machine code (x86-64, executable memory)."""
    from .machine.block_counter import unavailable_reason

    return unavailable_reason() is None


def _system(args: argparse.Namespace, *, interactive: bool = False) -> System:
    return System(_config(args, interactive=interactive)).boot()


def cmd_boot(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    system = _system(args)
    sys.stdout.write(dmesg(system.machine))
    print()
    Shell(system).run_line("ps")
    print(f"\nbooted in {system.machine.now / 1e6:.3f} ms of emulated time ({time.perf_counter() - t0:.2f} s wall)")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from .shell.terminal import Terminal, install_sigint, tty_echoes_ctrl_c

    for stream in (sys.stdin, sys.stdout):  # raw bytes typed reach the guest, and echo, as those bytes
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")
    script = None
    if args.script is not None:
        try:
            with open(args.script, errors="surrogateescape") as f:  # raw bytes reach the guest as bytes
                script = f.read()
        except OSError as e:
            print(f"klpemu: {args.script}: {e.strerror}", file=sys.stderr)
            return 1
    if args.command is None and script is None:
        if args.timeline is not None:
            print("klpemu: --timeline needs -c or --script", file=sys.stderr)
            return 2
        interactive = sys.stdin.isatty()
        shell = Shell(_system(args, interactive=interactive))
        if interactive:
            cfg = shell.machine.config
            print(
                f"klpemu: emulated clock {1000 // cfg.insn_ns} MHz, {'uncounted' if cfg.uncounted else 'counted'} "
                f"slices (scripts default to --cpu-mhz {DEFAULT_CPU_MHZ} --slicing counted)"
            )
        return Terminal(shell).run()
    shell = Shell(_system(args))
    install_sigint(shell)
    shell.echoed_ctrl_c = tty_echoes_ctrl_c(sys.stdin)
    return _recorded(args, lambda: shell.machine, lambda: shell.run_line(args.command or script or ""))


def _timeline_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--timeline", metavar="FILE.json", help=f"record {what} as Chrome trace JSON")
    p.add_argument("--timeline-png", metavar="FILE.png", help="with --timeline, a PNG summary too")
    p.add_argument(
        "--timeline-functions", metavar="GLOB", help="with --timeline, the calls of the functions matching GLOB too"
    )


def _recorded(args: argparse.Namespace, machine: Callable[[], Machine], run: Callable[[], int]) -> int:
    """run(), recording a timeline of it when --timeline asks; machine() is the one it runs on."""
    if args.timeline is None:
        if args.timeline_png is not None or args.timeline_functions is not None:
            print("klpemu: --timeline-png and --timeline-functions go with --timeline", file=sys.stderr)
            return 2
        return run()
    from . import timeline
    from .timeline.chrome import write_json
    from .timeline.png import write_png

    try:
        timeline.start(machine(), args.timeline_functions)
    except KlpemuError as e:
        print(f"klpemu: timeline: {e}", file=sys.stderr)
        return 2
    status = run()
    if machine().timeline is None:  # the commands stopped it themselves, or rebooted
        print(
            f"klpemu: no timeline to write to {args.timeline}: it was stopped or the machine rebooted", file=sys.stderr
        )
        return status
    recorder = timeline.stop(machine())
    try:
        count = write_json(recorder, args.timeline)
        if args.timeline_png is not None:
            write_png(recorder, args.timeline_png)
    except OSError as e:
        print(f"klpemu: timeline: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    png = f" and {args.timeline_png}" if args.timeline_png else ""
    print(f"timeline: {count} events written to {args.timeline}{png}")
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.timeline is None and (args.timeline_png is not None or args.timeline_functions is not None):
        print("klpemu: --timeline-png and --timeline-functions go with --timeline", file=sys.stderr)
        return 2
    try:
        return run_demo(
            _config(args),
            timeline=args.timeline,
            timeline_png=args.timeline_png,
            timeline_functions=args.timeline_functions,
        )
    except KlpemuError as e:  # a glob that matches nothing, found once part 2's machine is up
        print(f"klpemu: timeline: {e}", file=sys.stderr)
        return 2


def cmd_kpatch(args: argparse.Namespace) -> int:
    from .kpatch import Kpatch

    system = _system(args)
    return _recorded(args, lambda: system.machine, lambda: Kpatch(system, sys.stdout, sys.stderr).main(args.args))


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.run(args)


def cmd_drgn(args: argparse.Namespace) -> int:
    from .shell.cmd_inspect import kernel_program

    shell = Shell(_system(args))
    kernel_program(shell)  # a clear error when drgn is missing, before anything runs
    if args.setup and shell.run_line(args.setup):
        return 1
    return shell.run_command(["drgn"])


def cmd_build_module(args: argparse.Namespace) -> int:
    from .modbuild import NO_GCC, build_module

    try:
        out = build_module(args.source, args.output)
    except KlpemuError as e:
        if str(e) != NO_GCC:
            raise
        print(NO_GCC, file=sys.stderr)
        return 1
    print(f"  CC [M]  {out}")
    return 0


def cmd_image_path(_args: argparse.Namespace) -> int:
    from .machine.machine import shipped_image

    print(shipped_image())
    return 0


def cmd_gdb_unwinder(args: argparse.Namespace) -> int:
    from .debug.gdb_unwinder import write_unwinder

    try:
        path = write_unwinder(args.file)
    except OSError as e:
        raise KlpemuError(f"{args.file}: {e.strerror}", e.errno or 0) from None
    print(f"in gdb: source {path}")
    return 0


def cmd_gdbserver(args: argparse.Namespace) -> int:
    from .debug.server import gdbserver, listen, parse_listen

    listen(*parse_listen(args.listen), allow_remote=args.allow_remote).close()  # refuse before booting
    return gdbserver(_system(args), args.listen, setup=args.setup, run=args.run, allow_remote=args.allow_remote)


def _add_debug_parsers(sub) -> None:
    p = sub.add_parser("gdbserver", help="serve the booted machine to gdb (CPUs are threads)")
    _machine_args(p)
    p.add_argument("--listen", default="127.0.0.1:1234", help="HOST:PORT to listen on (default 127.0.0.1:1234)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback address")
    p.add_argument("--setup", help="shell commands to run before gdb attaches")
    p.add_argument("--run", help="shell commands to run when gdb first resumes the machine")
    p.set_defaults(fn=cmd_gdbserver)
    p = sub.add_parser("image-path", help="print the path of the shipped kernel image (for gdb, objdump, drgn)")
    p.set_defaults(fn=cmd_image_path)
    p = sub.add_parser("gdb-unwinder", help="write gdb's unwinder for ftrace trampolines (then: source FILE)")
    p.add_argument("file", help="where to write it (a .py name, which gdb sources as Python)")
    p.set_defaults(fn=cmd_gdb_unwinder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="klpemu", description=__doc__)
    parser.add_argument("--version", action="version", version=f"klpemu {__version__}")
    sub = parser.add_subparsers(dest="cmd", title="commands", metavar="COMMAND")
    p = sub.add_parser("boot", help="boot the kernel, print the boot log and the task list")
    _machine_args(p)
    p.set_defaults(fn=cmd_boot)
    p = sub.add_parser("shell", help="a Linux-like console over the running machine")
    _machine_args(p)
    p.add_argument("-c", dest="command", help="run these commands (separated by ';') and exit")
    p.add_argument("--script", help="run the commands in this file and exit")
    _timeline_args(p, "the commands' timeline")
    p.set_defaults(fn=cmd_shell)
    p = sub.add_parser("demo", help="the livepatch sample from insmod to rmmod, step by step")
    _machine_args(p)
    _timeline_args(p, "part 2")
    p.set_defaults(fn=cmd_demo)
    # The commands below bring in much (capstone, the labs, klp-build): their options are added,
    # and their modules imported, only when the command line names them, so a shell starts sooner.
    chosen = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    p = sub.add_parser(
        "kpatch",
        help="boot, then run one kpatch command (load, unload, list, info)",
        description="Boot, then run one kpatch command on the machine.",
        epilog=_kpatch_verbs() if chosen == "kpatch" else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _machine_args(p)
    _timeline_args(p, "the command's timeline")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the kpatch command and its arguments")
    p.set_defaults(fn=cmd_kpatch)
    p = sub.add_parser(
        "bench", help="the handler overhead of each ftrace, livepatch and kprobe configuration, beside bare Unicorn"
    )
    if chosen == "bench":
        from . import bench, bench_control_plane

        bench.add_arguments(p)
        p.set_defaults(fn=cmd_bench)
        more = p.add_subparsers(dest="bench_cmd", title="other benchmarks", metavar="BENCHMARK", required=False)
        q = more.add_parser(
            "control-plane",
            help="livepatch enable and stack check as the patch grows to 1000 functions and the machine to "
            "10,000 tasks",
        )
        bench_control_plane.add_arguments(q)
        q.set_defaults(fn=bench_control_plane.run)
    p = sub.add_parser("build-module", help="compile a module's C file against the kernel's headers (needs gcc)")
    p.add_argument("source", help="the module's C file")
    p.add_argument("-o", dest="output", help="the .ko to write (default: next to the source)")
    p.set_defaults(fn=cmd_build_module)
    p = sub.add_parser("drgn", help="drgn's interactive console on a booted machine (needs drgn)")
    _machine_args(p)
    p.add_argument("--setup", default="", help="shell commands to run first (e.g. 'insmod livepatch-sample')")
    p.set_defaults(fn=cmd_drgn)
    _add_debug_parsers(sub)
    p = sub.add_parser("lab", help="teaching labs: seeded exercises checked against the machine")
    if chosen == "lab":
        from .lab import cli as lab_cli

        lab_cli.add_arguments(p)
        p.set_defaults(fn=lab_cli.run)
    p = sub.add_parser("fuzz-modules", help="load damaged copies of the shipped modules and count the outcomes")
    if chosen == "fuzz-modules":
        from . import fuzz  # the module fuzzer: its options and its entry point live with it

        fuzz.add_arguments(p)
        p.set_defaults(fn=fuzz.main_args)
    p = sub.add_parser("campaign", help="seeds x consistency models x workloads, checked by the consistency oracle")
    if chosen == "campaign":
        from .campaign import campaign

        campaign.add_arguments(p)
        p.set_defaults(fn=campaign.main_args)
    p = sub.add_parser("klp-build", help=KLP_BUILD_HELP)
    if chosen == "klp-build":
        from .klp_build import command as klp_build_command

        klp_build_command.add_arguments(p)
        p.set_defaults(fn=klp_build_command.run)
    args = parser.parse_args(argv)
    if args.cmd is None:  # as git and ip do: what there is to run
        parser.print_help()
        return 2
    try:
        status = args.fn(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, rather than at exit
        return status
    except KlpemuError as e:
        print(f"klpemu: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, with the status sh gives SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
        return 141


def _kpatch_verbs() -> str:
    from .kpatch import USAGE

    return "commands:\n" + "\n".join(f"  {name:<28} {text}" for name, text in USAGE)


if __name__ == "__main__":
    sys.exit(main())
