"""`timeline`: record what a livepatch transition and its tasks do, in emulated time."""

from __future__ import annotations

from .. import timeline
from ..errors import KlpemuError
from .core import Shell, UsageError, command


def stop_and_write(sh: Shell, json_path: str, png_path: str | None) -> int:
    """Stop recording and write the files; shared with the command line's --timeline."""
    from ..timeline.chrome import write_json
    from ..timeline.png import write_png

    try:
        recorder = timeline.stop(sh.machine)
    except KlpemuError as e:
        return sh.error(f"timeline: {e}")
    try:
        count = write_json(recorder, json_path)
        if png_path is not None:
            write_png(recorder, png_path)
    except OSError as e:
        return sh.error(f"timeline: {e.filename}: {e.strerror}")
    print(f"timeline: {count} events written to {json_path}" + (f" and {png_path}" if png_path else ""), file=sh.out)
    return 0


@command("timeline", "timeline start [--functions GLOB] | stop FILE.json [--png FILE.png]")
def cmd_timeline(sh: Shell, args: list[str]) -> int:
    """start: record, from now on, each task's patch_state changes and why, the transition's
    phases, text_poke batches, ftrace ops and which task each CPU runs; with --functions, also
    every call of the kernel and module functions matching GLOB, entry and exit, on the calling
    task's track (as function_graph; from host hooks, which cost host time on each call but no
    guest instruction). stop: write what was recorded as Chrome trace-event JSON (open it in
    ui.perfetto.dev or chrome://tracing), and with --png a picture of it. Recording is off
    until started and costs nothing then."""
    if not args:
        raise UsageError("missing start or stop")
    if args[0] == "start":
        rest = args[1:]
        functions = None
        if rest and rest[0] == "--functions":
            if len(rest) < 2:
                raise UsageError("--functions needs a GLOB")
            functions, rest = rest[1], rest[2:]
        if rest:
            raise UsageError(f"unsupported argument '{rest[0]}'")
        try:
            timeline.start(sh.machine, functions)
        except KlpemuError as e:
            return sh.error(f"timeline: {e}")
        return 0
    if args[0] != "stop":
        raise UsageError(f"unknown subcommand '{args[0]}'")
    rest = args[1:]
    png = None
    if "--png" in rest:
        at = rest.index("--png")
        if at + 1 >= len(rest):
            raise UsageError("--png needs a file name")
        png = rest[at + 1]
        del rest[at : at + 2]
    if len(rest) != 1:
        raise UsageError("stop takes one FILE.json")
    return stop_and_write(sh, rest[0], png)
