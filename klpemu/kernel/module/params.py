"""Module parameters: their types, parsing and the values sysfs shows (kernel/params.c)."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import KlpemuError
from ...machine.kstr import kbytes
from ..kstrtox import kstrtobool
from ..printk import LogLevel, log_store
from .internal import ModuleError

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from .internal import Module

CHARP_MAX = 1024


@dataclass(eq=False)
class Param:
    name: str
    type: str  # int, uint, long, ulong, short, ushort, bool, invbool, charp
    perm: int
    arg: int  # the guest variable


INT_TYPES = {
    "int": (4, True),
    "uint": (4, False),
    "long": (8, True),
    "ulong": (8, False),
    "short": (2, True),
    "ushort": (2, False),
}
PARAM_TYPES = (*INT_TYPES, "bool", "invbool", "charp", "array")
# module_param_array's struct kparam_array (include/linux/moduleparam.h): max, elemsize, num,
# type, elem.
KPARAM_ARRAY_MAX, KPARAM_ARRAY_ELEMSIZE, KPARAM_ARRAY_NUM, KPARAM_ARRAY_TYPE, KPARAM_ARRAY_ELEM = 0, 4, 8, 16, 24


@dataclass(frozen=True)
class _Array:
    max: int
    num: int  # where the count goes, or 0
    elem: Param  # the first element; the others follow at elemsize


def _array(m: Machine, p: Param) -> tuple[_Array, int]:
    mem = m.mem
    size = mem.read_u32(p.arg + KPARAM_ARRAY_ELEMSIZE)
    elem_type = mem.read_cstr(mem.read_u64(p.arg + KPARAM_ARRAY_TYPE), 32)
    elem = Param(p.name, elem_type, p.perm, mem.read_u64(p.arg + KPARAM_ARRAY_ELEM))
    return _Array(mem.read_u32(p.arg + KPARAM_ARRAY_MAX), mem.read_u64(p.arg + KPARAM_ARRAY_NUM), elem), size


def _element(a: _Array, size: int, i: int) -> Param:
    return Param(a.elem.name, a.elem.type, a.elem.perm, a.elem.arg + i * size)


def _kstrto(value: str, size: int, signed: bool) -> int:
    """kstrto<type>(s, 0): one number, base from its prefix, a trailing newline allowed."""
    s = value.removesuffix("\n")
    neg = False
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("-") and signed:
        neg, s = True, s[1:]
    if s[:2].lower() == "0x" and len(s) > 2:
        base, digits = 16, s[2:]
    elif s.startswith("0") and len(s) > 1:
        base, digits = 8, s[1:]
    else:
        base, digits = 10, s
    if not digits or any(c not in "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)] for c in digits):
        raise KlpemuError("invalid", errno.EINVAL)
    n = int(digits, base)
    n = -n if neg else n
    bits = size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= n <= hi:
        raise KlpemuError("out of range", errno.ERANGE)
    return n


def _kstrtobool(value: str | None) -> bool:
    if value is None:  # a bool parameter named alone means true
        return True
    return kstrtobool(value)


def param_get(m: Machine, mod: Module, p: Param) -> str:
    """param_get_<type>: the text of /sys/module/<mod>/parameters/<param>."""
    mem = m.mem
    if p.type in INT_TYPES:
        size, signed = INT_TYPES[p.type]
        return f"{int.from_bytes(mem.read(p.arg, size), 'little', signed=signed)}\n"
    if p.type in ("bool", "invbool"):
        value = mem.read(p.arg, 1)[0] != 0
        return ("Y" if value != (p.type == "invbool") else "N") + "\n"
    if p.type == "charp":
        ptr = mem.read_u64(p.arg)
        return (mem.read_cstr(ptr, CHARP_MAX + 1) if ptr else "(null)") + "\n"
    if p.type == "array":  # param_array_get: the values given, comma-separated
        a, size = _array(m, p)
        n = mem.read_u32(a.num) if a.num else a.max
        return ",".join(param_get(m, mod, _element(a, size, i)).rstrip("\n") for i in range(n)) + "\n"
    raise KlpemuError(f"{mod.name}: parameter {p.name} has unknown type {p.type}", errno.EINVAL)


def param_set(m: Machine, mod: Module, p: Param, value: str | None) -> None:
    """param_set_<type>: raises KlpemuError with the errno Linux's setter returns."""
    if p.type in INT_TYPES:
        if value is None:
            raise KlpemuError("missing value", errno.EINVAL)
        size, signed = INT_TYPES[p.type]
        n = _kstrto(value, size, signed)
        m.mem.write(p.arg, n.to_bytes(size, "little", signed=signed))
    elif p.type in ("bool", "invbool"):
        b = _kstrtobool(value)
        m.mem.write(p.arg, bytes([int(b != (p.type == "invbool"))]))
    elif p.type == "charp":
        if value is None:
            raise KlpemuError("missing value", errno.EINVAL)
        raw = kbytes(value)
        if len(raw) > CHARP_MAX:
            raise KlpemuError("too large", errno.ENOSPC)
        addr = m.heap.kzalloc(len(raw) + 1)
        m.mem.write(addr, raw + b"\0")
        m.mem.write_u64(p.arg, addr)
        old = mod.charp_strings.pop(p.arg, None)
        if old is not None:
            m.heap.free(old)
        mod.charp_strings[p.arg] = addr
    elif p.type == "array":  # param_array_set: every element, then the count
        a, size = _array(m, p)
        values = (value or "").removesuffix("\n").split(",")
        if len(values) > a.max:
            log_store(m, f"{p.name}: can only take {a.max} arguments", LogLevel.ERR)
            raise KlpemuError("too many values", errno.EINVAL)
        for i, v in enumerate(values):
            param_set(m, mod, _element(a, size, i), v)
        if a.num:
            m.mem.write(a.num, len(values).to_bytes(4, "little"))
    else:
        raise KlpemuError(f"{mod.name}: parameter {p.name} has unknown type {p.type}", errno.EINVAL)


def parse_args(m: Machine, mod: Module, argv: list[str]) -> None:
    """parse_args for a module: unknown names are ignored with a warning, bad values refuse."""
    by_name = {p.name.replace("-", "_"): p for p in mod.params}
    for arg in argv:
        name, eq, value = arg.partition("=")
        p = by_name.get(name.replace("-", "_"))
        if p is None:
            log_store(m, f"{mod.name}: unknown parameter '{name}' ignored")
            continue
        try:
            param_set(m, mod, p, value if eq else None)
        except KlpemuError as e:
            if e.errno == errno.ENOSPC:
                log_store(m, f"{mod.name}: `{value}' too large for parameter `{name}'", LogLevel.ERR)
            else:
                log_store(m, f"{mod.name}: `{value}' invalid for parameter `{name}'", LogLevel.ERR)
            raise ModuleError(f"{mod.name}: `{value}' invalid for parameter `{name}'", e.errno) from None


def destroy_params(m: Machine, mod: Module) -> None:
    """destroy_params: the strings charp parameters were given go back to the heap."""
    for addr in mod.charp_strings.values():
        m.heap.free(addr)
    mod.charp_strings.clear()
