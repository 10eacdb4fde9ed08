"""Trace arrays (kernel/trace/trace.c's struct trace_array): the top-level tracing directory and
each instance made under instances/, every one with its own ring buffer, tracer, filters,
options, clock and snapshot.

The guest's struct trace_array holds the ring buffer the data plane writes; the rest is control
plane. function_graph can be one trace array's tracer at a time, the top level's (as in Linux
before 6.12, where instances allow only the function tracer).
"""

from __future__ import annotations

from errno import EBADF, EBUSY, EEXIST, EINVAL, ENODEV, ENOENT
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ..tasks import all_tasks
from .function_graph import FunctionGraph
from .function_tracer import FunctionTracer
from .graph_output import GraphPrinter
from .graph_output import header as graph_header
from .ring_buffer import BUF_PAGE_SIZE, DEFAULT_SIZE_KB, EVENT_HDR_SIZE, RingBuffer
from .saved_cmdlines import SavedCmdlines
from .trace_options import TraceOptions

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .core import Ftrace
    from .ops import FtraceOps
    from .trace_output import Record, TraceOutput

TOP_TRACERS = ("function_graph", "function", "nop")  # available_tracers: newest registered first
INSTANCE_TRACERS = ("function", "nop")
TRACE_MARKER_MAX_SIZE = 4096

SNAPSHOT_HELP = """\
# Snapshot commands:
# echo 0 > snapshot : Clears and frees snapshot buffer
# echo 1 > snapshot : Allocates snapshot buffer, if not already allocated.
#                      Takes a snapshot of the main buffer.
# echo 2 > snapshot : Clears snapshot buffer (but does not allocate or free)
#                      (Doesn't have to be '2' works with any number that
#                       is not a '0' or '1')
"""


