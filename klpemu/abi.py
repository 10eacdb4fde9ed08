"""The constants this package shares with the firmware kernel. Generated from the image's
DWARF by `python -m klpemu.machine.abi_gen`; do not edit (tests/test_abi.py checks it)."""

from __future__ import annotations

from typing import Final

# struct ftrace_ops.flags (include/linux/ftrace.h)
FTRACE_OPS_FL: Final[dict[str, int]] = {
    "ENABLED": 0x1,
    "DYNAMIC": 0x2,
    "SAVE_REGS": 0x4,
    "SAVE_REGS_IF_SUPPORTED": 0x8,
    "RECURSION": 0x10,
    "STUB": 0x20,
    "INITIALIZED": 0x40,
    "DELETED": 0x80,
    "ADDING": 0x100,
    "REMOVING": 0x200,
    "MODIFYING": 0x400,
    "ALLOC_TRAMP": 0x800,
    "IPMODIFY": 0x1000,
    "PID": 0x2000,
    "RCU": 0x4000,
    "TRACE_ARRAY": 0x8000,
    "PERMANENT": 0x10000,
    "DIRECT": 0x20000,
}
FTRACE_OPS_FL_ENABLED: Final = 0x1
FTRACE_OPS_FL_DYNAMIC: Final = 0x2
FTRACE_OPS_FL_SAVE_REGS: Final = 0x4
FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED: Final = 0x8
FTRACE_OPS_FL_RECURSION: Final = 0x10
FTRACE_OPS_FL_STUB: Final = 0x20
FTRACE_OPS_FL_INITIALIZED: Final = 0x40
FTRACE_OPS_FL_DELETED: Final = 0x80
FTRACE_OPS_FL_ADDING: Final = 0x100
FTRACE_OPS_FL_REMOVING: Final = 0x200
FTRACE_OPS_FL_MODIFYING: Final = 0x400
FTRACE_OPS_FL_ALLOC_TRAMP: Final = 0x800
FTRACE_OPS_FL_IPMODIFY: Final = 0x1000
FTRACE_OPS_FL_PID: Final = 0x2000
FTRACE_OPS_FL_RCU: Final = 0x4000
FTRACE_OPS_FL_TRACE_ARRAY: Final = 0x8000
FTRACE_OPS_FL_PERMANENT: Final = 0x10000
FTRACE_OPS_FL_DIRECT: Final = 0x20000

# struct dyn_ftrace.flags (include/linux/ftrace.h)
FTRACE_FL: Final[dict[str, int]] = {
    "MODIFIED": 0x80000,
    "TOUCHED": 0x100000,
    "CALL_OPS_EN": 0x200000,
    "CALL_OPS": 0x400000,
    "DIRECT_EN": 0x800000,
    "DIRECT": 0x1000000,
    "DISABLED": 0x2000000,
    "IPMODIFY": 0x4000000,
    "TRAMP_EN": 0x8000000,
    "TRAMP": 0x10000000,
    "REGS_EN": 0x20000000,
    "REGS": 0x40000000,
    "ENABLED": 0x80000000,
}
FTRACE_FL_MODIFIED: Final = 0x80000
FTRACE_FL_TOUCHED: Final = 0x100000
FTRACE_FL_CALL_OPS_EN: Final = 0x200000
FTRACE_FL_CALL_OPS: Final = 0x400000
FTRACE_FL_DIRECT_EN: Final = 0x800000
FTRACE_FL_DIRECT: Final = 0x1000000
FTRACE_FL_DISABLED: Final = 0x2000000
FTRACE_FL_IPMODIFY: Final = 0x4000000
FTRACE_FL_TRAMP_EN: Final = 0x8000000
FTRACE_FL_TRAMP: Final = 0x10000000
FTRACE_FL_REGS_EN: Final = 0x20000000
FTRACE_FL_REGS: Final = 0x40000000
FTRACE_FL_ENABLED: Final = 0x80000000

# struct kprobe.flags (include/linux/kprobes.h)
KPROBE_FLAG: Final[dict[str, int]] = {
    "GONE": 0x1,
    "DISABLED": 0x2,
    "OPTIMIZED": 0x4,
    "FTRACE": 0x8,
}
KPROBE_FLAG_GONE: Final = 0x1
KPROBE_FLAG_DISABLED: Final = 0x2
KPROBE_FLAG_OPTIMIZED: Final = 0x4
KPROBE_FLAG_FTRACE: Final = 0x8

# thread_info.flags bit numbers (arch/x86/include/asm/thread_info.h)
TIF: Final[dict[str, int]] = {
    "NOTIFY_RESUME": 0x1,
    "SIGPENDING": 0x2,
    "NEED_RESCHED": 0x3,
    "PATCH_PENDING": 0xD,
}
TIF_NOTIFY_RESUME: Final = 0x1
TIF_SIGPENDING: Final = 0x2
TIF_NEED_RESCHED: Final = 0x3
TIF_PATCH_PENDING: Final = 0xD

