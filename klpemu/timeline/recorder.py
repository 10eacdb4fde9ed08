"""The recorder: events in emulated time, kept as Chrome trace events.

The control plane calls it where it changes state (a task's patch_state, a transition phase, a
text_poke batch, an ftrace ops), guarded by `machine.timeline is not None`. What the guest does
by itself (a task switching on its way to user mode or in the idle loop, which task a CPU runs)
is sampled between slices, by wrapping the machine's slice runner only while recording. Calls
of chosen functions come from code hooks (calls.py), there only while recording them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..abi import KLP_TRANSITION_IDLE
from ..errors import KlpemuError
from ..kernel.tasks import Task, all_tasks
from .calls import CallRecorder, functions_matching

if TYPE_CHECKING:
    from ..machine.cpu import CPU
    from ..machine.machine import Machine

# Chrome groups tracks by pid: one process per kind of track, threads within it.
PID_CPUS, PID_TASKS, PID_LIVEPATCH = 1, 2, 3
TID_TRANSITION, TID_TEXT_POKE, TID_FTRACE = 1, 2, 3
STATE_NAMES = {-1: "idle", 0: "unpatched", 1: "patched"}


def _us(ns: int) -> float:
    return ns / 1000


class Recorder:
    def __init__(self, machine: Machine, functions: dict[int, str] | None = None):
        self.m = machine
        self.calls = CallRecorder(self, functions) if functions else None
        self.events: list[dict[str, Any]] = []
        self.task_tids: dict[int, int] = {}  # task_struct address -> tid
        self.states: dict[int, int] = {}  # task_struct address -> patch_state last seen
        self.cpu_runs: dict[int, tuple[int, int]] = {}  # cpu -> (task addr, since ns)
        self.attempts = 0
        self.started_ns = machine.now
        self._meta(PID_CPUS, None, "process_name", "CPUs")
        self._meta(PID_TASKS, None, "process_name", "tasks")
        self._meta(PID_LIVEPATCH, None, "process_name", "livepatch")
        for tid, name in ((TID_TRANSITION, "transition"), (TID_TEXT_POKE, "text_poke"), (TID_FTRACE, "ftrace")):
            self._meta(PID_LIVEPATCH, tid, "thread_name", name)
        for cpu in machine.cpus:
            self._meta(PID_CPUS, cpu.index, "thread_name", f"cpu{cpu.index}")
        self.initial_states: dict[int, int] = {}  # tid -> patch_state when recording began
        for t in all_tasks(machine):
            self.initial_states[self._track(t)] = self.states[t.addr] = t.patch_state

    # --- tracks --------------------------------------------------------------------------------

    def _meta(self, pid: int, tid: int | None, name: str, value: str) -> None:
        self.events.append({"name": name, "ph": "M", "ts": 0, "pid": pid, "tid": tid or 0, "args": {"name": value}})

    def _track(self, task: Task) -> int:
        tid = self.task_tids.get(task.addr)
        if tid is None:
            tid = self.task_tids[task.addr] = len(self.task_tids) + 1
            name = f"swapper/{task.cpu}" if task.is_idle else f"{task.comm}-{task.pid}"
            self._meta(PID_TASKS, tid, "thread_name", name)
        return tid

    def _instant(self, pid: int, tid: int, name: str, args: dict[str, Any]) -> None:
        ev = {"name": name, "ph": "i", "s": "t", "ts": _us(self.m.now), "pid": pid, "tid": tid, "args": args}
        self.events.append(ev)

    # --- what the control plane reports --------------------------------------------------------

    def task_state(self, task: Task, state: int, reason: str) -> None:
        """A task's patch_state became state; reason says who switched it."""
        self.states[task.addr] = state
        name = f"-> {STATE_NAMES.get(state, state)}"
        self._instant(PID_TASKS, self._track(task), name, {"state": state, "reason": reason})

    def phase(self, name: str, **args: Any) -> None:
        """A transition phase, named after its function in kernel/livepatch/transition.c."""
        if name == "klp_init_transition":
            self.attempts = 0
        if name == "klp_try_complete_transition":
            self.attempts += 1
            args["attempt"] = self.attempts
        self._instant(PID_LIVEPATCH, TID_TRANSITION, name, args)

    def text_poke(self, step: str, sites: list[tuple[int, bytes]]) -> None:
        """One step of the int3 protocol (or a single poke), and the sync after it."""
        args = {"sites": [f"0x{a:x}" for a, _ in sites], "sync": True}
        self._instant(PID_LIVEPATCH, TID_TEXT_POKE, f"text_poke {step}", args)

    def text_poke_batch(self, sites: list[tuple[int, bytes]]) -> None:
        self._instant(PID_LIVEPATCH, TID_TEXT_POKE, "text_poke_bp_batch", {"nr_entries": len(sites)})

    def ftrace_ops(self, action: str, name: str) -> None:
        self._instant(PID_LIVEPATCH, TID_FTRACE, action, {"ops": name})

    # --- calls of the chosen functions (calls.py) -----------------------------------------------

    def call_begin(self, task: int, function: str) -> None:
        """A call of function by task came in: a slice opens on the task's track."""
        tid = self._track(Task(self.m, task))
        self.events.append({"name": function, "ph": "B", "ts": _us(self.m.now), "pid": PID_TASKS, "tid": tid})

    def call_end(self, task: int, function: str) -> None:
        tid = self._track(Task(self.m, task))
        self.events.append({"name": function, "ph": "E", "ts": _us(self.m.now), "pid": PID_TASKS, "tid": tid})

    # --- what the guest does by itself, sampled between slices ---------------------------------

    def before_slice(self, cpu: CPU) -> None:
        """Which task runs this slice: a CPU's track holds one complete event per run of a task."""
        current = self.m.pcpu(cpu.index).current_task
        run = self.cpu_runs.get(cpu.index)
        if run is not None and run[0] == current:
            return
        self._close_run(cpu.index)
        self.cpu_runs[cpu.index] = (current, self.m.now)

    def _close_run(self, cpu: int) -> None:
        run = self.cpu_runs.pop(cpu, None)
        if run is None:
            return
        addr, since = run
        task = Task(self.m, addr)
        ev = {
            "name": f"swapper/{cpu}" if task.is_idle else f"{task.comm}-{task.pid}",
            "ph": "X",
            "ts": _us(since),
            "dur": _us(self.m.now - since),
            "pid": PID_CPUS,
            "tid": cpu,
            "args": {"tid": self._track(task)},
        }
        self.events.append(ev)

    def after_slice(self) -> None:
        """Tasks switch themselves in the guest (klp_update_patch_state): on the way out to user
        mode, or at the end of an idle-loop pass. Only a transition under way can switch one."""
        if self.m.read_var_int("klp_target_state") == KLP_TRANSITION_IDLE:
            return
        for t in all_tasks(self.m):
            state = t.patch_state
            if self.states.get(t.addr) != state:
                self.task_state(t, state, "idle loop" if t.is_idle else "kernel exit")

    # --- attaching -----------------------------------------------------------------------------

    def attach(self) -> None:
        m = self.m
        runner = type(m)._execute

        def execute(cpu: CPU, budget: int, *, exact: bool = False) -> list[str]:
            self.before_slice(cpu)
            events = runner(m, cpu, budget, exact=exact)
            self.after_slice()
            return events

        m._execute = execute  # type: ignore[method-assign]
        m.timeline = self
        if self.calls is not None:
            self.calls.attach()
        for cpu in m.cpus:  # a CPU halted throughout still gets its track
            if cpu.online:
                self.before_slice(cpu)

    def detach(self) -> None:
        m = self.m
        m.__dict__.pop("_execute", None)
        m.timeline = None
        if self.calls is not None:
            self.calls.detach()
            self._close_calls()
        for cpu in list(self.cpu_runs):
            self._close_run(cpu)

    def _close_calls(self) -> None:
        """Calls still under way when recording stops end there, so every slice is closed."""
        assert self.calls is not None
        for task, stack in self.calls.stacks.items():
            for name, _, _ in reversed(stack):
                self.call_end(task, name)
        self.calls.stacks.clear()

    def trace(self) -> dict[str, Any]:
        """The recording as Chrome's trace-event JSON object."""
        meta = [e for e in self.events if e["ph"] == "M"]
        timed = sorted((e for e in self.events if e["ph"] != "M"), key=lambda e: e["ts"])  # stable
        return {"traceEvents": meta + timed, "displayTimeUnit": "ns", "otherData": {"clock": "emulated"}}


def start(machine: Machine, functions: str | None = None) -> Recorder:
    """Record from now on; with functions (a glob), also each call of the functions matching it."""
    if machine.timeline is not None:
        raise KlpemuError("a timeline is already being recorded")
    recorder = Recorder(machine, functions_matching(machine, functions) if functions is not None else None)
    recorder.attach()
    return recorder


def stop(machine: Machine) -> Recorder:
    recorder = machine.timeline
    if recorder is None:
        raise KlpemuError("no timeline is being recorded")
    recorder.detach()
    return recorder