class TraceArray:
    def __init__(self, tracing: Tracing, name: str, addr: int, slot: int, ops: FtraceOps | None):
        self.tracing = tracing
        self.m = tracing.m
        self.name = name  # "" for the top level
        self.addr = addr  # the guest's struct trace_array
        self.tracers = TOP_TRACERS if not name else INSTANCE_TRACERS
        self.buffer = tracing.new_buffer(addr, slot)
        self.snapshot: RingBuffer | None = None  # the spare buffer `echo 1 > snapshot` allocates
        self.options = TraceOptions(self.tracers)
        self.function = FunctionTracer(self.m, tracing.ft, self, ops)
        self.current = "nop"
        self.ref = 0  # holders (trace_array_get_by_name, a trace_pipe reader): rmdir is refused

    @property
    def out(self) -> TraceOutput:
        return self.tracing.output

    # --- the tracer ----------------------------------------------------------------------------

    def _function_handler(self) -> str:
        if self.current == "function_graph":
            return "ftrace_graph_func"
        return "function_stack_trace_call" if self.options["func_stack_trace"] else "function_trace_call"

    def set_tracer(self, name: str) -> None:
        """current_tracer: the old tracer stops, the buffer is cleared (tracer_init), the new
        one starts; a tracer the array cannot have is EINVAL, function_graph in use elsewhere
        EBUSY."""
        if name not in self.tracers:
            raise KlpemuError(f"{name}: no such tracer", EINVAL)
        if name == self.current:
            return
        graph = self.tracing.graph
        if name == "function_graph" and graph.owner not in (None, self):
            raise KlpemuError("function_graph is in use by another trace array", EBUSY)
        ops = self.function.ops
        if self.current in ("function", "function_graph"):
            self.tracing.ft.unregister(ops)
        if self.current == "function_graph":
            graph.stop()
        if self.current in ("function", "function_graph"):
            self.tracing.saved_cmdlines.stop()
        self.current = name
        self.buffer.expand()
        self.buffer.reset()
        if name == "nop":
            return
        self.tracing.saved_cmdlines.start()
        if name == "function_graph":
            graph.start(self)
        self.m.kernel.ftrace_pid.set_func(ops, self.m.image.addr(self._function_handler()))
        self.tracing.ft.register(ops)

    def set_option(self, name: str, on: bool) -> None:
        """options/NAME and trace_options: what the guest reads takes the new value at once."""
        if self.options[name] == on:
            return
        self.options.set(name, on)
        if name == "func_stack_trace" and self.current == "function":
            ops = self.function.ops
            self.tracing.ft.unregister(ops)
            self.m.kernel.ftrace_pid.set_func(ops, self.m.image.addr(self._function_handler()))
            self.tracing.ft.register(ops)
        if name == "event-fork" and self is self.tracing.top:
            self.m.kernel.trace_events.files.set_event_fork(on)
        if name == "funcgraph-irqs" and self.tracing.graph.owner is self:
            self.tracing.graph.sync()

    # --- tracing_on, trace_marker ----------------------------------------------------------------

    @property
    def tracing_on(self) -> bool:
        return self.buffer.record_on

    @tracing_on.setter
    def tracing_on(self, value: bool) -> None:
        self.buffer.record_on = value

    def mark(self, text: str) -> None:
        """trace_marker: a TRACE_PRINT record, written as the shell's `sh` would write it (on its
        CPU, in task context), ip tracing_mark_write; a newline ends it."""
        if not self.options["markers"]:
            raise KlpemuError("trace_marker: the markers option is off", EINVAL)
        data = text.encode("utf-8", "surrogateescape")[: TRACE_MARKER_MAX_SIZE - 2]
        if not data.endswith(b"\n"):
            data += b"\n"
        writer = next((t for t in all_tasks(self.m) if t.comm == "sh"), None)
        pid, cpu = (writer.pid, writer.cpu) if writer is not None else (0, 0)
        head = (
            self.m.types.enum("TRACE_PRINT").to_bytes(2, "little")
            + bytes([0, 0])
            + pid.to_bytes(4, "little", signed=True)
            + self.m.image.addr("tracing_mark_write").to_bytes(8, "little")
        )
        # A message longer than a page's record takes several records, in order.
        room = BUF_PAGE_SIZE - EVENT_HDR_SIZE - len(head) - 1
        for at in range(0, len(data), room):
            if not self.buffer.write(cpu, head + data[at : at + room] + b"\0"):
                raise KlpemuError("trace_marker: the ring buffer is not recording", EBADF)

    # --- buffers ---------------------------------------------------------------------------------

    def buffer_size_text(self, total: bool = False) -> str:
        kb = self.buffer.size_kb() * (self.buffer.ncpus if total else 1)
        if self.buffer.expanded:
            return f"{kb}\n"
        expanded = DEFAULT_SIZE_KB * (self.buffer.ncpus if total else 1)
        return f"{kb} (expanded: {expanded})\n"

    def resize(self, text: str) -> None:
        try:
            kb = int(text.strip(), 0)
        except ValueError:
            raise KlpemuError(f"buffer_size_kb: {text.strip()!r} is not a number", EINVAL) from None
        if kb <= 0:
            raise KlpemuError("buffer_size_kb: the ring needs at least one entry", EINVAL)
        self.buffer.resize(kb)
        if self.snapshot is not None:
            self.snapshot.resize(kb)

    def set_clock(self, text: str) -> None:
        from .ring_buffer import CLOCKS

        name = text.strip()
        if name not in CLOCKS:
            raise KlpemuError(f"trace_clock: {name}: no such clock", EINVAL)
        self.buffer.clock = name
        if self.snapshot is not None:
            self.snapshot.clock = name

    def clock_text(self) -> str:
        from .ring_buffer import CLOCKS

        return " ".join(f"[{c}]" if c == self.buffer.clock else c for c in CLOCKS) + "\n"

    def write_snapshot(self, text: str) -> None:
        """0 frees the snapshot, 1 allocates it if need be and swaps it with the ring, any other
        number clears it."""
        try:
            value = int(text.strip(), 0)
        except ValueError:
            raise KlpemuError(f"snapshot: {text.strip()!r} is not a number", EINVAL) from None
        if value == 0:
            self.free_snapshot()
            return
        if value == 1:
            self.alloc_snapshot()
            assert self.snapshot is not None
            self.buffer.swap(self.snapshot)  # the ring goes on in what the spare held
            return
        if self.snapshot is not None:
            self.snapshot.reset()

    def alloc_snapshot(self) -> None:
        """tracing_alloc_snapshot_instance: the spare buffer, if there is none yet; the guest's
        trace_array points at it, so tracing_snapshot_instance can swap in guest code."""
        if self.snapshot is not None:
            return
        spare = self.tracing.spare_buffer(self)
        self.buffer.sync()
        self.buffer.partner, spare.partner = spare, self.buffer
        self.snapshot = spare
        self.m.mem.write_u64(self.addr + self.m.types.offsetof("trace_array", "snapshot"), spare.addr)

    def free_snapshot(self) -> None:
        spare = self.snapshot
        if spare is None:
            return
        self.m.mem.write_u64(self.addr + self.m.types.offsetof("trace_array", "snapshot"), 0)
        self.buffer.sync()
        self.buffer.partner = spare.partner = None
        self.snapshot = None
        self.tracing.release_buffer(spare)

    # --- reading ---------------------------------------------------------------------------------

    def records(self, buffer: RingBuffer | None = None) -> list[Record]:
        return [self.out.record(r) for r in (buffer or self.buffer).records()]

    def _lines(self, records: list[Record]) -> str:
        out = self.out
        with out.options(self.options):
            if self.current == "function_graph":
                comms = out.comms()
                return GraphPrinter(out, self.options, len(self.m.cpus), comms).lines(records)
            comms = out.comms()
            counter = self.buffer.clock == "counter"
            return "".join(out.line(rec, comms, counter) for rec in records)

    def _header(self, buffer: RingBuffer, shown: int) -> str:
        if self.current == "function_graph":
            return graph_header(self.options)
        return self.out.header(buffer, shown, self.options)

    def text(self) -> str:
        """The `trace` file."""
        records = self.records()
        return f"# tracer: {self.current}\n#\n" + self._header(self.buffer, len(records)) + self._lines(records)

    def snapshot_text(self) -> str:
        buf = self.snapshot
        records = self.records(buf) if buf is not None else []
        head = f"# tracer: {self.current}\n#\n"
        if not records:
            state = "allocated" if buf is not None else "freed"
            return head + f"#\n# * Snapshot is {state} *\n#\n" + SNAPSHOT_HELP
        assert buf is not None
        return head + self._header(buf, len(records)) + self._lines(records)

    def pipe_read(self, timeout_ns: int = 1_000_000_000) -> str:
        """trace_pipe: what is buffered, consumed as it is read; with nothing buffered the
        machine runs until something is, for at most timeout_ns of emulated time."""
        step = 10_000_000
        waited = 0
        records = self.records()
        while not records and waited < timeout_ns and self.m.oops is None:
            self.m.run(ns=step)
            waited += step
            records = self.records()
        self.buffer.consume()
        return self._lines(records)


