"""The conflict record: each rule, in both orders of arrival, with its errno and its record;
the `legacy` policy flips the kretprobe outcome; refusals leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.ftrace.ops import FL
from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.system import System

EBUSY = 16
FUNC = "cmdline_proc_show"


@pytest.fixture
def system() -> System:
    return booted_system()


def patch(m, name="lp"):
    b = KlpBuilder(m.kernel.livepatch)
    return b.patch(name, [b.object(None, [b.func(FUNC, "version_proc_show")])])


def enable(m, name="lp"):
    m.kernel.livepatch.enable(patch(m, name))


def site_state(m):
    ft = m.kernel.ftrace
    i = ft.records.find(m.image.addr(FUNC))
    return m.mem.read(m.image.addr(FUNC), 5), ft.records.flags(i), [o.name for o in ft.ops], m.kernel.kprobes.table()


def kprobe(m, post: bool):
    return m.kernel.kprobes.add_kprobe(
        FUNC, pre_handler=lambda p, r: 0, post_handler=(lambda p, r, f: None) if post else None, owner="test"
    )


def only(m):
    (c,) = m.kernel.conflicts.records
    return c


def test_kprobe_with_post_handler_then_livepatch(system):
    m = system.machine
    kprobe(m, post=True)
    before = site_state(m)
    with pytest.raises(KlpemuError) as e:
        enable(m)
    assert e.value.errno == EBUSY
    assert site_state(m) == before
    c = only(m)
    assert (c.rule, c.errno, c.function) == ("livepatch-kprobe-post", -EBUSY, FUNC)
    assert c.present == f"kprobe at {FUNC}+0x0, post_handler [test]" and c.arriving == "livepatch 'lp'"


def test_livepatch_then_kprobe_with_post_handler(system):
    m = system.machine
    enable(m)
    before = site_state(m)
    with pytest.raises(KlpemuError) as e:
        kprobe(m, post=True)
    assert e.value.errno == EBUSY
    assert site_state(m) == before
    c = only(m)
    assert (c.rule, c.errno, c.present) == ("livepatch-kprobe-post", -EBUSY, "livepatch 'lp'")
    assert c.outcome.endswith("is refused; livepatch 'lp' stays in effect")


@pytest.mark.parametrize("first", ["kprobe", "livepatch"])
def test_kprobe_without_post_handler_shares_the_function(system, first):
    m = system.machine
    for step in [first] + [{"kprobe": "livepatch", "livepatch": "kprobe"}[first]]:
        kprobe(m, post=False) if step == "kprobe" else enable(m)
    c = only(m)
    assert (c.rule, c.errno) == ("livepatch-kprobe", 0)
    assert c.arriving == ("livepatch 'lp'" if first == "kprobe" else f"kprobe at {FUNC}+0x0 [test]")


@pytest.mark.parametrize(
    "policy,errno,rule", [("mainline", 0, "livepatch-kretprobe"), ("legacy", -EBUSY, "livepatch-kretprobe-legacy")]
)
@pytest.mark.parametrize("first", ["kretprobe", "livepatch"])
def test_kretprobe_and_livepatch(system, policy, errno, rule, first):
    m = system.machine
    m.kernel.kprobes.policy = policy
    steps = {
        "kretprobe": lambda: m.kernel.kprobes.kretprobes.add(FUNC, handler=lambda ri, r: 0, owner="test"),
        "livepatch": lambda: enable(m),
    }
    second = "livepatch" if first == "kretprobe" else "kretprobe"
    steps[first]()
    before = site_state(m)
    if errno:
        with pytest.raises(KlpemuError) as e:
            steps[second]()
        assert e.value.errno == -errno
        assert site_state(m) == before
    else:
        steps[second]()
    c = only(m)
    assert (c.rule, c.errno, c.policy) == (rule, errno, policy)
    assert (c.present.split()[0], c.arriving.split()[0]) == (first, second)


@pytest.mark.parametrize("first", ["tracer", "livepatch"])
def test_function_tracer_and_livepatch(system, first):
    m = system.machine
    tracing = "/sys/kernel/tracing"
    steps = {
        "tracer": f"echo {FUNC} > {tracing}/set_ftrace_filter; echo function > {tracing}/current_tracer",
        "livepatch": None,
    }
    for step in [first, "livepatch" if first == "tracer" else "tracer"]:
        if steps[step] is None:
            enable(m)
            m.run_until(lambda: m.kernel.livepatch.transition.patch is None, 5_000_000_000)
        else:
            assert shell_run(system, steps[step])[0] == 0
    status, out, _ = shell_run(system, f"cat /proc/cmdline; cat {tracing}/trace")
    assert status == 0
    assert out.startswith("klpemu kernel version") and f": {FUNC} <-" in out  # patched, and traced
    c = only(m)
    assert (c.rule, c.errno) == ("livepatch-function-tracer", 0)
    assert "the function tracer" in (c.present, c.arriving)


@pytest.mark.parametrize("first", ["a", "b"])
def test_a_second_ipmodify_ops(system, first):
    m = system.machine
    ft = m.kernel.ftrace
    ops = {n: ft.ops_python(n, lambda ip, pip, regs: None, FL["IPMODIFY"] | FL["SAVE_REGS"]) for n in "ab"}
    for o in ops.values():
        ft.set_filter(o, [FUNC])
    ft.register(ops[first])
    before = site_state(m)
    with pytest.raises(KlpemuError) as e:
        ft.register(ops["b" if first == "a" else "a"])
    assert e.value.errno == EBUSY and site_state(m) == before
    c = only(m)
    assert (c.rule, c.errno, c.present) == ("ipmodify", -EBUSY, f"ftrace ops '{first}'")


@pytest.mark.parametrize("first", ["kprobe", "livepatch"])
def test_kprobe_inside_a_redirected_body_is_warned_either_way(system, first):
    m = system.machine
    off = 5  # push %rbp, the first instruction after the site
    steps = {
        "kprobe": lambda: m.kernel.kprobes.add_kprobe(FUNC, off, pre_handler=lambda p, r: 0, owner="test"),
        "livepatch": lambda: enable(m),
    }
    steps[first]()
    steps["livepatch" if first == "kprobe" else "kprobe"]()
    c = only(m)
    assert (c.rule, c.errno, c.site) == ("kprobe-in-redirected-body", 0, m.image.addr(FUNC) + off)
    assert c.outcome == f"warning: kprobe at {FUNC}+0x5 [test] will not fire while livepatch 'lp' redirects {FUNC}"


def test_shell_conflicts_and_json(system):
    m = system.machine
    status, _, err = shell_run(system, f"kprobe --post {FUNC}; insmod livepatch-sample")
    assert status == 1 and err == "insmod: ERROR: could not insert module livepatch-sample: Device or resource busy\n"
    status, out, _ = shell_run(system, "conflicts")
    assert status == 0
    assert out.splitlines()[0].endswith(
        f"{FUNC} (0x{m.image.addr(FUNC):x}): livepatch 'livepatch_sample' meets "
        f"kprobe at {FUNC}+0x0, post_handler [shell]"
    )
    assert "rule livepatch-kprobe-post (mainline)" in out and "errno -16 (EBUSY)" in out
    (rec,) = json.loads(shell_run(system, "conflicts --json")[1])
    assert rec["rule"] == "livepatch-kprobe-post" and rec["errno"] == -EBUSY and rec["site"] == m.image.addr(FUNC)


def test_cli_shell_prints_the_records():
    # A process of its own: `klpemu shell -c` as a person runs it.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "klpemu",
            "shell",
            "-c",
            f"kprobe -r {FUNC}; insmod livepatch-sample; kprobe --policy; conflicts",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("mainline\n")
    assert "livepatch 'livepatch_sample' meets kretprobe at cmdline_proc_show+0x0 [shell]" in out
    assert "rule livepatch-kretprobe (mainline)" in out
    assert "errno 0: both stay: the kretprobe's handler runs when the new function returns" in out
