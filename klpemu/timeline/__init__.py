"""Timelines: what a livepatch transition and its tasks did, in emulated time.

Off by default: the machine holds no recorder and no hook, so nothing runs on the traced-call
path. `start` attaches a Recorder; `stop` detaches it and writes Chrome's trace-event JSON (and,
if asked, a PNG summary)."""

from __future__ import annotations

from .recorder import Recorder, start, stop

__all__ = ["Recorder", "start", "stop"]
