"""Timelines: a recorded livepatch transition as Chrome trace-event JSON and a PNG, and the
recorder costing nothing while it is off."""

from __future__ import annotations

import json

import pytest
from machine_util import booted_system, shell_run

from klpemu.machine.machine import DEFAULT_CMDLINE
from klpemu.timeline.recorder import PID_CPUS, PID_LIVEPATCH, PID_TASKS, TID_TRANSITION
from klpemu.trace_call import trace_call

SAMPLE = "/sys/kernel/livepatch/livepatch_sample"
REQUIRED = {"name", "ph", "ts", "pid", "tid"}


def record(system, tmp_path, commands: str, png: bool = False) -> list[dict]:
    out = tmp_path / "t.json"
    stop = f"timeline stop {out}" + (f" --png {tmp_path / 't.png'}" if png else "")
    status, _, err = shell_run(system, f"timeline start; {commands}; {stop}")
    assert (status, err) == (0, "")
    return json.loads(out.read_text())["traceEvents"]


def names(events, pid: int) -> dict[int, str]:
    return {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name" and e["pid"] == pid}


def phases(events) -> list[dict]:
    return [e for e in events if e["ph"] == "i" and e["pid"] == PID_LIVEPATCH and e["tid"] == TID_TRANSITION]


def switches(events, tid: int, state: int) -> list[dict]:
    return [
        e
        for e in events
        if e["ph"] == "i" and e["pid"] == PID_TASKS and e["tid"] == tid and e["args"]["state"] == state
    ]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    system = booted_system()
    path = tmp_path_factory.mktemp("timeline")
    events = record(system, path, f"insmod livepatch-sample; wait {SAMPLE}/transition 0", png=True)
    return system, events, path


def test_the_json_is_chrome_trace_events_with_a_track_per_cpu_and_per_task(sample):
    system, events, path = sample
    assert events and all(REQUIRED <= e.keys() for e in events)
    assert all(e["ph"] in "MiX" for e in events)
    assert all("dur" in e for e in events if e["ph"] == "X")
    cpus = names(events, PID_CPUS)
    assert sorted(cpus.values()) == [f"cpu{c.index}" for c in system.machine.cpus]
    assert {e["tid"] for e in events if e["ph"] == "X" and e["pid"] == PID_CPUS} <= cpus.keys()
    tasks = names(events, PID_TASKS)
    assert {"swapper/0", "swapper/1", "krecurse-5", "init-1"} <= set(tasks.values())
    last: dict[tuple[int, int], float] = {}
    for e in events:
        if e["ph"] == "M":
            continue
        track = (e["pid"], e["tid"])
        assert e["ts"] >= last.get(track, 0), e
        last[track] = e["ts"]
    assert (path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_task_switches_to_patched_once_with_its_reason(sample):
    _, events, _ = sample
    for tid, name in names(events, PID_TASKS).items():
        patched = switches(events, tid, 1)
        assert len(patched) == 1, name
        assert patched[0]["args"]["reason"] in ("stack check", "kernel exit", "idle loop", "force"), name


def test_the_phases_come_in_linux_order(sample):
    _, events, _ = sample
    seen = [e["name"] for e in phases(events)]
    assert seen[:2] == ["klp_init_transition", "klp_start_transition"]
    assert seen[-1] == "klp_complete_transition"
    assert set(seen[2:-1]) == {"klp_try_complete_transition"}
    attempts = [e["args"] for e in phases(events)[2:-1]]
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert [a["complete"] for a in attempts] == [False] * (len(attempts) - 1) + [True]
    assert all(a["blocking"] for a in attempts[:-1])
    pokes = [e["name"] for e in events if e["pid"] == PID_LIVEPATCH and e["name"].startswith("text_poke")]
    assert pokes[:4] == ["text_poke_bp_batch", "text_poke int3", "text_poke tail", "text_poke first byte"]
    ftrace = [e for e in events if e["pid"] == PID_LIVEPATCH and "ftrace_function" in e["name"]]
    assert ftrace and ftrace[0]["name"] == "register_ftrace_function"


def test_a_task_in_the_way_blocks_retries_until_the_transition_is_reversed(tmp_path):
    system = booted_system(cmdline=f"{DEFAULT_CMDLINE} krecurse.depth=120")
    events = record(
        system,
        tmp_path,
        f"insmod livepatch-sample; sleep 16s; echo 0 > {SAMPLE}/enabled; wait --gone {SAMPLE}",
    )
    krecurse = next(tid for tid, name in names(events, PID_TASKS).items() if name.startswith("krecurse-"))
    assert switches(events, krecurse, 1) == []
    seen = phases(events)
    attempts = [e for e in seen if e["name"] == "klp_try_complete_transition"]
    assert len(attempts) >= 3
    assert all("krecurse" in a["args"]["blocking"] for a in attempts[:3])
    assert attempts[0]["args"]["blocking"]["krecurse"] == "has an unreliable stack (more than 100 frames)"
    order = [e["name"] for e in seen]
    reverse = order.index("klp_reverse_transition")
    # klp_send_signals comes from the 16th attempt (the 15th retry), once it has failed
    signals = order.index("klp_send_signals")
    assert order[:signals].count("klp_try_complete_transition") == 16 and signals < reverse
    assert order[reverse + 1] == "klp_start_transition"
    assert seen[reverse]["args"]["target"] == "unpatching"
    assert order[-1] == "klp_complete_transition" and seen[-1]["args"]["target"] == "unpatching"


def test_recording_off_costs_no_instruction(tmp_path):
    never = booted_system()
    assert never.machine.timeline is None and "_execute" not in never.machine.__dict__
    assert shell_run(never, f"insmod livepatch-sample; wait {SAMPLE}/transition 0")[0] == 0
    before = len(trace_call(never.machine, "cmdline_proc_show", seq_file=True).steps)
    recorded = booted_system()
    record(recorded, tmp_path, f"insmod livepatch-sample; wait {SAMPLE}/transition 0")
    assert recorded.machine.timeline is None and "_execute" not in recorded.machine.__dict__
    assert len(trace_call(recorded.machine, "cmdline_proc_show", seq_file=True).steps) == before


def test_timeline_refuses_what_it_cannot_do(tmp_path):
    system = booted_system()
    status, _, err = shell_run(system, f"timeline stop {tmp_path / 'x.json'}")
    assert (status, err) == (1, "timeline: no timeline is being recorded\n")
    for line in ("timeline", "timeline go", "timeline stop", "timeline stop a.json b.json", "timeline stop --png"):
        status, _, err = shell_run(system, line)
        assert status == 1 and "usage: timeline start" in err, line
    status, _, err = shell_run(system, "timeline start; timeline start")
    assert (status, err) == (1, "timeline: a timeline is already being recorded\n")
    assert shell_run(system, f"timeline stop {tmp_path / 'x.json'}")[0] == 0
    assert system.machine.timeline is None


def test_the_command_line_records_a_shell_run_and_the_demo(tmp_path, capsys):
    from klpemu.cli import main

    shell_json, png = tmp_path / "shell.json", tmp_path / "shell.png"
    commands = f"insmod livepatch-sample; wait {SAMPLE}/transition 0"
    assert main(["shell", "--timeline", str(shell_json), "--timeline-png", str(png), "-c", commands]) == 0
    events = json.loads(shell_json.read_text())["traceEvents"]
    assert [e["name"] for e in phases(events)][-1] == "klp_complete_transition"
    assert png.stat().st_size > 0
    demo_json = tmp_path / "demo.json"
    assert main(["demo", "--timeline", str(demo_json)]) == 0
    assert f"events written to {demo_json}" in capsys.readouterr().out
    seen = [e["name"] for e in phases(json.loads(demo_json.read_text())["traceEvents"])]
    assert "klp_reverse_transition" in seen and seen[-1] == "klp_complete_transition"


def calls(events, tid: int) -> list[tuple[str, str]]:
    return [(e["ph"], e["name"]) for e in events if e["ph"] in "BE" and e["pid"] == PID_TASKS and e["tid"] == tid]


def test_calls_of_chosen_functions_nest_on_the_calling_tasks_track(tmp_path):
    system = booted_system()
    events = record(
        system,
        tmp_path,
        f"cat /proc/cmdline; insmod livepatch-sample; wait {SAMPLE}/transition 0; cat /proc/cmdline",
    ).copy()
    assert not [e for e in events if e["ph"] in "BE"]  # none unless asked for
    system = booted_system()
    out = tmp_path / "calls.json"
    status, _, err = shell_run(
        system,
        "timeline start --functions '*_proc_show'; cat /proc/cmdline; "
        f"insmod livepatch-sample; wait {SAMPLE}/transition 0; cat /proc/cmdline; timeline stop {out}",
    )
    assert (status, err) == (0, "")
    events = json.loads(out.read_text())["traceEvents"]
    sh = next(tid for tid, name in names(events, PID_TASKS).items() if name == "sh-7")
    # the second call is redirected to livepatch_cmdline_proc_show: it ends when that returns
    assert calls(events, sh) == [("B", "cmdline_proc_show"), ("E", "cmdline_proc_show")] * 2
    tasks = names(events, PID_TASKS)
    others = {(tasks[e["tid"]], e["name"]) for e in events if e["ph"] in "BE" and e["tid"] != sh}
    assert others == {("sysmon-6", "meminfo_proc_show")}  # its once-a-second look at /proc/meminfo
    last: dict[tuple[int, int], float] = {}
    for e in events[1:]:
        if e["ph"] != "M":
            assert e["ts"] >= last.get((e["pid"], e["tid"]), 0)
            last[(e["pid"], e["tid"])] = e["ts"]


def guest_state(system) -> tuple:
    """What the guest did: its log, each CPU's registers and context switches, emulated time."""
    m = system.machine
    regs = [(c.reg("rip"), c.reg("rsp"), c.reg("rax")) for c in m.cpus]
    switches = [m.pcpu(c.index).nr_switches for c in m.cpus]
    return shell_run(system, "dmesg")[1], regs, switches, m.now, m.insns


def test_recording_calls_changes_no_guest_instruction_and_leaves_no_hook(tmp_path):
    from klpemu import timeline

    plain, recorded = booted_system(), booted_system()
    script = f"insmod livepatch-sample; wait {SAMPLE}/transition 0; sleep 30ms; cat /proc/cmdline"
    shell_run(plain, script)
    recorder = timeline.start(recorded.machine, "schedule*")
    shell_run(recorded, script)
    timeline.stop(recorded.machine)
    switched = [e for e in recorder.events if e["ph"] == "B" and e["name"] == "schedule"]
    assert len(switched) > 10
    assert guest_state(recorded) == guest_state(plain)
    before = len(trace_call(plain.machine, "cmdline_proc_show", seq_file=True).steps)
    assert len(trace_call(recorded.machine, "cmdline_proc_show", seq_file=True).steps) == before
    assert recorder.calls is not None and not recorder.calls.stacks


def test_timeline_refuses_functions_it_cannot_find(tmp_path):
    system = booted_system()
    status, _, err = shell_run(system, "timeline start --functions 'no_such_*'")
    assert (status, err) == (1, "timeline: no kernel function matches 'no_such_*'\n")
    status, _, err = shell_run(system, "timeline start --functions")
    assert status == 1 and "--functions needs a GLOB" in err
    assert system.machine.timeline is None


def test_kpatch_records_its_command(tmp_path, capsys):
    from klpemu.cli import main

    out = tmp_path / "kpatch.json"
    assert main(["kpatch", "--timeline", str(out), "load", "livepatch-sample"]) == 0
    assert f"events written to {out}" in capsys.readouterr().out
    events = json.loads(out.read_text())["traceEvents"]
    seen = [e["name"] for e in phases(events)]
    assert seen[:2] == ["klp_init_transition", "klp_start_transition"] and seen[-1] == "klp_complete_transition"
    assert main(["kpatch", "--timeline-functions", "x", "list"]) == 2
    assert "go with --timeline" in capsys.readouterr().err
    assert main(["kpatch", "--timeline", str(out), "--timeline-functions", "no_such_*", "list"]) == 2
    assert "no kernel function matches 'no_such_*'" in capsys.readouterr().err