class Tracing:
    """The trace arrays of one machine: the top level and the instances."""

    def __init__(self, machine: Machine, ftrace: Ftrace, output: TraceOutput):
        self.m = machine
        self.ft = ftrace
        self.output = output
        self._free_slots: list[int] = []
        self._next_slot = 0
        self._slot_pages: dict[int, list[int]] = {}
        self.graph = FunctionGraph(machine, ftrace)
        self.saved_cmdlines = SavedCmdlines(machine)
        output.saved_cmdlines = self.saved_cmdlines
        machine.hypercalls.register("HC_TRACE_SNAPSHOT", self._hc_snapshot)
        self.top = TraceArray(self, "", machine.var_addr("global_trace"), self._slot(), None)
        self.instances: dict[str, TraceArray] = {}

    # --- ring buffers ------------------------------------------------------------------------------

    def alloc_snapshot(self) -> None:
        """tracing_alloc_snapshot: the top array's snapshot buffer, empty, if it has none."""
        top = self.top
        if top.snapshot is None:
            top.snapshot = self.spare_buffer(top)

    def _hc_snapshot(self, *args: int) -> int:
        """A snapshot trigger fired (tracing_snapshot): the top ring and its snapshot swap."""
        top = self.top
        if top.snapshot is not None:
            top.buffer.swap(top.snapshot)
        return 0

    def _slot(self) -> int:
        if self._free_slots:
            return self._free_slots.pop(0)
        self._next_slot += 1
        return self._next_slot - 1

    def new_buffer(self, tr_addr: int, slot: int) -> RingBuffer:
        addr = tr_addr + self.m.types.offsetof("trace_array", "buffer")
        mapped = self._slot_pages.setdefault(slot, [0] * len(self.m.cpus))
        return RingBuffer(self.m, addr, slot, mapped)

    def spare_buffer(self, tr: TraceArray) -> RingBuffer:
        """A trace_buffer like tr's (same size and clock) for its snapshot."""
        addr = self.m.heap.kzalloc(self.m.types.sizeof("trace_array"))
        buf = self.new_buffer(addr, self._slot())
        if tr.buffer.expanded:
            buf.resize(tr.buffer.size_kb())
        buf.clock = tr.buffer.clock
        return buf

    def release_buffer(self, buf: RingBuffer) -> None:
        """A spare buffer given back: its struct freed, its slot (and pages) kept for reuse."""
        self.m.heap.free(buf.addr - self.m.types.offsetof("trace_array", "buffer"))
        self._free_slots.append(buf.slot)
        self._free_slots.sort()

    # --- instances -------------------------------------------------------------------------------

    def arrays(self) -> list[TraceArray]:
        return [self.top, *self.instances.values()]

    def mkdir(self, name: str) -> TraceArray:
        """instances/NAME: a new trace array, its ops filtered apart from every other's."""
        if name in self.instances:
            raise KlpemuError(f"instances/{name}: File exists", EEXIST)
        if not name or "/" in name:
            raise KlpemuError(f"instances/{name}: not a name", EINVAL)
        m = self.m
        addr = m.heap.kzalloc(m.types.sizeof("trace_array"))
        ops = self.ft.ops_native(f"function [{name}]", "function_trace_call")
        ops.struct.private = addr
        tr = TraceArray(self, name, addr, self._slot(), ops)
        self.instances[name] = tr
        return tr

    def rmdir(self, name: str) -> None:
        """EBUSY while someone holds the instance, as instance_rmdir refuses."""
        tr = self.instances.get(name)
        if tr is None:
            raise KlpemuError(f"instances/{name}: No such file or directory", ENOENT)
        if tr.ref:
            raise KlpemuError(f"instances/{name}: Device or resource busy", EBUSY)
        tr.set_tracer("nop")
        tr.function.probes.clear()
        self.ft.forget(tr.function.ops)
        tr.free_snapshot()
        self.m.heap.free(tr.addr)
        self._free_slots.append(tr.buffer.slot)
        self._free_slots.sort()
        del self.instances[name]

    def get_by_name(self, name: str) -> TraceArray:
        """trace_array_get_by_name: a held reference (the instance cannot be removed until put)."""
        tr = self.instances.get(name) if name else self.top
        if tr is None:
            raise KlpemuError(f"no trace instance {name}", ENODEV)
        tr.ref += 1
        return tr

    def put(self, tr: TraceArray) -> None:
        tr.ref = max(0, tr.ref - 1)
