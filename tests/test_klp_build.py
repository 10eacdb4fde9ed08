"""klp-build: patches in tests/klp_build/ turned into livepatch modules, each loaded into a booted
machine (a snapshot restore), its transition completed, its new behaviour read in the shell, and
the old one back after disabling; and the refusals, with their messages.

The original tree's objects are built once and kept in the user's cache directory (keyed by the
sources, the flags and gcc), so each patch costs only the files it touches. Each patch is built
once per session.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.klp_build import klp_build
from klpemu.klp_build.refuse import Refusal

PATCHES = Path(__file__).parent / "klp_build"
LP = "/sys/kernel/livepatch"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc")

_built: dict[tuple, tuple[Path, str]] = {}


@pytest.fixture(scope="session")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("klp_build")


def build(outdir: Path, patch: str, **kw) -> tuple[Path, str]:
    """(the module, klp-build's report) for tests/klp_build/PATCH.patch, built once per session."""
    key = (patch, tuple(sorted(kw.items())))
    if key not in _built:
        out = io.StringIO()
        name = kw.pop("name", None) or patch.replace("-", "_")
        ko = outdir / f"{name}.ko"
        klp_build(PATCHES / f"{patch}.patch", name=name, output=ko, out=out, **kw)
        _built[key] = ko, out.getvalue()
    return _built[key]


def report_lines(report: str) -> list[str]:
    """The report without the timed step lines."""
    return [line for line in report.splitlines() if not line.startswith("[")]


def run(system, cmd: str) -> str:
    status, out, err = shell_run(system, cmd)
    assert status == 0, (cmd, err)
    return out


def load_and_check(ko: Path, name: str, path: str, before, after, setup: str = "") -> None:
    """insmod, the transition completes, `cat path` shows `after`; disabled, it shows `before`."""
    system = booted_system()
    if setup:
        run(system, setup)
    old = run(system, f"cat {path}")
    assert before(old), old
    run(system, f"insmod {ko}")
    run(system, f"wait {LP}/{name}/transition 0")
    assert run(system, f"cat {LP}/{name}/enabled") == "1\n"
    new = run(system, f"cat {path}")
    assert after(new), new
    run(system, f"echo 0 > {LP}/{name}/enabled; wait --gone {LP}/{name}")
    restored = run(system, f"cat {path}")
    assert before(restored), restored
    run(system, f"rmmod {name}")
    log = run(system, "dmesg")
    assert f"livepatch: '{name}': patching complete" in log
    assert f"livepatch: '{name}': unpatching complete" in log


def test_a_changed_function_body(outdir):
    ko, report = build(outdir, "version-new-function", show_first_changed=True)
    assert report_lines(report) == [
        "  changed function: vmlinux: version_proc_show (firmware/fs/proc/version.c)",
        "    first change at version_proc_show+0x14:",
        "      - jmp seq_puts",
        "      + call seq_puts",
        "  new function: vmlinux: version_note (firmware/fs/proc/version.c)",
    ]
    note = "fixed: version_note was added by the patch\n"
    load_and_check(
        ko,
        "version_new_function",
        "/proc/version",
        lambda t: t.startswith("klpemu kernel version") and note not in t,
        lambda t: t.startswith("klpemu kernel version") and t.endswith(note),
    )
