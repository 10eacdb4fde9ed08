"""Lab 6 (callbacks and shadow variables): fixes that get the output right the wrong way, and
sessions that stop half-way, fail with a message that says which."""

from __future__ import annotations

import shutil
import time

import pytest
from lab_util import failures, shell, workspace

from klpemu.lab import get_lab
from klpemu.lab.first_patch import build
from klpemu.lab.grading import check_workspace
from klpemu.lab.shadow import KO, LP, MODULE, PROC, SOURCE, expected_read, owner, session_names, shadows
from klpemu.lab.workspace import chdir, run_commands
from klpemu.modbuild import NO_GCC

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="building a module needs gcc")


def _fixed(tmp_path, seed, *edits: tuple[str, str]):
    """A workspace with the reference fix, changed by edits, built."""
    ws = workspace(tmp_path, "shadow", seed)
    get_lab("shadow").prepare(ws)
    src = ws.path / SOURCE
    text = src.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    src.write_text(text)
    build(src)
    return ws


def _session(ws, reads: int | None = None) -> None:
    """The reference shell session, with only `reads` reads of PROC when given."""
    cmds = [c for c in get_lab("shadow").solution_commands(ws.scenario) if c != f"cat {PROC}"]
    n = ws.scenario.variant["budget"] + 1 if reads is None else reads
    cmds[2:2] = [f"cat {PROC}"] * n
    shell(ws, "; ".join(cmds))


def test_variants_differ_in_what_the_fix_must_do(tmp_path):
    variants = {tuple(sorted(get_lab("shadow").scenario(s).variant.items())) for s in range(20)}
    assert len(variants) == 20
    sc = get_lab("shadow").scenario(3)
    assert expected_read(sc, sc.variant["budget"] + 1).count("throttled") == sc.variant["sessions"]


def test_skeleton_built_as_handed_out(tmp_path):
    ws = workspace(tmp_path, "shadow", 2)
    build(ws.path / SOURCE)
    text = failures(ws)
    assert "your patch replaces TODO:TODO" in text and "klab_shadow_target:klab_session_show" in text
    assert "never loaded" in text


def test_no_post_unpatch_leaks_the_shadow_variables(tmp_path):
    ws = _fixed(tmp_path, 4, (".callbacks = { .post_unpatch = lab_post_unpatch },", ""))
    _session(ws)
    text = failures(ws)
    assert "are still there" in text and "leaked" in text and "post_unpatch" in text
    assert "went without spending its budget" in text  # nothing freed, so no destructor line either


def test_no_destructor(tmp_path):
    ws = _fixed(
        tmp_path, 5, ("klp_shadow_free_all(KLAB_SHADOW_ID, budget_dtor)", "klp_shadow_free_all(KLAB_SHADOW_ID, NULL)")
    )
    _session(ws)
    assert "no destructor line for session0" in failures(ws)


def test_wrong_shadow_id(tmp_path):
    sid = get_lab("shadow").scenario(6).variant["id"]
    ws = _fixed(tmp_path, 6, (f"#define KLAB_SHADOW_ID\t{sid:#x}", f"#define KLAB_SHADOW_ID\t{sid + 1:#x}"))
    _session(ws)
    text = failures(ws)
    assert f"no shadow variable has id {sid:#x}; yours have id {sid + 1:#x}" in text


def test_the_symptom_fixed_without_a_shadow_variable(tmp_path):
    """A static array indexed by the session's id prints the right lines, and is no shadow variable."""
    ws = _fixed(
        tmp_path,
        7,
        (
            "\tint *left = klp_shadow_get_or_alloc(s, KLAB_SHADOW_ID, sizeof(*left), GFP_KERNEL,\n"
            "\t\t\t\t\t   budget_ctor, &budget);\n",
            "\tstatic int spent[8];\n\tint b = budget - spent[s->id];\n\tint *left = &b;\n",
        ),
        ("\t\t(*left)--;\n", "\t\t(*left)--;\n\t\tspent[s->id]++;\n"),
    )
    _session(ws)
    text = failures(ws)
    assert "there is no shadow variable at all" in text


def test_wrong_output_and_budget_left_unspent(tmp_path):
    ws = _fixed(tmp_path, 8, ('"%s: throttled\\n"', '"%s: blocked\\n"'))
    _session(ws, reads=1)
    text = failures(ws)
    assert "shows" in text and "blocked" in text and "throttled" in text
    assert "went without spending its budget" in text


def test_solved_but_module_left_loaded_and_check_is_fast(tmp_path):
    ws = _fixed(tmp_path, 9)
    cmds = get_lab("shadow").solution_commands(ws.scenario)
    assert cmds[-1] == f"rmmod {MODULE}" and f"wait --gone {LP}" in cmds
    shell(ws, "; ".join(cmds[:-1]))
    t0 = time.process_time()
    assert "still loaded" in failures(ws)
    assert time.process_time() - t0 < 5
    shell(ws, cmds[-1])
    res = check_workspace(ws)
    assert res.passed, res.report()
    assert (ws.path / KO).is_file()


def test_the_host_reads_the_shadow_table_as_the_guest_does(tmp_path):
    """The checker walks klp_shadow_hash from the host; klp_shadow_get in the guest agrees."""
    ws = _fixed(tmp_path, 10)
    system = ws.scenario.boot()
    m = system.machine
    shell_cmds = get_lab("shadow").solution_commands(ws.scenario)[:3]  # insmod, wait, one read
    with chdir(ws.path):
        assert run_commands(system, "; ".join(shell_cmds))[0] == 0
    sid, budget = ws.scenario.variant["id"], ws.scenario.variant["budget"]
    found = [s for s in shadows(m) if s.id == sid]
    assert sorted(owner(m, s.obj) for s in found) == session_names(ws.scenario)
    for s in found:
        data = m.call("klp_shadow_get", s.obj, sid)
        assert data and m.mem.read_u32(data) == s.data == budget - 1
        assert m.call("klp_shadow_get", s.obj, sid + 1) == 0


def test_without_gcc_the_sheet_and_the_check_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    ws = workspace(tmp_path, "shadow", 11)
    assert "gcc is not installed" in (ws.path / "README.md").read_text()
    assert NO_GCC in failures(ws)
