"""`klpemu bench` as a reader meets it: the progress label, the letters in --help, where the files
go and what the JSON holds. Counts and names only; no wall time is asserted."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from klpemu import bench
from klpemu.bench import CONFIGS, REAL_HARDWARE_NS, WHAT_NS_MEASURE
from klpemu.cli import main as cli_main


class Recorder:
    """Stands in for the tqdm bar: keeps every description set."""

    def __init__(self):
        self.descriptions: list[str] = []

    def set_description(self, text: str) -> None:
        self.descriptions.append(text)

    def update(self, _n: int) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def run_in_tmp(tmp_path_factory):
    """One small `klpemu bench` run in an empty directory: its stdout, the directory and the
    progress labels."""
    cwd = tmp_path_factory.mktemp("bench")
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(bench, "_progress", lambda _total, _enabled: recorder)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = cli_main(["bench", "--calls", "1000", "--repeat", "2", "--relevant", "3", "--irrelevant", "4"])
    assert status == 0
    return out.getvalue(), cwd, recorder.descriptions


def test_the_progress_label_has_the_numbers(run_in_tmp):
    _, _, labels = run_in_tmp
    assert "(f) list function, 3 relevant + 4 irrelevant" in labels
    assert not any("{" in label for label in labels)


def test_help_defines_every_letter(capsys):
    with pytest.raises(SystemExit):
        cli_main(["bench", "--help"])
    text = capsys.readouterr().out
    for config in CONFIGS:
        assert f"  ({config.key}) {config.label()}\n" in text
    assert "list function, 2 relevant + 5 irrelevant" in text


def test_results_go_to_the_current_directory_and_are_named(run_in_tmp):
    out, cwd, _ = run_in_tmp
    json_path, png_path = cwd / "handler_overhead.json", cwd / "handler_overhead.png"
    assert sorted(p.name for p in cwd.iterdir()) == ["handler_overhead.json", "handler_overhead.png"]
    assert f"wrote {json_path} and {png_path}" in out
    assert not (cwd / "benchmarks").exists()


def test_the_json_holds_the_spread_and_the_real_hardware(run_in_tmp):
    out, cwd, _ = run_in_tmp
    result = json.loads((cwd / "handler_overhead.json").read_text())
    assert result["repeat"] == 2 and result["note"] == WHAT_NS_MEASURE
    rows = {r["key"]: r for r in result["rows"]}
    assert list(rows) == [c.key for c in CONFIGS]
    for r in rows.values():
        assert set(r["ns_per_call_spread"]) == {"min", "median", "max"}
        assert len(r["seconds_per_run"]) == 2
        assert r["seconds"] == min(r["seconds_per_run"])
        if r["bare"] is not None:
            assert set(r["bare"]["ns_per_call_spread"]) == {"min", "median", "max"}
    # (f) has 3 relevant ops here, not ftrace-ops.c's 2: no figure beside it
    assert {k: r["real_hardware_ns"] for k, r in rows.items() if r["real_hardware_ns"]} == {
        "c": REAL_HARDWARE_NS["c"],
        "e": REAL_HARDWARE_NS["e"],
    }
    assert WHAT_NS_MEASURE in out
    assert "ns/call min/med/max" in out and "x86 KVM ns" in out


def test_guest_speed_reports_both_ratios(run_in_tmp):
    out, cwd, _ = run_in_tmp
    speed = json.loads((cwd / "handler_overhead.json").read_text())["guest_speed"]
    assert [r["config"] for r in speed["rows"]] == [
        "machine, counted slices (2 CPUs)",
        "machine, uncounted slices (2 CPUs)",
        "bare unicorn, the machine's count=",
        "bare unicorn, count=0 (its default)",
    ]
    assert speed["insns_per_iter"] == 11
    assert all(r["instructions"] == 1000 * 11 for r in speed["rows"])
    assert set(speed["ratios"]) == {
        "counted_vs_bare_same_count",
        "counted_vs_bare_default",
        "uncounted_vs_bare_default",
    }
    assert "ratio machine (counted) / bare with the same count:" in out
    assert "ratio machine (uncounted) / bare uncounted (Unicorn's default):" in out
