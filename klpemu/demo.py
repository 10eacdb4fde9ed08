"""`klpemu demo`: the livepatch sample from insmod to rmmod on the emulated kernel, each step a
shell command and its output; then a second machine where one task holds the transition up.

Everything shown is the machine's own state at that moment; nothing is canned. Emulated time
only moves in the `sleep` and `wait` steps, so the run is the same every time.
"""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from .kernel.printk import records
from .kernel.tasks import all_tasks
from .machine.machine import MachineConfig
from .shell import Shell
from .system import System

PATCH = "livepatch_sample"
LP = f"/sys/kernel/livepatch/{PATCH}"
DEEP = 120  # krecurse's depth in part 2: past the 100 frames a reliable stack may have
LONG_PART = 60  # trace-call parts longer than this (the new function's body) are cut to their ends
PART_HEAD, PART_TAIL = 8, 3


def _pid(system: System, comm: str) -> int:
    return next(t.pid for t in all_tasks(system.machine) if t.comm == comm)


def _log_end(system: System) -> int:
    """The sequence number the kernel log's next record will get."""
    return records(system.machine)[-1].seq + 1


def shorten_trace(text: str) -> str:
    """trace-call's output with every long part cut to its first and last instructions."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        body = [line for line in block if line.startswith("[")]
        if len(body) > LONG_PART:
            start = block.index(body[0])
            hidden = len(body) - PART_HEAD - PART_TAIL
            block[start : start + len(body)] = (
                body[:PART_HEAD] + [f"    ... {hidden} more instructions ..."] + body[-PART_TAIL:]
            )
        out.extend(block)
        block.clear()

    for line in text.splitlines():
        if line.startswith("== ") or not line:
            flush()
        block.append(line)
    flush()
    return "\n".join(out) + "\n"


class Tour:
    """Prints each step's explanation, its command line, then runs it in the shell."""

    def __init__(self, system: System, out: TextIO):
        self.system = system
        self.out = out
        self.status = 0

    def say(self, text: str) -> None:
        print("\n" + textwrap.fill(text, 100, initial_indent="### ", subsequent_indent="    "), file=self.out)

    def run(self, cmd: str, shown: Callable[[str], str] | None = None) -> None:
        print(f"# {cmd}", file=self.out)
        if shown is None:
            self.status |= Shell(self.system, out=self.out, err=self.out).run_line(cmd)
            return
        buf = io.StringIO()
        self.status |= Shell(self.system, out=buf, err=self.out).run_line(cmd)
        self.out.write(shown(buf.getvalue()))

    def step(self, text: str, *cmds: str) -> None:
        self.say(text)
        for cmd in cmds:
            self.run(cmd)

    def log(self, text: str, since: int, words: tuple[str, ...] = ("livepatch",)) -> None:
        """The kernel log's lines from record `since` on that mention one of words."""
        self.say(text)
        for rec in records(self.system.machine, since):
            if any(w in rec.text for w in words):
                print(rec.dmesg_line(), file=self.out)


