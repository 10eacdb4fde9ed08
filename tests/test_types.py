"""DWARF layouts agree with the C structs, and pt_regs is Linux's."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"

# (struct, member) pairs whose offsets and sizes the host reads through DWARF.
MEMBERS = [
    ("task_struct", "thread_info"),
    ("task_struct", "thread_info.flags"),
    ("task_struct", "__state"),
    ("task_struct", "stack"),
    ("task_struct", "on_cpu"),
    ("task_struct", "cpu"),
    ("task_struct", "flags"),
    ("task_struct", "pid"),
    ("task_struct", "comm"),
    ("task_struct", "patch_state"),
    ("task_struct", "tasks"),
    ("task_struct", "timer"),
    ("task_struct", "files"),
    ("task_struct", "thread"),
    ("task_struct", "thread.sp"),
    ("pt_regs", "r15"),
    ("pt_regs", "bp"),
    ("pt_regs", "bx"),
    ("pt_regs", "ax"),
    ("pt_regs", "di"),
    ("pt_regs", "orig_ax"),
    ("pt_regs", "ip"),
    ("pt_regs", "cs"),
    ("pt_regs", "flags"),
    ("pt_regs", "sp"),
    ("pt_regs", "ss"),
    ("inactive_task_frame", "r15"),
    ("inactive_task_frame", "r12"),
    ("inactive_task_frame", "bx"),
    ("inactive_task_frame", "bp"),
    ("inactive_task_frame", "ret_addr"),
    ("pcpu_hot", "self"),
    ("pcpu_hot", "current_task"),
    ("pcpu_hot", "cpu_number"),
    ("pcpu_hot", "preempt_count"),
    ("pcpu_hot", "top_of_stack"),
    ("pcpu_hot", "idle"),
    ("pcpu_hot", "clock_ns"),
    ("pcpu_hot", "nr_switches"),
    ("pcpu_hot", "irq_count"),
    ("console_request", "op"),
    ("console_request", "len"),
    ("console_request", "path"),
    ("console_request", "data"),
    ("console_mbox", "req"),
    ("console_mbox", "pending"),
    ("console_mbox", "done"),
    ("console_mbox", "status"),
    ("console_mbox", "out_len"),
    ("console_mbox", "out"),
]
STRUCTS = sorted({s for s, _ in MEMBERS})
CONSTANTS = ["THREAD_SIZE", "TASK_COMM_LEN", "NR_CPUS", "NR_TASKS"]


def _console_mbox_source() -> str:
    """struct console_mbox lives in drivers/tty/console.c, not in a header: copy it out."""
    text = (FIRMWARE / "drivers/tty/console.c").read_text()
    define = re.search(r"^#define CONSOLE_OUT_MAX .*$", text, re.MULTILINE)
    struct = re.search(r"^struct console_mbox \{.*?^\};", text, re.MULTILINE | re.DOTALL)
    assert define and struct, "struct console_mbox / CONSOLE_OUT_MAX not found in drivers/tty/console.c"
    return define.group(0) + "\n" + struct.group(0) + "\n"


def _program() -> str:
    lines = [
        "#include <linux/sched.h>",
        "#include <klpemu/syscalls.h>",
        "int printf(const char *fmt, ...);",
        _console_mbox_source(),
        "int main(void)",
        "{",
    ]
    for s, m in MEMBERS:
        lines.append(
            f'\tprintf("member {s} {m} %lu %lu\\n", (unsigned long)offsetof(struct {s}, {m}),'
            f" (unsigned long)sizeof(((struct {s} *)0)->{m}));"
        )
    for s in STRUCTS:
        lines.append(f'\tprintf("struct {s} %lu\\n", (unsigned long)sizeof(struct {s}));')
    for c in CONSTANTS:
        lines.append(f'\tprintf("const {c} %lu\\n", (unsigned long)({c}));')
    lines += ["\treturn 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    """Offsets and sizes as the host gcc sees the firmware headers."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot compile the layout probe against firmware/include")
    tmp = tmp_path_factory.mktemp("layout")
    src, exe = tmp / "layout.c", tmp / "layout"
    src.write_text(_program())
    # Same ABI-relevant flags as the firmware; no -D__ASSEMBLY__, so the C structs are visible.
    cmd = [
        gcc,
        "-O0",
        "-fno-pic",
        "-no-pie",
        "-mgeneral-regs-only",
        "-I",
        str(FIRMWARE / "include"),
        "-o",
        str(exe),
        str(src),
    ]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert res.returncode == 0, f"layout probe did not compile:\n{res.stderr}"
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    layout = {"member": {}, "struct": {}, "const": {}}
    for line in out.splitlines():
        kind, *rest = line.split()
        if kind == "member":
            s, m, off, size = rest
            layout["member"][(s, m)] = (int(off), int(size))
        else:
            name, value = rest
            layout[kind][name] = int(value)
    assert len(layout["member"]) == len(MEMBERS)
    return layout


