"""Writes klpemu/abi.py, the constants the host shares with the firmware kernel, from DWARF.

The kernel's headers are the one source: every value below is an enumerator, an array length or
a struct size in the image's debug info (the headers keep such values in enums rather than
macros for that reason). `python -m klpemu.machine.abi_gen [IMAGE]` rewrites the module after
a header change; tests/test_abi.py renders it again from the shipped image and compares.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

from ..errors import KlpemuError
from .image import KernelImage
from .types import TypeInfo

# Flag families the host indexes by their short name: (Python name, C prefix, what they are).
FAMILIES = [
    ("FTRACE_OPS_FL", "FTRACE_OPS_FL_", "struct ftrace_ops.flags (include/linux/ftrace.h)"),
    ("FTRACE_FL", "FTRACE_FL_", "struct dyn_ftrace.flags (include/linux/ftrace.h)"),
    ("KPROBE_FLAG", "KPROBE_FLAG_", "struct kprobe.flags (include/linux/kprobes.h)"),
    ("TIF", "TIF_", "thread_info.flags bit numbers (arch/x86/include/asm/thread_info.h)"),
    ("PF", "PF_", "task_struct.flags (include/linux/sched.h)"),
    ("TASK_STATE", "TASK_", "task_struct.__state (include/linux/sched.h)"),
    ("KPROBE_EMULATE", "KPROBE_EMULATE_", "enum kprobe_emulate_op: how a probed branch is emulated"),
    ("FETCH_OP", "FETCH_OP_", "enum fetch_op: a probe argument's fetch program (include/linux/trace_probe.h)"),
    ("EVENT_FILE_FL", "EVENT_FILE_FL_", "struct trace_event_file.flags (include/linux/trace_events.h)"),
    ("FILTER_OP", "FILTER_OP_", "enum filter_op_ids: an event filter's postfix program"),
    ("FILTER_PRED_FN", "FILTER_PRED_FN_", "enum filter_pred_fn: what a filter predicate reads"),
    ("FILTER_CMP", "FILTER_CMP_", "enum filter_cmp: how a filter predicate compares"),
    ("ETT", "ETT_", "enum event_trigger_type (include/linux/trace_events.h)"),
]

# Single enumerators, by their C name.
ENUMERATORS = [
    "HYPERCALL_PORT",
    "MCOUNT_INSN_SIZE",
    "KLP_RUN_CALLBACK",
    "KLP_TRANSITION_IDLE",
    "KLP_TRANSITION_UNPATCHED",
    "KLP_TRANSITION_PATCHED",
    "MODULE_REF_BASE",
    "FTRACE_REF_MAX",
    "MAX_INSN_SIZE",
    "KPROBE_HASH_BITS",
    "KPROBE_TABLE_SIZE",
    "KRETPROBE_MAX_DATA_SIZE",
    "FETCH_NOP_SYMBOL",
    "FETCH_INSN_MAX",
    "PARAM_MAX_STACK",
    "PROBE_NOFAULT_RANGES",
    "EVENT_PID_MAX",
    "FILTER_STACK_MAX",
    "SAVED_CMDLINES_PID_MAP",
    "EVENT_ENABLED_CMDLINE",
    "EVENT_ENABLED_PID_FORK",
]

# Lengths of arrays: (Python name, struct, member).
ARRAY_LENGTHS = [
    ("MODULE_NAME_LEN", "module", "name"),
    ("TASK_COMM_LEN", "task_struct", "comm"),
]

# Sizes of structs: (Python name, struct).
STRUCT_SIZES = [
    ("SIZEOF_DYN_FTRACE", "dyn_ftrace"),
]

# Member offsets, for code that runs where no image is at hand (instruction decoding) or on
# every record: (Python name, struct).
STRUCT_OFFSETS = [
    ("PT_REGS_OFFSET", "pt_regs"),
    ("DYN_FTRACE_OFFSET", "dyn_ftrace"),
    ("FTRACE_HASH_OFFSET", "ftrace_hash"),
    ("LIST_HEAD_OFFSET", "list_head"),
]

HEADER = '''"""The constants this package shares with the firmware kernel. Generated from the image's
DWARF by `python -m klpemu.machine.abi_gen`; do not edit (tests/test_abi.py checks it)."""

from __future__ import annotations

from typing import Final
'''


def _family(types: TypeInfo, prefix: str) -> dict[str, int]:
    found = {name[len(prefix) :]: value for name, value in types.enums.items() if name.startswith(prefix)}
    return dict(sorted(found.items(), key=lambda kv: (kv[1], kv[0])))


def _hex(value: int) -> str:
    return f"-0x{-value:X}" if value < 0 else f"0x{value:X}"  # as ruff format writes hex


def render(types: TypeInfo) -> str:
    lines = [HEADER]
    for name, prefix, what in FAMILIES:
        family = _family(types, prefix)
        if not family:
            raise KeyError(f"no enumerator {prefix}* in the image's debug info")
        lines.append(f"# {what}")
        lines.append(f"{name}: Final[dict[str, int]] = {{")
        lines += [f'    "{short}": {_hex(value)},' for short, value in family.items()]
        lines.append("}")
        lines += [f"{prefix}{short}: Final = {_hex(value)}" for short, value in family.items()]
        lines.append("")
    for name in ENUMERATORS:
        lines.append(f"{name}: Final = {types.enum(name)}")
    for name, struct, member in ARRAY_LENGTHS:
        lines.append(f"{name}: Final = {types.struct(struct).member(member)[1].count}")
    for name, struct in STRUCT_SIZES:
        lines.append(f"{name}: Final = {types.sizeof(struct)}")
    for name, struct in STRUCT_OFFSETS:
        lines.append("")
        lines.append(f"# struct {struct}")
        lines.append(f"{name}: Final[dict[str, int]] = {{")
        lines += [f'    "{member}": {offset},' for member, (offset, _) in types.struct(struct).members.items()]
        lines.append("}")
    return "\n".join(lines) + "\n"


def check(types: TypeInfo) -> None:
    """Refuse an image whose constants are not the ones this package was generated from: the
    host would misread its structures."""
    from .. import abi

    rendered, shipped = render(types).splitlines(), Path(abi.__file__).read_text().splitlines()
    differ = [new for old, new in zip(shipped, rendered, strict=False) if old != new]
    if differ or len(rendered) != len(shipped):
        raise KlpemuError(
            f"the image's constants differ from this klpemu's ({', '.join(differ[:3]) or 'tables'}): "
            "rebuild it from this klpemu's firmware sources",
            errno.EINVAL,
        )


def main(argv: list[str]) -> int:
    from importlib import resources

    image = KernelImage(argv[0] if argv else Path(str(resources.files("klpemu") / "images" / "vmlinux")))
    target = Path(__file__).resolve().parent.parent / "abi.py"
    target.write_text(render(TypeInfo(image.dwarf)))
    print(f"wrote {target.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
