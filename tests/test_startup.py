"""Start-up: the command line imports what a command needs when that command is named, so
`klpemu shell` does not wait for the benchmarks, the labs, the fuzzer or klp-build.

Nor for the heavy packages (capstone, pyelftools, and those of the benchmarks, the debugger and
the campaigns): the modules that use them import them where they are used, and a shell whose
types come from the cache boots without any of them. Counted, not timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import klpemu.machine.image as image_module
from klpemu.machine.image import KernelImage
from klpemu.machine.machine import shipped_image

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


HEAVY = ("capstone", "elftools", "keystone", "matplotlib", "drgn", "distributed", "hypothesis")
MARK = "heavy packages: "


def heavy_after(code: str, cache: Path) -> list[str]:
    """The heavy packages imported once code ran, with cache as the user's cache directory."""
    probe = (
        f"import json, sys\n{code}\n"
        f"print({MARK!r} + json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith(MARK)).removeprefix(MARK))


def test_the_command_line_imports_no_heavy_package(tmp_path):
    assert heavy_after("import klpemu.cli", tmp_path) == []


def test_a_shell_boots_without_them(tmp_path):
    shell = "from klpemu.cli import main\nstatus = main(['shell', '-c', ''])"
    # The first boot parses the image's DWARF types with pyelftools and keeps them in the cache;
    # a boot that finds them there needs neither pyelftools nor anything else heavy.
    assert set(heavy_after(shell, tmp_path)) <= {"elftools"}
    assert heavy_after(shell, tmp_path) == []


def test_the_image_read_without_pyelftools_is_the_image_read_with_it(monkeypatch):
    class NotPlain:
        def __init__(self, raw: bytes):
            raise ValueError("pyelftools reads this one")

    fast = KernelImage(shipped_image())
    monkeypatch.setattr(image_module, "RawElf", NotPlain)
    slow = KernelImage(shipped_image())
    assert fast._fast is not None and slow._fast is None
    assert fast.segments == slow.segments
    assert fast.symbols == slow.symbols
    assert fast.exports == slow.exports
    assert fast.mcount_loc == slow.mcount_loc
    assert fast.kallsyms == slow.kallsyms
