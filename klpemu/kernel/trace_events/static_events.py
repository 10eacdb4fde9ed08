"""The firmware's static trace events, as include/trace/events/{sched,irq,module}.h and
raw_syscalls define them: each one's fields (offsets and sizes from the record struct's DWARF,
C types as Linux's format shows them), its print format, and how its `trace` line reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .event import Field

# sched_switch's prev_state: the TASK_REPORT bits and their letters (__print_flags), "R" for none,
# "+" for TASK_REPORT_MAX (preempted).
_REPORT = (
    "(((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040)"
    " + 1) << 1)"
)
_STATE_LETTERS = ((0x1, "S"), (0x2, "D"), (0x4, "T"), (0x8, "t"), (0x10, "X"), (0x20, "Z"), (0x40, "P"), (0x80, "I"))
_TAINT_LETTERS = ((1 << 0, "P"), (1 << 12, "O"), (1 << 1, "F"), (1 << 10, "C"), (1 << 13, "E"))

SCHED_SWITCH_FMT = (
    '"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d", '
    "REC->prev_comm, REC->prev_pid, REC->prev_prio, "
    f'(REC->prev_state & ({_REPORT} - 1)) ? __print_flags(REC->prev_state & ({_REPORT} - 1), "|", '
    + ", ".join(f'{{ 0x{bit:08x}, "{letter}" }}' for bit, letter in _STATE_LETTERS)
    + f') : "R", REC->prev_state & {_REPORT} ? "+" : "", REC->next_comm, REC->next_pid, REC->next_prio'
)
MODULE_LOAD_FMT = (
    '"%s %s", __get_str(name), __print_flags(REC->taints, "", '
    + ", ".join(f'{{ (1UL << {bit.bit_length() - 1}), "{letter}" }}' for bit, letter in _TAINT_LETTERS)
    + ")"
)


class Rec:
    """A record's bytes, read by field name with the event's layout."""

    def __init__(self, raw: bytes, fields: dict[str, Field]):
        self.raw = raw
        self.fields = fields

    def num(self, name: str, index: int = 0) -> int:
        f = self.fields[name]
        size = f.size
        if f.type.endswith("]") and not f.type.startswith("__data_loc"):
            size = 8  # an array of longs
        at = f.offset + index * size
        return int.from_bytes(self.raw[at : at + size], "little", signed=f.signed)

    def str(self, name: str) -> str:
        f = self.fields[name]
        if f.type.startswith("__data_loc"):
            loc = int.from_bytes(self.raw[f.offset : f.offset + 4], "little")
            data = self.raw[loc & 0xFFFF : (loc & 0xFFFF) + (loc >> 16)]
        else:
            data = self.raw[f.offset : f.offset + f.size]
        return data.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def _state(value: int) -> str:
    low = value & 0xFF
    letters = "|".join(letter for bit, letter in _STATE_LETTERS if low & bit) if low else "R"
    return letters + ("+" if value & 0x100 else "")


def _sched_switch(r: Rec) -> str:
    return (
        f"prev_comm={r.str('prev_comm')} prev_pid={r.num('prev_pid')} prev_prio={r.num('prev_prio')} "
        f"prev_state={_state(r.num('prev_state'))} ==> next_comm={r.str('next_comm')} "
        f"next_pid={r.num('next_pid')} next_prio={r.num('next_prio')}"
    )


def _taints(value: int) -> str:
    return "".join(letter for bit, letter in _TAINT_LETTERS if value & bit)


@dataclass(frozen=True)
class StaticEvent:
    system: str
    name: str
    struct: str  # the record's C struct
    fields: tuple[tuple[str, str], ...]  # (C type as format shows it, name)
    print_fmt: str
    text: Callable[[Rec], str]


def _data_loc_member(name: str) -> str:
    return f"__data_loc_{name}"


STATIC_EVENTS = (
    StaticEvent(
        "sched",
        "sched_switch",
        "trace_event_raw_sched_switch",
        (
            ("char[16]", "prev_comm"),
            ("pid_t", "prev_pid"),
            ("int", "prev_prio"),
            ("long", "prev_state"),
            ("char[16]", "next_comm"),
            ("pid_t", "next_pid"),
            ("int", "next_prio"),
        ),
        SCHED_SWITCH_FMT,
        _sched_switch,
    ),
    StaticEvent(
        "sched",
        "sched_wakeup",
        "trace_event_raw_sched_wakeup_template",
        (("char[16]", "comm"), ("pid_t", "pid"), ("int", "prio"), ("int", "target_cpu")),
        '"comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, REC->target_cpu',
        lambda r: f"comm={r.str('comm')} pid={r.num('pid')} prio={r.num('prio')} target_cpu={r.num('target_cpu'):03d}",
    ),
    StaticEvent(
        "sched",
        "sched_process_fork",
        "trace_event_raw_sched_process_fork",
        (("char[16]", "parent_comm"), ("pid_t", "parent_pid"), ("char[16]", "child_comm"), ("pid_t", "child_pid")),
        '"comm=%s pid=%d child_comm=%s child_pid=%d", REC->parent_comm, REC->parent_pid, REC->child_comm, '
        "REC->child_pid",
        lambda r: (
            f"comm={r.str('parent_comm')} pid={r.num('parent_pid')} child_comm={r.str('child_comm')} "
            f"child_pid={r.num('child_pid')}"
        ),
    ),
    StaticEvent(
        "sched",
        "sched_process_exit",
        "trace_event_raw_sched_process_template",
        (("char[16]", "comm"), ("pid_t", "pid"), ("int", "prio")),
        '"comm=%s pid=%d prio=%d", REC->comm, REC->pid, REC->prio',
        lambda r: f"comm={r.str('comm')} pid={r.num('pid')} prio={r.num('prio')}",
    ),
    StaticEvent(
        "irq",
        "irq_handler_entry",
        "trace_event_raw_irq_handler_entry",
        (("int", "irq"), ("__data_loc char[]", "name")),
        '"irq=%d name=%s", REC->irq, __get_str(name)',
        lambda r: f"irq={r.num('irq')} name={r.str('name')}",
    ),
    StaticEvent(
        "irq",
        "irq_handler_exit",
        "trace_event_raw_irq_handler_exit",
        (("int", "irq"), ("int", "ret")),
        '"irq=%d ret=%s", REC->irq, REC->ret ? "handled" : "unhandled"',
        lambda r: f"irq={r.num('irq')} ret={'handled' if r.num('ret') else 'unhandled'}",
    ),
    StaticEvent(
        "module",
        "module_load",
        "trace_event_raw_module_load",
        (("unsigned int", "taints"), ("__data_loc char[]", "name")),
        MODULE_LOAD_FMT,
        lambda r: f"{r.str('name')} {_taints(r.num('taints'))}",
    ),
    StaticEvent(
        "module",
        "module_free",
        "trace_event_raw_module_free",
        (("__data_loc char[]", "name"),),
        '"%s", __get_str(name)',
        lambda r: r.str("name"),
    ),
    StaticEvent(
        "raw_syscalls",
        "sys_enter",
        "trace_event_raw_sys_enter",
        (("long", "id"), ("unsigned long[6]", "args")),
        '"NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)", REC->id, REC->args[0], REC->args[1], REC->args[2], '
        "REC->args[3], REC->args[4], REC->args[5]",
        lambda r: f"NR {r.num('id')} (" + ", ".join(f"{r.num('args', i) & (2**64 - 1):x}" for i in range(6)) + ")",
    ),
    StaticEvent(
        "raw_syscalls",
        "sys_exit",
        "trace_event_raw_sys_exit",
        (("long", "id"), ("long", "ret")),
        '"NR %ld = %ld", REC->id, REC->ret',
        lambda r: f"NR {r.num('id')} = {r.num('ret')}",
    ),
)

SIGNED_TYPES = ("pid_t", "int", "long")


def layout(event: StaticEvent, struct_member) -> list[Field]:
    """The event's fields: offset and size from the record struct (struct_member(name) ->
    (offset, size)), signedness from the C type (char arrays print signed:0, as Linux's do)."""
    out = []
    for ctype, name in event.fields:
        member = _data_loc_member(name) if ctype.startswith("__data_loc") else name
        offset, size = struct_member(member)
        out.append(Field(ctype, name, offset, size, ctype in SIGNED_TYPES))
    return out
