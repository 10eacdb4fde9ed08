"""The `klpemu` command."""

from __future__ import annotations

import argparse
import sys
import time

from . import bench
from .errors import KlpemuError
from .kernel.printk import dmesg
from .klp_build import command as klp_build_command
from .machine.machine import DEFAULT_CMDLINE, MachineConfig
from .shell import Shell
from .system import System


def _machine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpus", type=int, default=2, help="emulated CPUs (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the CPU interleaving (default 0)")
    p.add_argument("--cmdline", default=DEFAULT_CMDLINE, help="kernel command line")
    p.add_argument("--image", default=None, help="kernel image (default: the shipped one)")


def _config(args: argparse.Namespace) -> MachineConfig:
    return MachineConfig(image=args.image, cpus=args.cpus, seed=args.seed, cmdline=args.cmdline)


def _system(args: argparse.Namespace) -> System:
    return System(_config(args)).boot()


def cmd_boot(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    system = _system(args)
    sys.stdout.write(dmesg(system.machine))
    print()
    Shell(system).run_line("ps")
    print(f"\nbooted in {system.machine.now / 1e6:.3f} ms of emulated time ({time.perf_counter() - t0:.2f} s wall)")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    system = _system(args)
    shell = Shell(system)
    if args.command is not None:
        return shell.run_line(args.command)
    if args.script is not None:
        try:
            with open(args.script) as f:
                return shell.run_line(f.read())
        except OSError as e:
            print(f"klpemu: {args.script}: {e.strerror}", file=sys.stderr)
            return 1
    return shell.interact()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(_config(args))


def cmd_kpatch(args: argparse.Namespace) -> int:
    from .kpatch import Kpatch

    return Kpatch(_system(args), sys.stdout, sys.stderr).main(args.args)


def cmd_bench(args: argparse.Namespace) -> int:
    return bench.run(args)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="klpemu", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("boot", help="boot the kernel, print the boot log and the task list")
    _machine_args(p)
    p.set_defaults(fn=cmd_boot)
    p = sub.add_parser("shell", help="a Linux-like console over the running machine")
    _machine_args(p)
    p.add_argument("-c", dest="command", help="run these commands (separated by ';') and exit")
    p.add_argument("--script", help="run the commands in this file and exit")
    p.set_defaults(fn=cmd_shell)
    p = sub.add_parser("demo", help="the livepatch sample from insmod to rmmod, step by step")
    _machine_args(p)
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("kpatch", help="boot, then run one kpatch command (load, unload, list, info)")
    _machine_args(p)
    p.add_argument("args", nargs=argparse.REMAINDER, help="the kpatch command and its arguments")
    p.set_defaults(fn=cmd_kpatch)
    p = sub.add_parser(
        "bench", help="the handler overhead of each ftrace, livepatch and kprobe configuration, beside bare Unicorn"
    )
    bench.add_arguments(p)
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("build-module", help="compile a module's C file against the kernel's headers (needs gcc)")
    p.add_argument("source", help="the module's C file")
    p.add_argument("-o", dest="output", help="the .ko to write (default: next to the source)")
    p.set_defaults(fn=cmd_build_module)
    p = sub.add_parser("klp-build", help=klp_build_command.HELP)
    klp_build_command.add_arguments(p)
    p.set_defaults(fn=klp_build_command.run)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except KlpemuError as e:
        print(f"klpemu: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
