"""Start-up: the command line imports what a command needs when that command is named, so
`klpemu shell` does not wait for the benchmarks, the labs, the fuzzer or klp-build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONLY_WHEN_NAMED = (
    "klpemu.bench",
    "klpemu.bench_control_plane",
    "klpemu.lab",
    "klpemu.fuzz",
    "klpemu.campaign",
    "klpemu.klp_build",
)


def imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in sys.modules if m.startswith({ONLY_WHEN_NAMED!r})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return eval(out.stdout.splitlines()[-1])  # the list of module names the probe prints last


def test_the_command_line_imports_no_other_command():
    assert imported_after("import klpemu.cli") == []
    assert imported_after("from klpemu.cli import main\nmain(['shell', '-c', ''])") == []


def test_a_named_command_gets_its_options():
    help_run = "from klpemu.cli import main\ntry:\n    main(['bench', '--help'])\nexcept SystemExit:\n    pass"
    loaded = imported_after(help_run)
    assert "klpemu.bench" in loaded and "klpemu.lab" not in loaded
