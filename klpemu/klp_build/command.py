"""`klpemu klp-build FIX.patch`: the command's arguments and its run."""

from __future__ import annotations

import argparse
import sys

from .build import klp_build


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patch", help="the fix, a patch in git diff form (a/firmware/..., b/firmware/...)")
    p.add_argument("--name", help="the module's name (default: livepatch_ and the patch file's name)")
    p.add_argument("-o", dest="output", help="the .ko to write (default: NAME.ko here)")
    p.add_argument("--replace", action="store_true", help="an atomic-replace patch (klp_patch.replace)")
    p.add_argument("--show-first-changed", action="store_true", help="print where each changed function first differs")
    p.add_argument("--source", help="a checkout to use instead of the firmware sources shipped with klpemu")
    p.add_argument(
        "--keep", metavar="DIR", help="keep the patched tree and the module's generated C and assembly in DIR (new)"
    )


def run(args: argparse.Namespace) -> int:
    klp_build(
        args.patch,
        name=args.name,
        output=args.output,
        replace=args.replace,
        show_first_changed=args.show_first_changed,
        source=args.source,
        out=sys.stdout,
        keep=args.keep,
    )
    return 0
