"""A one-picture summary: a row per task coloured by its patch_state over time, with the
transition's phases and the text_poke batches marked above them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .recorder import PID_LIVEPATCH, PID_TASKS, TID_TEXT_POKE, TID_TRANSITION

if TYPE_CHECKING:
    from .recorder import Recorder

COLOURS = {-1: "#d0d0d0", 0: "#f4a259", 1: "#5b8e7d"}
LABELS = {-1: "no transition", 0: "unpatched", 1: "patched"}


def write_png(recorder: Recorder, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    trace = recorder.trace()["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in trace if e["name"] == "thread_name" and e["pid"] == PID_TASKS}
    last = max([recorder.m.now / 1000] + [e["ts"] for e in trace if e["ph"] != "M"])
    start = recorder.started_ns / 1000
    end = last + (last - start) * 0.04  # room to show the states the last events left
    tids = sorted(names)
    fig, ax = plt.subplots(figsize=(12, 1.5 + 0.3 * len(tids)))
    for row, tid in enumerate(tids):
        switches = [e for e in trace if e["ph"] == "i" and e["pid"] == PID_TASKS and e["tid"] == tid]
        state = recorder.initial_states.get(tid, -1)
        t = start
        for e in switches + [None]:
            until = end if e is None else e["ts"]
            if until > t:
                ax.barh(row, until - t, left=t, color=COLOURS.get(state, "white"), height=0.8)
            if e is not None:
                state, t = e["args"]["state"], e["ts"]
    top = len(tids)
    for e in trace:
        if e["ph"] != "i" or e["pid"] != PID_LIVEPATCH:
            continue
        if e["tid"] == TID_TRANSITION:
            ax.axvline(e["ts"], color="#333333", lw=0.6, ls="--")
            label = e["name"].removeprefix("klp_").removesuffix("_transition")
            ax.text(e["ts"], top, label, rotation=60, fontsize=6, va="bottom")
        elif e["tid"] == TID_TEXT_POKE and e["name"] == "text_poke_bp_batch":
            ax.plot([e["ts"]], [top - 0.3], marker="v", color="#c0392b", ms=5)
    ax.set_yticks(range(len(tids)), [names[t] for t in tids], fontsize=7)
    ax.set_ylim(-0.6, top + 2)
    ax.set_xlim(start, end)
    if end - start > 10_000:  # ticks in ms: µs figures that long are hard to read
        ax.xaxis.set_major_formatter(lambda us, _pos: f"{us / 1000:g}")
        ax.set_xlabel("emulated time (ms)")
    else:
        ax.set_xlabel("emulated time (µs)")
    handles = [Patch(color=c, label=LABELS[s]) for s, c in COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
