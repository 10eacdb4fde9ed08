"""Snapshots of a machine: its RAM, its CPUs' Unicorn contexts and the host's control-plane state,
frozen at one instant and restored any number of times into independent machines.

A restore runs exactly as the original would have run from that instant: same guest memory and
registers, same emulated time and instruction count, same random stream for the CPU interleaving.
What differs is only what Unicorn keeps to itself (translated blocks, its TLB), which no guest
instruction can observe.

The host state is copied with copy.deepcopy. The kernel image and its DWARF types are shared by
every copy: they are read-only once loaded (their classes say so in __deepcopy__). A function is
shared too, since deepcopy cannot copy one: a closure over mutable state would then be shared
between the original and its copies, so taking a snapshot refuses one (keep a bound method or a
functools.partial in long-lived state instead, which are copied with their object).
"""

from __future__ import annotations

import copy
import functools
import types
from collections.abc import Iterator
from typing import Any

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc

from .errors import KlpemuError
from .machine.machine import Machine
from .machine.memory import PAGE_SIZE
from .system import System

_ZERO_PAGE = bytes(PAGE_SIZE)
# What a closure may hold and still be shared between copies (with functions, tuples and
# frozensets of these): nothing a copy could change.
_SCALARS = (int, float, complex, str, bytes, bool, range, type, types.ModuleType, type(None))


class SnapshotError(KlpemuError):
    """The machine holds state that cannot be copied faithfully."""


class _Detached:
    """Stands for the Unicorn instance in a frozen copy: a frozen machine does not run."""

    def __getattr__(self, name: str) -> Any:
        raise SnapshotError("a frozen snapshot has no Unicorn instance; restore() it first")


class Snapshot:
    """One machine (or System) frozen at one instant. `restore()` gives a new, independent one."""

    def __init__(self, machine: Machine, live_ctx: object, pages: list[tuple[int, bytes]], system: bool):
        self._machine = machine  # a frozen copy, its Unicorn instance a _Detached
        self._live_ctx = live_ctx  # the registers Unicorn held outside any CPU's saved context
        self._pages = pages  # (physical address, bytes) of every run of non-zero RAM pages
        self._system = system
        self.ram_size = machine.mem.ram_size

    @classmethod
    def take(cls, target: System | Machine) -> Snapshot:
        """Freeze target as it is now; target itself runs on unchanged."""
        system = isinstance(target, System)
        m = target.machine if isinstance(target, System) else target
        if m.running_cpu is not None:
            raise SnapshotError("cannot snapshot a machine from inside its own slice (a hook or hypercall)")
        memo: dict[int, Any] = {id(m.uc): _Detached()}
        try:
            _copy_memory_first(m, memo)
            frozen = copy.deepcopy(m, memo)
        except TypeError as e:  # a generator, a lock, a C object without copy support
            raise SnapshotError(f"cannot snapshot this machine: {e}") from e
        for path in _shared_functions(memo):
            raise SnapshotError(f"cannot snapshot this machine: {path}")
        pages = [run for start, end in m.mem.allocated() for run in _nonzero_runs(m.uc, start, end)]
        return cls(frozen, m.uc.context_save(), pages, system)

    def restore(self) -> System | Machine:
        """A new machine in the frozen state; a System around it if a System was frozen."""
        m = self.restore_machine()
        return System.around(m) if self._system else m

    def restore_machine(self) -> Machine:
        """A new machine in the frozen state, whichever of Machine or System was frozen."""
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(0, self.ram_size)  # fresh RAM reads as zeroes: only the rest is written
        for addr, data in self._pages:
            uc.mem_write(addr, data)
        memo: dict[int, Any] = {id(self._machine.uc): uc}
        _copy_memory_first(self._machine, memo)
        m = copy.deepcopy(self._machine, memo)
        uc.context_restore(self._live_ctx)
        m.after_restore()
        return m

    def restore_system(self) -> System:
        """A System around a restored machine, whichever of the two was frozen."""
        return System.around(self.restore_machine())


def _copy_memory_first(m: Machine, memo: dict[int, Any]) -> None:
    """Views and pointers copy onto the memory they find in the memo, else keep their own: put
    the machine's there before anything can reach one."""
    copy.deepcopy(m.mem, memo)


def _nonzero_runs(uc: Uc, start: int, end: int) -> list[tuple[int, bytes]]:
    ram = uc.mem_read(start, end - start)
    runs: list[tuple[int, bytes]] = []
    run_start = None
    for off in range(0, len(ram) + PAGE_SIZE, PAGE_SIZE):
        zero = off >= len(ram) or ram[off : off + PAGE_SIZE] == _ZERO_PAGE
        if not zero and run_start is None:
            run_start = off
        elif zero and run_start is not None:
            runs.append((start + run_start, bytes(ram[run_start:off])))
            run_start = None
    return runs


def _shared_functions(memo: dict[int, Any]) -> Iterator[str]:
    """Functions that copies would share with mutable state in them, held by what deepcopy
    copied (the memo's values are the copies)."""
    keep_alive = memo.get(id(memo))
    for obj in list(memo.values()):
        if obj is keep_alive:
            continue
        for name, value in _contents(obj):
            yield from _check(value, f"{type(obj).__name__}.{name}")


def _contents(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield repr(k), v
    elif isinstance(obj, list | set | frozenset | tuple):
        for i, v in enumerate(obj):
            yield f"[{i}]", v
    elif isinstance(obj, functools.partial):
        yield "func", obj.func
        yield from _contents(obj.args)
        yield from _contents(obj.keywords)
    elif isinstance(obj, types.MethodType):
        yield "__func__", obj.__func__
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from vars(obj).items()


def _check(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, types.FunctionType):
        if not _frozen(value, set()):
            yield f"{path} ({value.__qualname__}) is a closure over mutable state"
    elif isinstance(value, types.BuiltinMethodType) and not _frozen(value.__self__, set()):
        # deepcopy does not copy a builtin's bound method (list.append) either: it would act on
        # the original's object. A module's function (len) has the module as __self__: fine.
        yield f"{path} (a method of {type(value.__self__).__name__}, which it shares its object with)"
    elif isinstance(value, tuple | frozenset):  # deepcopy keeps these when their items are unchanged
        for name, item in _contents(value):
            yield from _check(item, path + name)


def _frozen(value: Any, seen: set[int]) -> bool:
    """Whether copies can share value: nothing reachable from it can change."""
    if id(value) in seen:
        return True
    seen.add(id(value))
    if isinstance(value, types.FunctionType):
        held = [_cell_value(c) for c in value.__closure__ or ()]
        held += (value.__defaults__ or ()) + tuple((value.__kwdefaults__ or {}).values())
        return all(_frozen(v, seen) for v in held)
    if isinstance(value, tuple | frozenset):
        return all(_frozen(v, seen) for v in value)
    return isinstance(value, _SCALARS)


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a variable the closure's function has not bound yet
        return None
