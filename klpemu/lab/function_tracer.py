"""Lab 2: the function tracer's filters: a glob in set_ftrace_filter, one function left out
with set_ftrace_notrace, and what `trace` then records."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ..system import System
from .base import ANSWER, Lab, parse_answers, parse_int, rng
from .result import CheckResult
from .scenario import Scenario
from .workspace import Workspace

TRACING = "/sys/kernel/tracing"
# (glob, functions it matches that may be left out, a command that calls the others)
VARIANTS = (
    ("seq_*", ("seq_putc", "seq_puts"), "cat /proc/meminfo"),
    ("*_proc_show", ("cmdline_proc_show", "uptime_proc_show", "version_proc_show"), "cat /proc/meminfo"),
    ("sys_*", ("sys_write", "sys_close", "sys_getpid"), "cat /proc/version"),
    ("*_proc_show", ("meminfo_proc_show", "version_proc_show"), "cat /proc/uptime"),
)

TEMPLATE = """\
# Lab 2 answers: one `key: value` per line.
count:
"""


def matches(system: System, glob: str) -> set[int]:
    ft = system.kernel.ftrace
    return {ip for ip in ft.records.ips() if fnmatchcase(ft.symbol_of(ip), glob)}


class FunctionTracerLab(Lab):
    id = "tracer"
    number = 2
    title = "The function tracer: filters, globs and notrace, and reading trace"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        glob, left_out, _ = r.choice(VARIANTS)
        return Scenario(
            lab=self.id,
            seed=seed,
            machine_seed=r.randrange(1000),
            variant={"glob": glob, "notrace": r.choice(left_out)},
        )

    def sheet(self, sc: Scenario) -> str:
        g, n = sc.variant["glob"], sc.variant["notrace"]
        return f"""\
# Lab 2: the function tracer

Your glob: **{g}**, the function to leave out: **{n}**

The function tracer records a line in `{TRACING}/trace` for every call of a traced function:
task, CPU, flags, time, the function and its caller. Which functions it traces is the filter
(`set_ftrace_filter`: names and globs such as `vfs_*`) minus the notrace list
(`set_ftrace_notrace`). An empty filter means every function.

1. In `klpemu lab shell`, read `{TRACING}/available_filter_functions`: what could be traced.
2. Set the filter to the glob `{g}` (quote it: `echo '{g}' > ...`), and put `{n}` in
   `set_ftrace_notrace`. Read `set_ftrace_filter` back: how many functions did the glob select?
3. Turn the tracer on (`function` into `current_tracer`), run commands that call the traced
   functions (`cat` a /proc file...), and read `trace`. `{n}` must not appear in it.
4. Write into `{ANSWER}`: `count: N`, the number of functions `set_ftrace_filter` lists.

Leave the tracer on with your filters and something in `trace`: `klpemu lab check` inspects the
machine your shell session left.

Think about: what does the notrace list cost at a call of `{n}` compared with no filter at all?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {ANSWER: TEMPLATE}

    def hints(self, sc: Scenario) -> list[str]:
        g, n = sc.variant["glob"], sc.variant["notrace"]
        return [
            f"`echo '{g}' > {TRACING}/set_ftrace_filter` (quoted: a real shell would expand it).",
            f"`echo {n} > {TRACING}/set_ftrace_notrace`, then `cat {TRACING}/set_ftrace_filter`: one function a line.",
            f"`echo function > {TRACING}/current_tracer`, then something that calls them, then `cat {TRACING}/trace`.",
            "`>` replaces a filter, `>>` adds to it; `echo > FILE` (nothing) clears it.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        g, n = ws.scenario.variant["glob"], ws.scenario.variant["notrace"]
        ft = system.kernel.ftrace
        tracer = system.kernel.function_tracer
        want = matches(system, g)
        n_ip = system.machine.image.lookup(n).addr
        got = set(tracer.ops.filter)
        if not got:
            res.fail("set_ftrace_filter is empty: every function would be traced", self.hints(ws.scenario)[0])
        elif got != want:
            extra = sorted(ft.symbol_of(ip) for ip in got - want)
            missing = sorted(ft.symbol_of(ip) for ip in want - got)
            what = "; ".join(
                s
                for s in (
                    f"it has {', '.join(extra[:4])} too" if extra else "",
                    f"it lacks {', '.join(missing[:4])}" if missing else "",
                )
                if s
            )
            res.fail(f"set_ftrace_filter is not what the glob {g} selects: {what}", self.hints(ws.scenario)[3])
        else:
            res.ok(f"set_ftrace_filter: {g} ({len(want)} functions)")
        if set(tracer.ops.notrace) != {n_ip}:
            names = sorted(ft.symbol_of(ip) for ip in tracer.ops.notrace) or ["nothing"]
            res.fail(f"set_ftrace_notrace holds {', '.join(names)}, not just {n}", self.hints(ws.scenario)[1])
        else:
            res.ok(f"set_ftrace_notrace: {n}")
        if tracer.current != "function":
            res.fail("current_tracer is not `function`", self.hints(ws.scenario)[2])
        elif not tracer.tracing_on:
            res.fail("tracing_on is 0: the tracer records nothing", f"echo 1 > {TRACING}/tracing_on")
        traced = [e.ip for _, _, e in tracer.entries()]
        if n_ip in traced:
            res.fail(
                f"trace shows calls of {n}",
                "set the notrace list before turning the tracer on, then clear trace (echo > trace)",
            )
        if not any(ip in want - {n_ip} for ip in traced):
            res.fail(
                f"trace shows no call of a function {g} selects",
                "after turning the tracer on, run a command that calls one (cat a file under /proc)",
            )
        else:
            res.ok("trace shows the traced functions")
        count = parse_int(parse_answers(ws.file(ANSWER)).get("count", ""))
        if count is None:
            res.fail(f"{ANSWER} has no `count: N`", f"count the lines of {TRACING}/set_ftrace_filter")
        elif count != len(want):
            res.fail(
                f"count: {count} is not the number of functions {g} selects",
                f"count the lines `cat {TRACING}/set_ftrace_filter` prints (notrace is a separate list)",
            )
        else:
            res.ok(f"count: {count}")
        return res

    def solution_commands(self, sc: Scenario) -> list[str]:
        g, n = sc.variant["glob"], sc.variant["notrace"]
        command = next(c for glob, left, c in VARIANTS if glob == g and n in left)
        return [
            f"echo '{g}' > {TRACING}/set_ftrace_filter",
            f"echo {n} > {TRACING}/set_ftrace_notrace",
            f"echo function > {TRACING}/current_tracer",
            command,
            f"cat {TRACING}/trace",
        ]

    def solution_files(self, sc: Scenario, system: System) -> dict[str, str]:
        return {ANSWER: f"count: {len(matches(system, sc.variant['glob']))}\n"}
