"""Chrome's trace-event JSON, which Perfetto's UI and chrome://tracing open as they are."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .recorder import Recorder


def write_json(recorder: Recorder, path: str) -> int:
    """Write the recording to path; returns how many events it holds."""
    trace = recorder.trace()
    with open(path, "w") as f:
        json.dump(trace, f, indent=None, separators=(",", ":"))
        f.write("\n")
    return len(trace["traceEvents"])
