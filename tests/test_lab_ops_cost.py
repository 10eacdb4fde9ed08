"""Lab 3 (what ops cost): the checker's counts are the benchmark's, and wrong numbers fail."""

from __future__ import annotations

from lab_util import failures, set_answer, solved

from klpemu.bench import HandlerBench
from klpemu.lab.ops_cost import true_counts


def test_counts_grow_with_irrelevant_ops(tmp_path):
    ws = solved(tmp_path, "ops-cost", 0)
    t = true_counts(ws.scenario)
    assert int(t["one_ops"]) < int(t["save_regs"]) < int(t["list"])
    assert int(t["per_irrelevant"]) > 0
    m = ws.scenario.boot().machine
    hb = HandlerBench(m, ws.scenario.variant["relevant"], ws.scenario.variant["irrelevant"] + 2)
    with hb.list_func() as applied:
        assert hb.count(applied).insns == int(t["list"]) + 2 * int(t["per_irrelevant"])


def test_the_table_of_the_readme_is_not_your_variant(tmp_path):
    ws = solved(tmp_path, "ops-cost", 3)
    t = true_counts(ws.scenario)
    set_answer(ws, list=str(int(t["list"]) - int(t["per_irrelevant"])), per_irrelevant="0")
    text = failures(ws)
    assert f"list: {int(t['list']) - int(t['per_irrelevant'])} is not what" in text
    assert "fewer than measured" in text
    assert "per_irrelevant: 0" in text


def test_path_instructions_instead_of_whole_call_and_no_list_function(tmp_path):
    ws = solved(tmp_path, "ops-cost", 5)
    t = true_counts(ws.scenario)
    set_answer(ws, one_ops=str(int(t["one_ops"]) - 10), list_function="ftrace_caller", predict_list="100")
    text = failures(ws)
    assert "one_ops:" in text and "calling loop's included" in text
    assert "ftrace_caller is not the list function" in text
