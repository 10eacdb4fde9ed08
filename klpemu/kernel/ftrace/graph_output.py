"""function_graph's `trace` text (kernel/trace/trace_functions_graph.c's print_graph_*): the CPU
column, the duration with its overhead mark, the `{`/`}` nesting, leaf calls on one line, a
banner when a CPU switches tasks, and other records (trace_marker's) as `/* ... */` comments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .trace_options import TraceOptions
    from .trace_output import Record, TraceOutput

INDENT = 2
PROCINFO_LENGTH = 14
RETFUNC_DEPTH = 50
# trace_find_mark: the overhead column's mark for a duration above each threshold (ns)
MARKS = ((1_000_000_000, "$"), (100_000_000, "@"), (10_000_000, "*"), (1_000_000, "#"), (100_000, "!"), (10_000, "+"))


def find_mark(duration: int) -> str:
    return next((sym for limit, sym in MARKS if duration > limit), " ")


def graph_duration(duration: int) -> str:
    """trace_print_graph_duration: microseconds with 3 decimals (fewer past 7 digits), padded."""
    usecs, nsecs = divmod(duration, 1000)
    text = str(usecs)
    width = len(text)
    if width < 7:
        frac = f"{nsecs:03d}"[: 7 - width]
        text += "." + frac
        width += len(frac) + 1
    return text + " us " + " " * max(0, 8 - width)


def header(opts: TraceOptions) -> str:
    first, second = "#", "#"
    if opts["funcgraph-abstime"]:
        first += "     TIME       "
        second += "      |         "
    if opts["funcgraph-cpu"]:
        first += " CPU"
        second += " |  "
    if opts["funcgraph-proc"]:
        first += "  TASK/PID       "
        second += "   |    |        "
    if opts["funcgraph-duration"]:
        first += "  DURATION   "
        second += "   |   |      "
    return f"{first}               FUNCTION CALLS\n{second}               |   |   |   |\n"


def _ent(rec: Record, field: str) -> int:
    return getattr(rec, f"graph_ent.{field}")


def _ret(rec: Record, field: str) -> int:
    return getattr(rec, f"ret.{field}")


@dataclass
class _CpuState:
    last_pid: int = -1
    depth: int = 0
    enter_funcs: list[int] = field(default_factory=lambda: [0] * RETFUNC_DEPTH)


class GraphPrinter:
    def __init__(self, out: TraceOutput, opts: TraceOptions, ncpus: int, comms: dict[int, str]):
        self.out = out
        self.opts = opts
        self.cpu_width = len(str(max(ncpus - 1, 0)))
        self.comms = comms
        self.cpus: dict[int, _CpuState] = {}
        self.ent = out.m.types.enum("TRACE_GRAPH_ENT")
        self.ret = out.m.types.enum("TRACE_GRAPH_RET")

    def _proc(self, pid: int) -> str:
        comm = "<idle>" if pid == 0 else self.comms.get(pid, "<...>")
        text = f"{comm[:7]}-{pid}"
        spaces = max(0, PROCINFO_LENGTH - len(text))
        return " " * (spaces // 2) + text + " " * (spaces - spaces // 2)

    def _cpu(self, cpu: int) -> str:
        return f" {cpu:>{self.cpu_width}d}) "

    def _prologue(self, rec: Record) -> str:
        """verif_pid's banner if this CPU changed tasks, then abstime, CPU and task columns."""
        st = self.cpus.setdefault(rec.cpu, _CpuState())
        out = ""
        if st.last_pid != rec.pid:
            prev, st.last_pid = st.last_pid, rec.pid
            if prev != -1:
                out += (
                    " ------------------------------------------\n"
                    f"{self._cpu(rec.cpu)}{self._proc(prev)} => {self._proc(rec.pid)}\n"
                    " ------------------------------------------\n\n"
                )
        opts = self.opts
        if opts["funcgraph-abstime"]:
            sec, ns = divmod(rec.ts, 1_000_000_000)
            out += f"{sec:5d}.{ns // 1000:06d} |  "
        if opts["funcgraph-cpu"]:
            out += self._cpu(rec.cpu)
        if opts["funcgraph-proc"]:
            out += self._proc(rec.pid) + " | "
        return out

    def _duration(self, duration: int | None) -> str:
        """The duration column; None fills it (a nested entry, a comment)."""
        if not self.opts["funcgraph-duration"]:
            return ""
        if duration is None:
            return "              |  "
        mark = find_mark(duration) if self.opts["funcgraph-overhead"] else " "
        return f"{mark} {graph_duration(duration)}|  "

    def _retval(self, retval: int) -> str:
        if self.opts["funcgraph-retval-hex"] or not retval:
            return f"ret=0x{retval:x}"
        err = retval
        if retval & (1 << 31) and retval >> 32 == 0:
            err = retval - (1 << 32)  # a 32-bit negative int
        elif retval >= 1 << 63:
            err = retval - (1 << 64)
        return f"ret={err}" if -4095 <= err < 0 else f"ret=0x{retval:x}"

    def lines(self, records: list[Record]) -> str:
        """The graph text of records (each CPU's in order; leaves matched on their own CPU)."""
        nxt: dict[int, int] = {}
        following = [-1] * len(records)
        for i in range(len(records) - 1, -1, -1):
            cpu = records[i].cpu
            following[i] = nxt.get(cpu, -1)
            nxt[cpu] = i
        consumed: set[int] = set()
        out: list[str] = []
        for i, rec in enumerate(records):
            if i in consumed:
                continue
            if rec.type == self.ent:
                j = following[i]
                leaf = None
                if j >= 0:
                    r2 = records[j]
                    if r2.type == self.ret and r2.pid == rec.pid and _ret(r2, "func") == _ent(rec, "func"):
                        leaf = r2
                        consumed.add(j)
                out.append(self._entry(rec, leaf))
            elif rec.type == self.ret:
                out.append(self._return(rec))
            else:
                out.append(self._comment(rec))
        return "".join(out)

    def _name(self, func: int) -> str:
        return self.out.ps(func)

    def _entry(self, rec: Record, leaf: Record | None) -> str:
        st = self.cpus.setdefault(rec.cpu, _CpuState())
        text = self._prologue(rec)
        depth, func = _ent(rec, "depth"), _ent(rec, "func")
        indent = " " * (depth * INDENT)
        if leaf is not None:
            st.depth = depth - 1
            if 0 <= depth < RETFUNC_DEPTH:
                st.enter_funcs[depth] = 0
            text += self._duration(_ret(leaf, "rettime") - _ret(leaf, "calltime")) + indent + self._name(func) + "();"
            if self.opts["funcgraph-retval"]:
                text += f" /* {self._retval(_ret(leaf, 'retval'))} */"
            return text + "\n"
        st.depth = depth
        if 0 <= depth < RETFUNC_DEPTH:
            st.enter_funcs[depth] = func
        return text + self._duration(None) + indent + self._name(func) + "() {\n"

    def _return(self, rec: Record) -> str:
        st = self.cpus.setdefault(rec.cpu, _CpuState())
        text = self._prologue(rec)
        depth, func = _ret(rec, "depth"), _ret(rec, "func")
        st.depth = depth - 1
        func_match = True
        if 0 <= depth < RETFUNC_DEPTH:
            func_match = st.enter_funcs[depth] == func
            st.enter_funcs[depth] = 0
        text += self._duration(_ret(rec, "rettime") - _ret(rec, "calltime")) + " " * (depth * INDENT)
        if self.opts["funcgraph-retval"]:
            text += f"}} /* {self._name(func)} {self._retval(_ret(rec, 'retval'))} */\n"
        elif func_match and not self.opts["funcgraph-tail"]:
            text += "}\n"
        else:
            text += f"}} /* {self._name(func)} */\n"
        if self.opts["funcgraph-overrun"]:
            text += f" (Overruns: {_ret(rec, 'overrun')})\n"
        return text

    def _comment(self, rec: Record) -> str:
        st = self.cpus.setdefault(rec.cpu, _CpuState())
        text = self._prologue(rec) + self._duration(None)
        if st.depth > 0:
            text += " " * ((st.depth + 1) * INDENT)
        if rec.type == self.out.m.types.enum("TRACE_PRINT"):
            body = self.out.print_buf(rec)  # the message alone (trace_print_printk_msg_only)
        else:
            body = self.out.event_text(rec).rstrip("\n")
        return text + f"/* {body} */\n"
