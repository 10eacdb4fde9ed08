"""`klpemu campaign`: the same seeds give the same rows in local processes and on a Dask cluster;
the table, the JSON and the plot."""

from __future__ import annotations

import json

import pytest

from klpemu.campaign.campaign import format_table, plot, run_campaign, summarize
from klpemu.cli import main
from klpemu.errors import KlpemuError

MODELS = ("immediate", "linux")
WORKLOADS = ("caller-callee",)
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def local_rows():
    return run_campaign(MODELS, WORKLOADS, SEEDS, jobs=1)


def test_rows_carry_what_the_issue_asks(local_rows):
    assert [(r["model"], r["workload"], r["seed"]) for r in local_rows] == [
        (m, w, s) for m in MODELS for w in WORKLOADS for s in SEEDS
    ]
    for r in local_rows:
        assert {"model", "workload", "seed", "violations", "completed", "emulated_seconds"} <= r.keys()
    assert all(r["violations"] > 0 for r in local_rows if r["model"] == "immediate")
    assert all(r["violations"] == 0 and r["completed"] for r in local_rows if r["model"] == "linux")


def test_a_dask_cluster_gives_the_same_rows(local_rows):
    distributed = pytest.importorskip("distributed")
    # on loopback, reached by its address as --scheduler would
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        rows = run_campaign(MODELS, WORKLOADS, SEEDS, scheduler=cluster.scheduler_address)
    assert rows == local_rows


def test_table_and_plot(local_rows, tmp_path):
    summary = summarize(local_rows)
    table = format_table(summary).splitlines()
    assert table[2].startswith("| immediate | caller-callee | 2 | 100% | ")
    assert table[2].endswith("| 1.0 | 0 | 0 | 2 (4 in all) |")
    assert table[3].startswith("| linux | caller-callee | 2 | 100% | ")
    assert table[3].endswith("| 0 | 0 | 0 (0 in all) |")
    plot(summary, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_writes_json(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert (
        main(
            [
                "campaign",
                "--models",
                "immediate",
                "--workloads",
                "caller-callee",
                "--seeds",
                "1",
                "--jobs",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["rows"][0]["model"] == "immediate" and doc["rows"][0]["violations"] == 2
    assert "first violation, immediate caller-callee seed 0:" in capsys.readouterr().out


def test_unknown_names_are_refused():
    with pytest.raises(KlpemuError, match="unknown model 'kgraft'"):
        run_campaign(["kgraft"], WORKLOADS, SEEDS, jobs=1)
    with pytest.raises(KlpemuError, match="unknown workload 'nope'"):
        run_campaign(["linux"], ["nope"], SEEDS, jobs=1)
