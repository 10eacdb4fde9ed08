"""Helpers shared by the machine tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from klpemu.kernel.tasks import all_tasks
from klpemu.machine.machine import DEFAULT_CMDLINE, Machine, MachineConfig
from klpemu.snapshot import Snapshot
from klpemu.system import System

MS = 1_000_000  # emulated nanoseconds

# Tasks that spend their life asleep; `settle` waits until all of them are.
SLEEPERS = ("khungtaskd", "krecurse", "kworker/0:1", "init", "sysmon", "sh")


def task_by_comm(m: Machine, comm: str):
    matches = [t for t in all_tasks(m) if t.comm == comm and not t.is_idle]
    assert len(matches) == 1, f"expected one task {comm!r}, found {matches}"
    return matches[0]


def is_asleep(task) -> bool:
    return task.running_on is None and task.state != 0


def settle(m: Machine, comms=SLEEPERS, timeout_ns: int = 300 * MS, *, cpus_halted: bool = False) -> None:
    """Run until every task in comms is off its CPU and sleeping (and, if asked, every CPU halted)."""
    tasks = [task_by_comm(m, c) for c in comms]

    def done() -> bool:
        if cpus_halted and not all(c.halted for c in m.cpus if c.online):
            return False
        return all(is_asleep(t) for t in tasks)

    assert m.run_until(done, timeout_ns), (
        f"tasks did not all fall asleep: {[(t.comm, t.state_letter(), t.running_on) for t in tasks]}, "
        f"halted CPUs: {[c.index for c in m.cpus if c.halted]}"
    )


# Booted machines by their configuration, frozen once per session: a test gets a restore, which
# runs exactly as a machine booted for it would, without running the boot again.
_snapshots: dict[str, Snapshot] = {}


def _snapshot(key: str, build) -> Snapshot:
    if key not in _snapshots:
        _snapshots[key] = Snapshot.take(build())
    return _snapshots[key]


def make_machine(extra: str = "", *, boot: bool = True, settle_tasks: bool = False, **config) -> Machine:
    """A new Machine; extra is appended to the command line; booted, and settled if asked.
    A booted one is a restore of the first one made so (boot=False builds a new one)."""
    if extra:
        config["cmdline"] = f"{config.get('cmdline', DEFAULT_CMDLINE)} {extra}"
    if not boot:
        return System(**config).machine

    def build() -> Machine:
        m = System(**config).machine
        m.boot()
        assert m.booted and m.oops is None
        if settle_tasks:
            settle(m, cpus_halted=True)
        return m

    return _snapshot(f"machine {settle_tasks} {MachineConfig(**config)}", build).restore_machine()


def booted_system(**config) -> System:
    """System(**config).boot(), as a restore of the first one booted so."""
    return _snapshot(f"system {MachineConfig(**config)}", lambda: System(**config).boot()).restore_system()


def shell_run(system, cmd):
    """Run shell commands on a System; returns (status, stdout, stderr)."""
    import io

    from klpemu.shell import Shell

    out, err = io.StringIO(), io.StringIO()
    status = Shell(system, out=out, err=err).run_line(cmd)
    return status, out.getvalue(), err.getvalue()


def vfs_tree(node, prefix: str = "") -> list[tuple[str, int]]:
    """Every path under a VFS directory with its mode: what a failed operation must leave alone."""
    out = []
    for name, child in sorted(node.children().items()):
        out.append((prefix + name, child.st_mode))
        if hasattr(child, "children"):
            out += vfs_tree(child, prefix + name + "/")
    return out