def part1(system: System, out: TextIO) -> int:
    tour = Tour(system, out)
    tour.step(
        "A small x86_64 kernel has booted on two emulated CPUs. `cat` runs in its sh process, "
        "through open and read system calls:",
        "cat /proc/cmdline",
    )
    tour.step(
        "cmdline_proc_show wrote that. Like every traceable function it starts with a 5-byte "
        "fentry site, a NOP5 while nobody traces it:",
        "disas cmdline_proc_show",
    )
    since = _log_end(system)
    tour.step(
        "The livepatch sample module replaces cmdline_proc_show. Its init calls klp_enable_patch, "
        "which starts a transition: each task has to switch to the patched state:",
        "modinfo livepatch-sample",
        "insmod livepatch-sample.ko",
    )
    tour.step(
        "A task switches when its stack holds no function being patched; sleeping tasks are "
        "checked at once, running ones switch on their way out of the kernel or in the idle "
        "loop. None had cmdline_proc_show on its stack, so all have switched (PATCH is "
        "/proc/<pid>/patch_state); the transition stays open until the next attempt:",
        f"cat {LP}/transition",
        "ps",
        "blocking",
    )
    tour.step(
        "One emulated second later the retry completes it; patch_state is back to -1, no transition:",
        "sleep 1s",
        f"cat {LP}/transition",
        "cat /proc/1/patch_state",
        "kpatch list",
    )
    tour.step(
        "The fentry site now calls a trampoline made for livepatch's ftrace ops, whose handler is klp_ftrace_handler:",
        "cat /sys/kernel/tracing/enabled_functions",
    )
    tour.say(
        "One call of cmdline_proc_show, instruction by instruction: the site calls the "
        "trampoline, which saves the registers and calls klp_ftrace_handler; the handler puts "
        "the new function's address in regs->ip, and the trampoline returns there (long parts "
        "shortened):"
    )
    tour.run("trace-call cmdline_proc_show --seq-file", shorten_trace)
    tour.step("Every reader now gets the new function's text:", "cat /proc/cmdline")
    tour.step(
        "Disable the patch through sysfs: an unpatching transition, then the patch is freed, "
        "its directory goes, and the module can be removed:",
        f"echo 0 > {LP}/enabled",
        f"wait --gone {LP}",
        "cat /proc/cmdline",
        "rmmod livepatch_sample",
        "lsmod",
    )
    tour.log("The kernel log, from the insmod on:", since)
    return tour.status


def part2(system: System, out: TextIO) -> int:
    tour = Tour(system, out)
    krecurse = _pid(system, "krecurse")
    print(
        "\n\n"
        + textwrap.fill(
            f"## Part 2: a task in the way. A second machine, booted with krecurse.depth={DEEP}: the kernel "
            f"thread krecurse sleeps {DEEP} calls deep, past the 100 frames the reliable unwinder accepts.",
            100,
            subsequent_indent="   ",
        ),
        file=out,
    )
    since = _log_end(system)
    tour.step(
        "Load the sample again. Tasks asleep on a clean stack switch at once; `blocking` lists the others and why:",
        "insmod livepatch-sample.ko",
        "ps",
        "blocking",
    )
    tour.step(
        "Attempts come every emulated second, and a task that was running switches on its way "
        "out of the kernel. krecurse is a kernel thread: it never leaves the kernel, and its "
        "stack stays too deep, so it stays unpatched:",
        "sleep 3s",
        "blocking",
        f"cat /proc/{krecurse}/patch_state",
    )
    tour.step(
        "Writing 0 to `enabled` reverses the transition: the target is now the unpatched "
        "state, which krecurse never left; the others switch back:",
        f"echo 0 > {LP}/enabled",
        "blocking",
    )
    tour.step(
        "The next attempt, within a second, switches them back and completes the transition; "
        "the patch is freed with it:",
        f"wait --gone {LP}",
        "ps",
        "rmmod livepatch_sample",
    )
    tour.log("The second kernel's log, from the insmod on:", since)
    return tour.status


def run_demo(
    config: MachineConfig | None = None,
    out: TextIO | None = None,
    timeline: str | None = None,
    timeline_png: str | None = None,
    timeline_functions: str | None = None,
) -> int:
    """The demo; with timeline, part 2 (the transition a task holds up, then reversed) is
    recorded there as Chrome trace-event JSON (with timeline_png, as a picture too; with
    timeline_functions, with the calls of the functions matching that glob)."""
    config = config or MachineConfig()
    out = out or sys.stdout
    print(
        "klpemu demo: Linux livepatch on an emulated x86_64 kernel.\n"
        "Each step is a klpemu shell command (`# ...`) and its output.",
        file=out,
    )
    status = part1(System(config).boot(), out)
    deep = replace(config, cmdline=f"{config.cmdline} krecurse.depth={DEEP}")
    second = System(deep).boot()
    if timeline is None:
        return status | part2(second, out)
    from . import timeline as recording
    from .timeline.chrome import write_json
    from .timeline.png import write_png

    recording.start(second.machine, timeline_functions)
    status |= part2(second, out)
    recorder = recording.stop(second.machine)
    count = write_json(recorder, timeline)
    if timeline_png is not None:
        write_png(recorder, timeline_png)
    png = f" and {timeline_png}" if timeline_png else ""
    print(f"\nPart 2's timeline: {count} events written to {timeline}{png}", file=out)
    return status
