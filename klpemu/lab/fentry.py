"""Lab 1: a function's fentry site, its bytes before and after the function tracer takes it, and
the trampoline it then calls."""

from __future__ import annotations

from ..system import System
from .base import ANSWER, Lab, parse_answers, parse_bytes, parse_int, rng
from .result import CheckResult
from .scenario import Scenario
from .workspace import Workspace

TRACING = "/sys/kernel/tracing"
# Plain functions whose tracing disturbs nothing else the lab shows.
FUNCTIONS = (
    "cmdline_proc_show",
    "meminfo_proc_show",
    "uptime_proc_show",
    "version_proc_show",
    "show_stat",
    "seq_printf",
    "seq_puts",
    "seq_putc",
    "proc_lookup",
    "sys_getpid",
    "find_task_by_pid",
    "module_refcount",
    "klp_get_state",
    "register_kprobe",
    "schedule_work",
    "msleep",
)

TEMPLATE = """\
# Lab 1 answers: one `key: value` per line; addresses in hex (0x...), bytes as disas prints them.
site:
before:
after:
trampoline:
"""


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


class FentryLab(Lab):
    id = "fentry"
    number = 1
    title = "Fentry sites: a function's first five bytes, before and after tracing it"

    def scenario(self, seed: int) -> Scenario:
        r = rng(self, seed)
        return Scenario(
            lab=self.id, seed=seed, machine_seed=r.randrange(1000), variant={"function": r.choice(FUNCTIONS)}
        )

    def sheet(self, sc: Scenario) -> str:
        f = sc.variant["function"]
        return f"""\
# Lab 1: fentry sites

Your function: **{f}**

Every traceable function of this kernel was compiled with `-pg -mfentry`: its first
instruction is a 5-byte call to `__fentry__`, which the kernel turns into a 5-byte NOP at boot.
When something traces the function, ftrace rewrites those five bytes into a call to a
trampoline, which saves registers and calls the tracer's handler.

1. Start the lab's machine with `klpemu lab shell` and look at `{f}` with `disas {f}`.
   Note the address of its fentry site and the five bytes there.
2. Trace only `{f}` with the function tracer: write its name to
   `{TRACING}/set_ftrace_filter`, then `function` to `{TRACING}/current_tracer`.
3. `disas {f}` again: note the new five bytes and the address the site now calls.
   `cat {TRACING}/enabled_functions` tells you whose trampoline that is.
4. Fill in `{ANSWER}`:

       site: 0x...        (address of the fentry site)
       before: xx xx xx xx xx   (the site's bytes before tracing)
       after: xx xx xx xx xx    (the site's bytes while traced)
       trampoline: 0x...  (the address the site calls while traced)

Leave the tracer on: `klpemu lab check` replays your shell session and compares your answers
with the machine itself. `klpemu lab hint` gives hints one at a time.

Think about: why five bytes and not one? Why is the call relative, and what would happen if the
trampoline were more than 2 GiB away from the site?
"""

    def starter_files(self, sc: Scenario) -> dict[str, str]:
        return {ANSWER: TEMPLATE}

    def hints(self, sc: Scenario) -> list[str]:
        f = sc.variant["function"]
        return [
            f"`disas {f}` prints each instruction's address, then its bytes; the site is the first instruction.",
            "A 5-byte NOP is `0f 1f 44 00 00`; a relative call is `e8` then a 32-bit little-endian displacement.",
            f"`echo {f} > {TRACING}/set_ftrace_filter` then `echo function > {TRACING}/current_tracer`.",
            "The call's target is printed by disas after the bytes (`callq 0x...`): that is the trampoline.",
        ]

    def check(self, ws: Workspace, system: System) -> CheckResult:
        res = CheckResult()
        f = ws.scenario.variant["function"]
        ft = system.kernel.ftrace
        ip = system.machine.image.lookup(f).addr
        answers = parse_answers(ws.file(ANSWER))
        target = ft.site_target(ip)
        tracer = system.kernel.function_tracer
        if tracer.current != "function":
            res.fail(
                "the function tracer is not on in your machine",
                f"write `function` to {TRACING}/current_tracer in `klpemu lab shell` (and leave it on)",
            )
        elif set(tracer.ops.filter) != {ip}:
            names = sorted(ft.symbol_of(i) for i in tracer.ops.filter) or ["every function"]
            res.fail(
                f"the function tracer traces {', '.join(names[:5])}, not only {f}",
                f"write just `{f}` to {TRACING}/set_ftrace_filter (a plain `>` replaces the filter)",
            )
        if target is None:
            res.fail(
                f"the fentry site of {f} is still a NOP in your machine: nothing traces it", self.hints(ws.scenario)[2]
            )
        if not answers:
            return res.fail(f"{ANSWER} has no answers yet", f"fill in site, before, after, trampoline in {ANSWER}")
        site = parse_int(answers.get("site", ""))
        if site != ip:
            res.fail(
                f"site: {answers.get('site', '(missing)')} is not the address of {f}'s fentry site",
                "the site is the function's first instruction: the first address `disas` prints",
            )
        else:
            res.ok(f"site 0x{ip:x}")
        before = bytes(ws.scenario.boot().machine.mem.read(ip, 5))
        now = bytes(system.machine.mem.read(ip, 5))
        for key, want, hint in (
            ("before", before, "the bytes `disas` shows before anything traces the function"),
            ("after", now, "the bytes of the first instruction while the tracer is on"),
        ):
            got = parse_bytes(answers.get(key, ""))
            if got == want:
                res.ok(f"{key}: {_hex(want)}")
            elif got is not None and len(got) != 5:
                res.fail(f"{key}: gives {len(got)} bytes; an fentry site is 5", hint)
            elif key == "before" and got == now:
                res.fail("before: these are the bytes while traced, not before", "before tracing, the site is a NOP")
            elif key == "after" and got == before:
                res.fail("after: these are the untraced bytes (a NOP)", "look again after turning the tracer on")
            else:
                res.fail(f"{key}: {answers.get(key, '(missing)')} is not what the site holds", hint)
        tramp = parse_int(answers.get("trampoline", ""))
        if target is not None and tramp == target:
            res.ok(f"trampoline 0x{target:x}")
        elif target is not None and tramp is not None and system.machine.image.function_at(tramp) is not None:
            res.fail(
                f"trampoline: 0x{tramp:x} is {system.machine.image.symbolize(tramp)}, a function, "
                "not what the site calls",
                "the trampoline is the call's target, which `disas` prints after the call's bytes",
            )
        else:
            res.fail(
                f"trampoline: {answers.get('trampoline', '(missing)')} is not the address the site calls",
                "decode the call: its target is the next instruction's address plus the 32-bit displacement",
            )
        return res

    def solution_commands(self, sc: Scenario) -> list[str]:
        f = sc.variant["function"]
        return [f"disas {f}", f"echo {f} > {TRACING}/set_ftrace_filter", f"echo function > {TRACING}/current_tracer"]

    def solution_files(self, sc: Scenario, system: System) -> dict[str, str]:
        ip = system.machine.image.lookup(sc.variant["function"]).addr
        before = bytes(sc.boot().machine.mem.read(ip, 5))
        after = bytes(system.machine.mem.read(ip, 5))
        target = system.kernel.ftrace.site_target(ip)
        assert target is not None
        return {ANSWER: f"site: 0x{ip:x}\nbefore: {_hex(before)}\nafter: {_hex(after)}\ntrampoline: 0x{target:x}\n"}
