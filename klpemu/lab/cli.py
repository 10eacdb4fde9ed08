"""`klpemu lab`: start, work on, check and grade the teaching labs."""

from __future__ import annotations

import argparse
import sys
import time

from ..shell.terminal import Terminal
from . import LABS, get_lab
from .grading import check_workspace, grade, selftest, start_workspace, write_grades
from .workspace import LabError, Workspace, chdir


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lab_cmd", required=True)
    sub.add_parser("list", help="the labs, one a line: id, then title")
    s = sub.add_parser("start", help="a new workspace for a lab, its variant fixed by the seed")
    s.add_argument("lab", help="the lab's id or number")
    _start_arguments(s)
    # argparse cannot take an optional positional after an option (start ID --seed S DIR):
    # what follows ID is parsed again, intermixed, by _start.
    s.add_argument("rest", nargs=argparse.REMAINDER, help="[--seed S] [DIR]")
    s = sub.add_parser("shell", help="the shell on the lab's machine, where the last session left it")
    s.add_argument("dir", nargs="?", default=".")
    s.add_argument("-c", dest="command", help="run these commands (separated by ';') and exit")
    for name, text in (
        ("reset", "the lab's machine back to its start (your files stay)"),
        ("check", "check your work: pass, or what is wrong and a hint"),
        ("hint", "the next hint"),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("dir", nargs="?", default=".")
    s = sub.add_parser("solution", help="(instructors) the reference answer of a variant")
    s.add_argument("lab")
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("selftest", help="(instructors) every lab's reference solution through its checker")
    s.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 of every lab (default 5)")
    s.add_argument("--lab", action="append", help="only this lab (repeatable)")
    s = sub.add_parser("grade", help="(instructors) check many workspaces, write a CSV and a JSON")
    s.add_argument("dirs", nargs="+")
    s.add_argument("-o", dest="output", default="grades", help="write OUTPUT.csv and OUTPUT.json (default grades)")


def _start_arguments(p: argparse.ArgumentParser, dir_too: bool = False) -> None:
    p.add_argument("--seed", type=int, default=0, help="the variant (default 0): each student gets their own")
    if dir_too:
        p.add_argument("dir", nargs="?", help="the workspace to create (default: lab-ID-SEED)")


def run(args: argparse.Namespace) -> int:
    try:
        return _COMMANDS[args.lab_cmd](args)
    except LabError as e:
        print(f"klpemu lab: {e}", file=sys.stderr)
        return 1


def _list(args: argparse.Namespace) -> int:
    width = max(len(lab.id) for lab in LABS)
    for lab in LABS:
        print(f"{lab.id:<{width}}  {lab.number}. {lab.title}")
    return 0


def _start(args: argparse.Namespace) -> int:
    again = argparse.ArgumentParser(prog=f"klpemu lab start {args.lab}")
    _start_arguments(again, dir_too=True)
    args = again.parse_intermixed_args(args.rest, argparse.Namespace(**vars(args)))
    if args.seed < 0:
        raise LabError("--seed must be 0 or more")
    lab = get_lab(args.lab)
    ws = start_workspace(lab, args.seed, args.dir or f"lab-{lab.id}-{args.seed}")
    print(f"{ws.path}: lab {lab.number} ({lab.id}), seed {args.seed}")
    print(f"Read {ws.path / 'README.md'}, then: cd {ws.path} && klpemu lab shell")
    return 0


def _shell(args: argparse.Namespace) -> int:
    ws = Workspace(args.dir)
    system = ws.machine()
    if args.command is not None:
        return ws.run(system, args.command)
    n = len(ws.history())
    print(f"lab {ws.scenario.lab}, seed {ws.scenario.seed}: {n} earlier command(s) replayed. 'exit' saves and leaves.")
    # the shell a person has elsewhere (line editing, history, Ctrl-C, help), recording each
    # line for the next replay, in the workspace so that its files are at hand
    with chdir(ws.path):
        return Terminal(ws.recording_shell(system), sys.stdin).run()


def _reset(args: argparse.Namespace) -> int:
    ws = Workspace(args.dir)
    ws.reset()
    print(f"{ws.path}: the machine is back at the start of lab {ws.scenario.lab}; your files are untouched")
    return 0


def _check(args: argparse.Namespace) -> int:
    ws = Workspace(args.dir)
    t0 = time.perf_counter()
    res = check_workspace(ws)
    sys.stdout.write(res.report())
    print(f"(checked in {time.perf_counter() - t0:.1f} s)")
    return 0 if res.passed else 1


def _hint(args: argparse.Namespace) -> int:
    ws = Workspace(args.dir)
    hints = get_lab(ws.scenario.lab).hints(ws.scenario)
    shown = ws.hints_shown()
    if shown >= len(hints):
        print(f"No more hints (all {len(hints)} shown):")
        for i, h in enumerate(hints, 1):
            print(f"  {i}. {h}")
        return 0
    print(f"Hint {shown + 1} of {len(hints)}: {hints[shown]}")
    ws.set_hints_shown(shown + 1)
    return 0


def _solution(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    sys.stdout.write(lab.solution(lab.scenario(args.seed)))
    return 0


def _selftest(args: argparse.Namespace) -> int:
    labs = [get_lab(name) for name in args.lab] if args.lab else None
    failed = 0
    for r in selftest(args.seeds, labs):
        print(f"{r.lab:<12} {r.seeds} seeds  {'ok' if not r.failures else 'FAILED'}  {r.seconds:.1f} s")
        for f in r.failures:
            print(f"    {f}")
        failed += bool(r.failures)
    return 1 if failed else 0


def _grade(args: argparse.Namespace) -> int:
    grades = grade(args.dirs)
    for g in grades:
        print(f"{'PASS' if g.passed else 'FAIL'}  {g.lab:<12} seed {g.seed}  {g.workspace}")
    csv_path, json_path = write_grades(grades, args.output)
    print(f"wrote {csv_path} and {json_path}: {sum(g.passed for g in grades)} of {len(grades)} passed")
    return 0


_COMMANDS = {
    "list": _list,
    "start": _start,
    "shell": _shell,
    "reset": _reset,
    "check": _check,
    "hint": _hint,
    "solution": _solution,
    "selftest": _selftest,
    "grade": _grade,
}
