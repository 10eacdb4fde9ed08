"""A kprobe event's line in `trace` (print_kprobe_event / print_kretprobe_event and
trace_probe_print_args): `NAME: (SYM+OFF/SIZE) arg=value ...`, or `NAME: (RET+OFF/SIZE <- FUNC)`,
each value printed as its type prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...machine.image import KernelImage
    from .trace_probe import FetchType, ProbeArg


def _number(raw: bytes, t: FetchType) -> int:
    return int.from_bytes(raw[: t.size], "little", signed=t.signed)


def format_value(image: KernelImage, t: FetchType, raw: bytes, record: bytes) -> str:
    """One value: `%u`/`%d`/`0x%x`, `'%c'`, `%pS`, or a string from its __data_loc."""
    if t.is_string:
        loc = int.from_bytes(raw[:4], "little")
        length, offset = loc >> 16, loc & 0xFFFF
        if not length:
            return "(fault)"
        text = record[offset : offset + length].split(b"\0", 1)[0]
        return '"' + text.decode("utf-8", "backslashreplace") + '"'
    value = _number(raw, t)
    if t.name == "symbol":
        return image.symbolize(value) if image.function_at(value) else f"0x{value:x}"
    if t.name == "char":
        return f"'{chr(value)}'"
    if t.name.startswith("x"):
        return f"0x{value:x}"
    return str(value)


def print_args(image: KernelImage, args: list[ProbeArg], base: int, record: bytes) -> str:
    out = []
    for a in args:
        at = base + a.offset
        if a.count:
            values = [format_value(image, a.type, record[at + i * a.type.size :], record) for i in range(a.count)]
            out.append(f" {a.name}={{{','.join(values)}}}")
        else:
            out.append(f" {a.name}={format_value(image, a.type, record[at:], record)}")
    return "".join(out)


def print_kprobe(image: KernelImage, name: str, args: list[ProbeArg], record: bytes) -> str:
    ip = int.from_bytes(record[8:16], "little")
    return f"{name}: ({image.symbolize(ip)})" + print_args(image, args, 16, record)


def print_kretprobe(image: KernelImage, name: str, args: list[ProbeArg], record: bytes) -> str:
    func = int.from_bytes(record[8:16], "little")
    ret_ip = int.from_bytes(record[16:24], "little")
    sym = image.function_at(func)
    callee = sym.name if sym is not None else f"0x{func:x}"
    return f"{name}: ({image.symbolize(ret_ip)} <- {callee})" + print_args(image, args, 24, record)
