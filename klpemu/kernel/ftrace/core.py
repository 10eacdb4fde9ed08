"""ftrace on the host: boot-time conversion of the fentry sites, and the records' state.

ftrace_init in the guest asks for this through HC_FTRACE_INIT, from start_kernel, as Linux's
ftrace_init runs there: every __mcount_loc site must hold `call __fentry__`; each becomes a
NOP5 and gets a record. A site that does not match is reported as ftrace_bug reports it, and
ftrace is disabled for good (later registrations fail with -ENODEV).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..printk import log_store
from ..text_poke import NOP5, TextPoke, call_insn
from .records import Records

if TYPE_CHECKING:
    from ...machine.machine import Machine

LOGLEVEL_INFO = 6
LOGLEVEL_WARNING = 4
ENTRIES_PER_PAGE = 4096 // 16
EINVAL, EFAULT = 22, 14


def _ins(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


class Ftrace:
    def __init__(self, machine: "Machine", text_poke: TextPoke):
        self.m = machine
        self.text_poke = text_poke
        self.records = Records(machine)
        machine.hypercalls[machine.types.enum("HC_FTRACE_INIT")] = self._hc_init

    # --- state kept in the guest -----------------------------------------------------------------

    @property
    def disabled(self) -> bool:
        return bool(self.m.read_var_int("ftrace_disabled"))

    def _kill(self) -> None:
        """ftrace_kill: nothing may be traced any more."""
        self.m.mem.write(self.m.var_addr("ftrace_disabled"), (1).to_bytes(4, "little"))

    def _log(self, text: str, level: int = LOGLEVEL_INFO) -> None:
        log_store(self.m, text, level)

    # --- boot ----------------------------------------------------------------------------------

    def _hc_init(self, *_args) -> int:
        self.init()
        return 0

    def init(self) -> None:
        m = self.m
        sites = m.image.mcount_loc
        if not sites:
            self._log("ftrace: No functions to be traced?")
            self._kill()
            return
        pages = -(-len(sites) // ENTRIES_PER_PAGE)
        self._log(f"ftrace: allocating {len(sites)} entries in {pages} pages")
        self._log(f"ftrace: allocated {pages} pages with 1 groups")
        fentry = m.image.addr("__fentry__")
        for ip in sites:
            expected = call_insn(ip, fentry)
            if not (m.mem.is_mapped(ip) and m.mem.is_mapped(ip + 4)):
                self._bug(-EFAULT, ip, None, expected)
                return
            actual = m.mem.read(ip, len(expected))
            if actual != expected:
                self._bug(-EINVAL, ip, actual, expected)
                return
            self.text_poke.write_early(ip, NOP5)  # ftrace_make_nop: no CPU runs this yet
            self.records.append(ip, 0)

    def _bug(self, failed: int, ip: int, actual: bytes | None, expected: bytes) -> None:
        """ftrace_bug(): the report Linux prints, then ftrace is killed."""
        sym = self.m.image.symbolize(ip)
        self._log("------------[ ftrace bug ]------------")
        if failed == -EINVAL:
            self._log("ftrace failed to modify ")
            self._log(f"[<{ip:016x}>] {sym}")
            self._log(f" actual:   {_ins(actual or b'')}")
            self._log(f" expected: {_ins(expected)}")
        else:
            self._log("ftrace faulted on modifying ")
            self._log(f"[<{ip:016x}>] {sym}")
        self._log("Initializing ftrace call sites")
        self._log("ftrace record flags: 0")
        self._log(" (0)   ")
        self._log(f" expected tramp: {ip:x}")
        self._log("------------[ cut here ]------------", LOGLEVEL_WARNING)
        self._log("WARNING: CPU: 0 PID: 0 at kernel/trace/ftrace.c ftrace_bug", LOGLEVEL_WARNING)
        self._kill()
