"""A trace event as tracefs shows it (struct trace_event_call): system, name, type id, fields and
print format, rendered into the `format` file as kernel/trace/trace_events.c renders it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    """One field of the record (struct ftrace_event_field)."""

    type: str  # C type; an array keeps its [N] here: "char prev_comm[16]" is ("char[16]", ...)
    name: str
    offset: int
    size: int
    signed: bool

    def declaration(self) -> str:
        if self.type.endswith("]") and not self.type.startswith("__data_loc"):
            base, dim = self.type.split("[", 1)
            return f"{base} {self.name}[{dim}"
        return f"{self.type} {self.name}"

    def format_line(self) -> str:
        return f"\tfield:{self.declaration()};\toffset:{self.offset};\tsize:{self.size};\tsigned:{int(self.signed)};\n"


COMMON_FIELDS = (
    Field("unsigned short", "common_type", 0, 2, False),
    Field("unsigned char", "common_flags", 2, 1, False),
    Field("unsigned char", "common_preempt_count", 3, 1, False),
    Field("int", "common_pid", 4, 4, True),
)


POST_TRIGGERS = ("traceoff", "stacktrace")


@dataclass
class Trigger:
    """One event trigger (struct event_trigger_data): its command, count and target."""

    name: str  # traceon, traceoff, stacktrace, enable_event, disable_event
    count: int  # -1: unlimited
    target: EventCall | None = None
    guest: int = 0  # its struct event_trigger_data
    filter_text: str = ""  # `if FILTER`'s filter, as written
    filter_mem: list[int] = field(default_factory=list)

    @property
    def post(self) -> bool:
        """Acts after its event's record is in the ring (EVENT_CMD_FL_POST_TRIGGER)."""
        return self.name in POST_TRIGGERS

    def key(self) -> tuple[str, str]:
        return self.name, (f"{self.target.system}:{self.target.name}" if self.target else "")


@dataclass
class EventCall:
    system: str
    name: str
    id: int
    fields: list[Field]
    print_fmt: str
    enabled: bool = False  # by enable / set_event (EVENT_FILE_FL_ENABLED without soft mode)
    files: list[int] = field(default_factory=list)  # its guest struct trace_event_file(s)
    soft_refs: int = 0  # triggers holding it in soft mode
    filter_text: str = ""  # the filter as written, or the failed one with its error
    filter_mem: list[int] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    field_names: dict[str, Field] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.field_names = {f.name: f for f in (*COMMON_FIELDS, *self.fields)}

    def format(self) -> str:
        """The `format` file (trace_format_show)."""
        out = [f"name: {self.name}\n", f"ID: {self.id}\n", "format:\n"]
        out.extend(f.format_line() for f in COMMON_FIELDS)
        out.append("\n")
        out.extend(f.format_line() for f in self.fields)
        out.append(f"\nprint fmt: {self.print_fmt}\n")
        return "".join(out)