# task_struct.flags (include/linux/sched.h)
PF: Final[dict[str, int]] = {
    "IDLE": 0x2,
    "EXITING": 0x4,
    "KTHREAD": 0x200000,
}
PF_IDLE: Final = 0x2
PF_EXITING: Final = 0x4
PF_KTHREAD: Final = 0x200000

# task_struct.__state (include/linux/sched.h)
TASK_STATE: Final[dict[str, int]] = {
    "RUNNING": 0x0,
    "INTERRUPTIBLE": 0x1,
    "UNINTERRUPTIBLE": 0x2,
    "DEAD": 0x80,
}
TASK_RUNNING: Final = 0x0
TASK_INTERRUPTIBLE: Final = 0x1
TASK_UNINTERRUPTIBLE: Final = 0x2
TASK_DEAD: Final = 0x80

# enum kprobe_emulate_op: how a probed branch is emulated
KPROBE_EMULATE: Final[dict[str, int]] = {
    "NONE": 0x0,
    "IFMODIFIERS": 0x1,
    "RET": 0x2,
    "CALL": 0x3,
    "JMP": 0x4,
    "JCC": 0x5,
    "LOOP": 0x6,
    "CALL_INDIRECT": 0x7,
    "JMP_INDIRECT": 0x8,
}
KPROBE_EMULATE_NONE: Final = 0x0
KPROBE_EMULATE_IFMODIFIERS: Final = 0x1
KPROBE_EMULATE_RET: Final = 0x2
KPROBE_EMULATE_CALL: Final = 0x3
KPROBE_EMULATE_JMP: Final = 0x4
KPROBE_EMULATE_JCC: Final = 0x5
KPROBE_EMULATE_LOOP: Final = 0x6
KPROBE_EMULATE_CALL_INDIRECT: Final = 0x7
KPROBE_EMULATE_JMP_INDIRECT: Final = 0x8

# enum fetch_op: a probe argument's fetch program (include/linux/trace_probe.h)
FETCH_OP: Final[dict[str, int]] = {
    "NOP": 0x0,
    "REG": 0x1,
    "STACK": 0x2,
    "STACKP": 0x3,
    "RETVAL": 0x4,
    "IMM": 0x5,
    "COMM": 0x6,
    "ARG": 0x7,
    "FOFFS": 0x8,
    "DATA": 0x9,
    "EDATA": 0xA,
    "DEREF": 0xB,
    "UDEREF": 0xC,
    "ST_RAW": 0xD,
    "ST_MEM": 0xE,
    "ST_UMEM": 0xF,
    "ST_STRING": 0x10,
    "ST_USTRING": 0x11,
    "ST_SYMSTR": 0x12,
    "ST_EDATA": 0x13,
    "MOD_BF": 0x14,
    "LP_ARRAY": 0x15,
    "TP_ARG": 0x16,
    "END": 0x17,
}
FETCH_OP_NOP: Final = 0x0
FETCH_OP_REG: Final = 0x1
FETCH_OP_STACK: Final = 0x2
FETCH_OP_STACKP: Final = 0x3
FETCH_OP_RETVAL: Final = 0x4
FETCH_OP_IMM: Final = 0x5
FETCH_OP_COMM: Final = 0x6
FETCH_OP_ARG: Final = 0x7
FETCH_OP_FOFFS: Final = 0x8
FETCH_OP_DATA: Final = 0x9
FETCH_OP_EDATA: Final = 0xA
FETCH_OP_DEREF: Final = 0xB
FETCH_OP_UDEREF: Final = 0xC
FETCH_OP_ST_RAW: Final = 0xD
FETCH_OP_ST_MEM: Final = 0xE
FETCH_OP_ST_UMEM: Final = 0xF
FETCH_OP_ST_STRING: Final = 0x10
FETCH_OP_ST_USTRING: Final = 0x11
FETCH_OP_ST_SYMSTR: Final = 0x12
FETCH_OP_ST_EDATA: Final = 0x13
FETCH_OP_MOD_BF: Final = 0x14
FETCH_OP_LP_ARRAY: Final = 0x15
FETCH_OP_TP_ARG: Final = 0x16
FETCH_OP_END: Final = 0x17

# struct trace_event_file.flags (include/linux/trace_events.h)
EVENT_FILE_FL: Final[dict[str, int]] = {
    "SOFT_MODE": 0x1,
    "SOFT_DISABLED": 0x2,
    "TRIGGER_MODE": 0x4,
    "FILTERED": 0x8,
    "PID_FILTER": 0x10,
    "TRIGGER_COND": 0x20,
}
EVENT_FILE_FL_SOFT_MODE: Final = 0x1
EVENT_FILE_FL_SOFT_DISABLED: Final = 0x2
EVENT_FILE_FL_TRIGGER_MODE: Final = 0x4
EVENT_FILE_FL_FILTERED: Final = 0x8
EVENT_FILE_FL_PID_FILTER: Final = 0x10
EVENT_FILE_FL_TRIGGER_COND: Final = 0x20

