"""`klpemu bench control-plane`: the JSON's shape, and that an enable's text_poke syncs do not
grow with its functions within a batch. Counts and keys only; no wall time is asserted. Small
maxima keep it fast; the defaults (1000 functions, 10,000 threads) run the same code."""

from __future__ import annotations

import json

from klpemu.cli import main as cli_main


def test_control_plane_json_and_syncs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["bench", "control-plane", "--max-functions", "100", "--max-tasks", "200"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "control_plane.json"
    assert f"wrote {path}" in out
    result = json.loads(path.read_text())
    assert set(result) == {
        "enable",
        "stack_check",
        "enable_growth_exponent",
        "stack_check_tasks_exponent",
        "stack_check_functions_exponent",
        "threads",
    }
    assert [r["functions"] for r in result["enable"]] == [1, 10, 100]
    for r in result["enable"]:
        assert set(r) == {"functions", "seconds", "text_poke_syncs"}
    assert len({r["text_poke_syncs"] for r in result["enable"]}) == 1  # one batch up to 256 sites
    assert [(r["tasks"], r["functions"]) for r in result["stack_check"]] == [
        (100, 100),
        (200, 1),
        (200, 10),
        (200, 100),
    ]
    for r in result["stack_check"]:
        assert set(r) == {"tasks", "functions", "seconds"}
    assert result["threads"] == 200
    assert "growth exponent in tasks" in out and "growth exponent in functions" in out


def test_control_plane_refuses_sizes_it_cannot_make(capsys):
    for args in (["--max-functions", "1025"], ["--max-tasks", "99"], ["--max-functions", "x"]):
        try:
            cli_main(["bench", "control-plane", *args])
        except SystemExit as e:
            assert e.code == 2
        else:
            raise AssertionError(f"{args} accepted")
    err = capsys.readouterr().err
    assert "--max-functions is 1 to 1024, not '1025'" in err and "--max-tasks is 100 to 100000" in err