@pytest.mark.parametrize("struct,member", MEMBERS, ids=[f"{s}.{m}" for s, m in MEMBERS])
def test_member_offset_and_size_match_dwarf(types, c_layout, struct, member):
    off, size = c_layout["member"][(struct, member)]
    assert types.offsetof(struct, member) == off
    assert types.struct(struct).member(member)[1].size == size


@pytest.mark.parametrize("struct", STRUCTS)
def test_struct_size_matches_dwarf(types, c_layout, struct):
    assert types.sizeof(struct) == c_layout["struct"][struct]


def test_constants_match_the_image(machine, c_layout):
    const = c_layout["const"]
    assert machine.thread_size == const["THREAD_SIZE"]
    assert machine.types.struct("task_struct").member("comm")[1].size == const["TASK_COMM_LEN"]
    assert len(machine.var("pcpu_hot")) == const["NR_CPUS"]
    assert len(machine.var("task_table")) == const["NR_TASKS"]


# Linux's x86_64 struct pt_regs (arch/x86/include/asm/ptrace.h), which entry code and the
# unwinder rely on: the hardware frame ip, cs, flags, sp, ss sits at the end.
LINUX_PT_REGS = {
    "r15": 0,
    "r14": 8,
    "r13": 16,
    "r12": 24,
    "bp": 32,
    "bx": 40,
    "r11": 48,
    "r10": 56,
    "r9": 64,
    "r8": 72,
    "ax": 80,
    "cx": 88,
    "dx": 96,
    "si": 104,
    "di": 112,
    "orig_ax": 120,
    "ip": 128,
    "cs": 136,
    "flags": 144,
    "sp": 152,
    "ss": 160,
}


def test_pt_regs_is_linux_layout(types):
    assert types.sizeof("pt_regs") == 168
    assert types.offsetof("pt_regs", "ip") == 128
    assert types.offsetof("pt_regs", "cs") == 136
    assert types.offsetof("pt_regs", "flags") == 144
    assert types.offsetof("pt_regs", "sp") == 152
    assert {m: off for m, (off, _t) in types.struct("pt_regs").members.items()} == LINUX_PT_REGS


def test_inactive_task_frame_is_linux_layout(types):
    # arch/x86/include/asm/switch_to.h (x86_64, without the frame-pointer-less padding)
    frame = types.struct("inactive_task_frame")
    assert list(frame.members) == ["r15", "r14", "r13", "r12", "bx", "bp", "ret_addr"]
    assert types.offsetof("inactive_task_frame", "bp") == 40
    assert types.offsetof("inactive_task_frame", "ret_addr") == 48
    assert types.sizeof("inactive_task_frame") == 56


def test_thread_info_is_first_in_task_struct(types):
    # CONFIG_THREAD_INFO_IN_TASK: current's flags are at offset 0 of task_struct.
    assert types.offsetof("task_struct", "thread_info.flags") == 0


def test_scalar_kinds_from_dwarf(types):
    _, t = types.struct("task_struct").member("__state")
    assert t.kind == "base" and t.signed and t.size == 8
    _, t = types.struct("task_struct").member("patch_state")
    assert t.kind == "base" and t.signed and t.size == 4
    _, t = types.struct("pcpu_hot").member("current_task")
    assert t.kind == "pointer" and t.target is types.struct("task_struct")
    _, t = types.struct("task_struct").member("comm")
    assert t.kind == "array" and t.count == 16 and t.target.size == 1


def test_missing_struct_member_enum_are_einval(types):
    from klpemu.errors import KlpemuError

    for call in (
        lambda: types.struct("no_such_struct"),
        lambda: types.offsetof("pt_regs", "rip"),
        lambda: types.enum("NO_SUCH_ENUMERATOR"),
        lambda: types.offsetof("task_struct", "thread.nope"),
    ):
        with pytest.raises(KlpemuError) as e:
            call()
        assert e.value.errno == 22
