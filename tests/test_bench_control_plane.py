"""`klpemu bench control-plane`: the JSON's shape, and that an enable's text_poke syncs do not
grow with its functions. Counts and keys only; no wall time is asserted."""

from __future__ import annotations

import json

from klpemu.cli import main as cli_main


def test_control_plane_json_and_syncs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["bench", "control-plane"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "control_plane.json"
    assert f"wrote {path}" in out
    result = json.loads(path.read_text())
    assert set(result) == {
        "enable",
        "stack_check",
        "enable_growth_exponent",
        "stack_check_growth_exponent",
        "max_functions",
        "note",
    }
    sizes = [r["functions"] for r in result["enable"]]
    assert sizes[:3] == [1, 10, 100] and sizes[-1] == result["max_functions"] > 100
    for r in result["enable"]:
        assert set(r) == {"functions", "seconds", "text_poke_syncs"}
    assert len({r["text_poke_syncs"] for r in result["enable"]}) == 1  # one batch whatever N
    assert [r["functions"] for r in result["stack_check"]] == sizes
    for r in result["stack_check"]:
        assert set(r) == {"tasks", "functions", "seconds"} and r["tasks"] > 0
    assert "growth exponent" in out and "1000" in out
