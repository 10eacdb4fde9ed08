"""A module file's checks before layout: ELF validity, .modinfo and its taints (kernel/module/main.c)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ...machine.kstr import kstr
from ..panic import TAINT_LIVEPATCH, TAINT_OOT_MODULE, TAINT_PROPRIETARY_MODULE
from ..printk import LogLevel, log_store

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..panic import Taint

ET_REL, EM_X86_64 = 1, 62
SHT_NOBITS = 8
ELF64_EHDR_SIZE, ELF64_SHDR_SIZE = 64, 64
# license_is_gpl_compatible (include/linux/license.h)
GPL_COMPATIBLE = ("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL")


def elf_validity_check(data: bytes) -> str | None:
    """elf_validity_check: Linux's message for a file it refuses (-ENOEXEC), or None."""
    if len(data) < ELF64_EHDR_SIZE:
        return f"Invalid ELF header len {len(data)}"
    if data[:4] != b"\x7fELF":
        return "Invalid ELF header magic: != \x7fELF"
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != ET_REL:
        return f"Invalid ELF header type: {e_type} != {ET_REL}"
    if e_machine != EM_X86_64 or data[4] != 2 or data[5] != 1:  # ELFCLASS64, little-endian
        return f"Invalid architecture in ELF header: {e_machine}"
    (e_shoff,) = struct.unpack_from("<Q", data, 40)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 58)
    if e_shentsize != ELF64_SHDR_SIZE:
        return "Invalid ELF section header size"
    if e_shoff >= len(data) or e_shnum * ELF64_SHDR_SIZE > len(data) - e_shoff:
        return "Invalid ELF section header overflow"
    if e_shnum == 0 or e_shstrndx >= e_shnum:
        return f"Invalid ELF section name index: {e_shstrndx} || e_shstrndx ({e_shstrndx}) >= e_shnum ({e_shnum})"
    for i in range(e_shnum):
        (sh_type,) = struct.unpack_from("<I", data, e_shoff + i * ELF64_SHDR_SIZE + 4)
        sh_offset, sh_size = struct.unpack_from("<QQ", data, e_shoff + i * ELF64_SHDR_SIZE + 24)
        if sh_type != SHT_NOBITS and sh_type != 0 and (sh_offset > len(data) or sh_size > len(data) - sh_offset):
            return f"Module len {len(data)} truncated"
    return None


def parse_modinfo(raw: bytes) -> dict[str, list[str]]:
    """The .modinfo section's `tag=value` strings, each tag with its values in order."""
    info: dict[str, list[str]] = {}
    for entry in raw.split(b"\0"):
        if b"=" in entry:
            tag, value = kstr(entry).split("=", 1)
            info.setdefault(tag, []).append(value)
    return info


def modinfo_name(raw: bytes) -> bytes | None:
    """The raw bytes of .modinfo's first `name=` (get_modinfo(info, "name")), or None."""
    for entry in raw.split(b"\0"):
        if entry.startswith(b"name="):
            return entry[len(b"name=") :]
    return None


def license_is_gpl_compatible(license: str) -> bool:
    return license in GPL_COMPATIBLE


def check_modinfo(m: Machine, taint: Taint, name: str, info: dict[str, list[str]]) -> int:
    """check_modinfo and module_license_taint_check: the taint bits the module sets, each added
    to the kernel's (add_taint_module). Each message is printed only while the kernel does not
    have its bit yet; the kernel stays tainted whether or not the load succeeds."""
    taints = 0
    if "intree" not in info:
        if not taint.test(TAINT_OOT_MODULE):
            log_store(m, f"{name}: loading out-of-tree module taints kernel.")
        taint.add(TAINT_OOT_MODULE, lockdep_now_unreliable=False)
        taints |= 1 << TAINT_OOT_MODULE
    if "livepatch" in info:
        if not taint.test(TAINT_LIVEPATCH):
            log_store(m, f"{name}: tainting kernel with TAINT_LIVEPATCH", LogLevel.NOTICE)
        taint.add(TAINT_LIVEPATCH, lockdep_now_unreliable=False)
        taints |= 1 << TAINT_LIVEPATCH
    license = (info.get("license") or ["unspecified"])[0]
    if not license_is_gpl_compatible(license):
        if not taint.test(TAINT_PROPRIETARY_MODULE):
            log_store(m, f"{name}: module license '{license}' taints kernel.")
        taint.add(TAINT_PROPRIETARY_MODULE, lockdep_now_unreliable=True)
        taints |= 1 << TAINT_PROPRIETARY_MODULE
    return taints