# enum filter_op_ids: an event filter's postfix program
FILTER_OP: Final[dict[str, int]] = {
    "PRED": 0x0,
    "AND": 0x1,
    "OR": 0x2,
    "NOT": 0x3,
    "END": 0x4,
}
FILTER_OP_PRED: Final = 0x0
FILTER_OP_AND: Final = 0x1
FILTER_OP_OR: Final = 0x2
FILTER_OP_NOT: Final = 0x3
FILTER_OP_END: Final = 0x4

# enum filter_pred_fn: what a filter predicate reads
FILTER_PRED_FN: Final[dict[str, int]] = {
    "NOP": 0x0,
    "S64": 0x1,
    "U64": 0x2,
    "STRING": 0x3,
    "STRLOC": 0x4,
    "COMM": 0x5,
    "CPU": 0x6,
}
FILTER_PRED_FN_NOP: Final = 0x0
FILTER_PRED_FN_S64: Final = 0x1
FILTER_PRED_FN_U64: Final = 0x2
FILTER_PRED_FN_STRING: Final = 0x3
FILTER_PRED_FN_STRLOC: Final = 0x4
FILTER_PRED_FN_COMM: Final = 0x5
FILTER_PRED_FN_CPU: Final = 0x6

# enum filter_cmp: how a filter predicate compares
FILTER_CMP: Final[dict[str, int]] = {
    "EQ": 0x0,
    "NE": 0x1,
    "LT": 0x2,
    "LE": 0x3,
    "GT": 0x4,
    "GE": 0x5,
    "BAND": 0x6,
    "GLOB": 0x7,
}
FILTER_CMP_EQ: Final = 0x0
FILTER_CMP_NE: Final = 0x1
FILTER_CMP_LT: Final = 0x2
FILTER_CMP_LE: Final = 0x3
FILTER_CMP_GT: Final = 0x4
FILTER_CMP_GE: Final = 0x5
FILTER_CMP_BAND: Final = 0x6
FILTER_CMP_GLOB: Final = 0x7

# enum event_trigger_type (include/linux/trace_events.h)
ETT: Final[dict[str, int]] = {
    "NONE": 0x0,
    "TRACE_ONOFF": 0x1,
    "SNAPSHOT": 0x2,
    "EVENT_ENABLE": 0x4,
    "STACKTRACE": 0x8,
}
ETT_NONE: Final = 0x0
ETT_TRACE_ONOFF: Final = 0x1
ETT_SNAPSHOT: Final = 0x2
ETT_EVENT_ENABLE: Final = 0x4
ETT_STACKTRACE: Final = 0x8

HYPERCALL_PORT: Final = 244
MCOUNT_INSN_SIZE: Final = 5
KLP_RUN_CALLBACK: Final = 1
KLP_TRANSITION_IDLE: Final = -1
KLP_TRANSITION_UNPATCHED: Final = 0
KLP_TRANSITION_PATCHED: Final = 1
MODULE_REF_BASE: Final = 1
FTRACE_REF_MAX: Final = 524287
MAX_INSN_SIZE: Final = 16
KPROBE_HASH_BITS: Final = 6
KPROBE_TABLE_SIZE: Final = 64
KRETPROBE_MAX_DATA_SIZE: Final = 4096
FETCH_NOP_SYMBOL: Final = 24
FETCH_INSN_MAX: Final = 16
PARAM_MAX_STACK: Final = 2048
PROBE_NOFAULT_RANGES: Final = 32
EVENT_PID_MAX: Final = 32
FILTER_STACK_MAX: Final = 32
SAVED_CMDLINES_PID_MAP: Final = 1024
EVENT_ENABLED_CMDLINE: Final = 2
EVENT_ENABLED_PID_FORK: Final = 4
MODULE_NAME_LEN: Final = 56
TASK_COMM_LEN: Final = 16
SIZEOF_DYN_FTRACE: Final = 16

# struct pt_regs
PT_REGS_OFFSET: Final[dict[str, int]] = {
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

# struct dyn_ftrace
DYN_FTRACE_OFFSET: Final[dict[str, int]] = {
    "ip": 0,
    "flags": 8,
}

# struct ftrace_hash
FTRACE_HASH_OFFSET: Final[dict[str, int]] = {
    "count": 0,
    "ips": 8,
}

# struct list_head
LIST_HEAD_OFFSET: Final[dict[str, int]] = {
    "next": 0,
    "prev": 8,
}
