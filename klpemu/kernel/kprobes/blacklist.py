"""The functions no probe may go in: kprobe_blacklist and within_kprobe_blacklist (kernel/kprobes.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ...machine.machine import Machine
    from ..module import Module


class BlacklistEntry(NamedTuple):
    start: int
    end: int
    name: str


class KprobeBlacklist:
    def __init__(self, machine: Machine):
        self.m = machine
        self._entries: list[BlacklistEntry] | None = None

    @property
    def entries(self) -> list[BlacklistEntry]:
        """In kprobe_blacklist's order: the NOKPROBE_SYMBOL functions, then every function of
        the .kprobes.text and .entry.text areas, as populate_kprobe_blacklist lists them; then
        those of loaded modules, added as each came."""
        if self._entries is None:
            img = self.m.image
            out: list[BlacklistEntry] = []
            start, stop = img.addr("__start_kprobe_blacklist"), img.addr("__stop_kprobe_blacklist")
            self._add_ksyms(out, start, (stop - start) // 8)
            for lo_name, hi_name in (
                ("__kprobes_text_start", "__kprobes_text_end"),
                ("__entry_text_start", "__entry_text_end"),
            ):
                self._add_area(out, img.addr(lo_name), img.addr(hi_name))
            self._entries = out
        return self._entries

    def within(self, addr: int) -> str | None:
        """within_kprobe_blacklist, naming the function addr is in."""
        for start, end, name in self.entries:
            if start <= addr < end:
                return name
        return None

    def _add_ksyms(self, out: list[BlacklistEntry], array: int, count: int) -> None:
        """kprobe_add_ksym_blacklist for each address in a NOKPROBE_SYMBOL array."""
        for at in range(array, array + 8 * count, 8):
            sym = self.m.image.function_at(self.m.mem.read_u64(at))
            if sym is not None:
                out.append(BlacklistEntry(sym.addr, sym.addr + sym.size, sym.name))

    def _add_area(self, out: list[BlacklistEntry], lo: int, hi: int) -> None:
        """kprobe_add_area_blacklist: every function in [lo, hi)."""
        at = lo
        while at < hi:
            sym = self.m.image.function_at(at)
            if sym is None:
                at += 1
                continue
            end = min(sym.addr + sym.size, hi)
            out.append(BlacklistEntry(sym.addr, end, sym.name))
            at = end

    def add_module(self, mod: Module) -> None:
        """kprobes_module_callback, MODULE_STATE_COMING: the module's NOKPROBE_SYMBOLs and its
        .kprobes.text join the list."""
        v = mod.struct
        entries = self.entries
        self._add_ksyms(entries, v.kprobe_blacklist, v.num_kprobe_blacklist)
        if v.kprobes_text_start:
            self._add_area(entries, v.kprobes_text_start, v.kprobes_text_start + v.kprobes_text_size)

    def remove_module(self, mod: Module) -> None:
        """kprobes_module_callback, MODULE_STATE_GOING: kprobe_remove_area_blacklist, which
        goes by start address."""
        m = self.m
        v = mod.struct
        areas = [
            (e, e + 1) for e in (m.mem.read_u64(v.kprobe_blacklist + 8 * i) for i in range(v.num_kprobe_blacklist))
        ]
        if v.kprobes_text_start:
            areas.append((v.kprobes_text_start, v.kprobes_text_start + v.kprobes_text_size))
        self.entries[:] = [b for b in self.entries if not any(lo <= b.start < hi for lo, hi in areas)]
