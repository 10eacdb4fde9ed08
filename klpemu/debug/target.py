"""The x86-64 target description gdb reads (qXfer:features:read) and the register file it
describes: gdb's i386 core, sse and segments features, in their order, so that `g` packets,
register numbers and the XML come from one table.

The kernel does not use x87 or SSE state here, so those registers read as their reset values
and writes to them are refused; fs_base and gs_base are real (per-CPU data is %gs-relative).
"""

from __future__ import annotations

from typing import NamedTuple

from unicorn import x86_const as x


class Reg(NamedTuple):
    name: str
    bits: int
    type: str
    uc: int | None  # the Unicorn register, None for state the CPUs do not keep (x87, SSE)
    feature: str
    group: str = ""
    reset: int = 0


def _core() -> list[Reg]:
    core = "org.gnu.gdb.i386.core"
    gprs = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [f"r{i}" for i in range(8, 16)]
    regs = [
        Reg(n, 64, "data_ptr" if n in ("rbp", "rsp") else "int64", getattr(x, f"UC_X86_REG_{n.upper()}"), core)
        for n in gprs
    ]
    regs.append(Reg("rip", 64, "code_ptr", x.UC_X86_REG_RIP, core))
    regs.append(Reg("eflags", 32, "i386_eflags", x.UC_X86_REG_EFLAGS, core))
    for seg in ("cs", "ss", "ds", "es", "fs", "gs"):
        regs.append(Reg(seg, 32, "int32", getattr(x, f"UC_X86_REG_{seg.upper()}"), core))
    regs += [Reg(f"st{i}", 80, "i387_ext", None, core) for i in range(8)]
    fpu = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
    resets = {"fctrl": 0x37F, "ftag": 0xFFFF}
    regs += [Reg(n, 32, "int", None, core, "float", resets.get(n, 0)) for n in fpu]
    return regs


def _sse() -> list[Reg]:
    sse = "org.gnu.gdb.i386.sse"
    regs = [Reg(f"xmm{i}", 128, "vec128", None, sse) for i in range(16)]
    regs.append(Reg("mxcsr", 32, "i386_mxcsr", None, sse, "vector", 0x1F80))
    return regs


def _segments() -> list[Reg]:
    seg = "org.gnu.gdb.i386.segments"
    return [Reg("fs_base", 64, "int", x.UC_X86_REG_FS_BASE, seg), Reg("gs_base", 64, "int", x.UC_X86_REG_GS_BASE, seg)]


REGS: list[Reg] = _core() + _sse() + _segments()
REGNUM = {r.name: i for i, r in enumerate(REGS)}

_EFLAGS = [
    ("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9), ("DF", 10), ("OF", 11),
    ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21),
]  # fmt: skip
_MXCSR = [
    ("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6),
    ("IM", 7), ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15),
]  # fmt: skip

_TYPES = {
    "org.gnu.gdb.i386.core": "\n".join(
        ['  <flags id="i386_eflags" size="4">']
        + [f'    <field name="{n}" start="{b}" end="{b}"/>' for n, b in _EFLAGS]
        + ["  </flags>"]
    ),
    "org.gnu.gdb.i386.sse": "\n".join(
        [
            '  <vector id="v8bf16" type="bfloat16" count="8"/>',
            '  <vector id="v4f" type="ieee_single" count="4"/>',
            '  <vector id="v2d" type="ieee_double" count="2"/>',
            '  <vector id="v16i8" type="int8" count="16"/>',
            '  <vector id="v8i16" type="int16" count="8"/>',
            '  <vector id="v4i32" type="int32" count="4"/>',
            '  <vector id="v2i64" type="int64" count="2"/>',
            '  <union id="vec128">',
        ]
        + [
            f'    <field name="{n}" type="{t}"/>'
            for n, t in (
                ("v8_bfloat16", "v8bf16"),
                ("v4_float", "v4f"),
                ("v2_double", "v2d"),
                ("v16_int8", "v16i8"),
                ("v8_int16", "v8i16"),
                ("v4_int32", "v4i32"),
                ("v2_int64", "v2i64"),
                ("uint128", "uint128"),
            )
        ]
        + ["  </union>", '  <flags id="i386_mxcsr" size="4">']
        + [f'    <field name="{n}" start="{b}" end="{b}"/>' for n, b in _MXCSR]
        + ["  </flags>"]
    ),
}


def _feature_xml(feature: str) -> str:
    lines = [f'<feature name="{feature}">']
    if feature in _TYPES:
        lines.append(_TYPES[feature])
    for i, r in enumerate(REGS):
        if r.feature == feature:
            group = f' group="{r.group}"' if r.group else ""
            lines.append(f'  <reg name="{r.name}" bitsize="{r.bits}" type="{r.type}" regnum="{i}"{group}/>')
    lines.append("</feature>")
    return "\n".join(lines)


def target_xml() -> str:
    features = dict.fromkeys(r.feature for r in REGS)
    return "\n".join(
        [
            '<?xml version="1.0"?>',
            '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
            '<target version="1.0">',
            "<architecture>i386:x86-64</architecture>",
            *(_feature_xml(f) for f in features),
            "</target>",
        ]
    )


def read_reg(ctx, n: int) -> bytes:
    """Register n of a CPU's saved context, in target byte order."""
    r = REGS[n]
    value = r.reset if r.uc is None else ctx.reg_read(r.uc)
    return (value & ((1 << r.bits) - 1)).to_bytes(r.bits // 8, "little")


def write_reg(ctx, n: int, data: bytes) -> bool:
    """Set register n; False for the registers the CPUs do not keep (x87, SSE), unless data
    is what they read as anyway (gdb's `G` writes every register back)."""
    r = REGS[n]
    value = int.from_bytes(data, "little")
    if r.uc is None:
        return value == r.reset
    ctx.reg_write(r.uc, value)
    return True


def reg_size(n: int) -> int:
    return REGS[n].bits // 8
