"""Stopping and stepping the running machine, as gdb does: break, tbreak, watch, delete,
info, continue, stepi, nexti, finish, regs, x and bt."""

from __future__ import annotations

import struct
from errno import EINVAL

from ..disasm import insn_at
from ..errors import KlpemuError
from .commands import no_arguments
from .core import Shell, UsageError, command
from .debugger import ShellDebugger, resolve_location

# x's units (gdb's b, h, w, g) and the struct formats of their integers
UNITS = {"b": 1, "h": 2, "w": 4, "g": 8}
SIGNED = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
UNSIGNED = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
MAX_STEPS = 100_000  # nexti and finish give up after this many instructions (Ctrl-C stops them)


def debugger(sh: Shell) -> ShellDebugger:
    """The shell's debugger on its current machine, made when first needed (after a reboot,
    made again)."""
    if sh.debugger is None or sh.debugger.machine is not sh.machine:
        sh.debugger = ShellDebugger(sh)
    return sh.debugger


def _options(args: list[str], names: tuple[str, ...]) -> tuple[list[str], dict[str, int]]:
    rest, values = [], {}
    it = iter(args)
    for arg in it:
        if arg in names:
            value = next(it, None)
            if value is None or not value.isdigit():
                raise UsageError(f"{arg} needs a number")
            values[arg] = int(value)
        else:
            rest.append(arg)
    return rest, values


def _set_breakpoint(sh: Shell, args: list[str], temporary: bool) -> int:
    words = args[0].split() if args else []
    rest, opts = _options(words, ("--cpu", "--task"))
    if len(rest) != 1:
        raise UsageError("one location expected: FUNC[+OFF], FUNC,SYMPOS, a module's function or an address")
    cpu = opts.get("--cpu")
    if cpu is not None and not 0 <= cpu < len(sh.machine.cpus):
        raise KlpemuError(f"no CPU {cpu}", EINVAL)
    addr, where = resolve_location(sh, rest[0])
    bp = debugger(sh).add_breakpoint(addr, where, cpu, opts.get("--task"), temporary)
    only = "".join(f" {name} {value}" for name, value in (("cpu", bp.cpu), ("task", bp.task)) if value is not None)
    label = "Temporary breakpoint" if temporary else "Breakpoint"
    print(f"{label} {bp.number} at 0x{addr:x}: {where}{only}", file=sh.out)
    return 0


@command("break", "break LOCATION [--cpu C] [--task PID]", raw=True)
def cmd_break(sh: Shell, args: list[str]) -> int:
    """Stop the machine when a CPU is about to run LOCATION: FUNC[+OFF], FUNC,SYMPOS (for a
    name more than one function has), a loaded module's function, or an address. --cpu and
    --task stop only there. A command that runs the machine (cat, sleep, insmod...) then stops
    and shows where; `continue` lets it go on to its end. Breakpoints are emulator hooks: the
    kernel's text, which ftrace checks and rewrites, is never changed."""
    return _set_breakpoint(sh, args, temporary=False)


@command("tbreak", "tbreak LOCATION [--cpu C] [--task PID]", raw=True)
def cmd_tbreak(sh: Shell, args: list[str]) -> int:
    """A breakpoint deleted when it is first hit."""
    return _set_breakpoint(sh, args, temporary=True)


@command("watch", "watch EXPR | watch ADDR [LEN]", raw=True)
def cmd_watch(sh: Shell, args: list[str]) -> int:
    """Stop after a CPU writes to an object, as gdb's watch: a C expression naming it
    (`watch pcpu_hot[1].current_task`, `watch jiffies`; its size must be 1, 2, 4 or 8 bytes), or
    LEN bytes (default 8) at an address. Writes by the host (the control plane) are not seen:
    only what guest code writes."""
    text = args[0] if args else ""
    words = text.split()
    if not words:
        raise UsageError("an expression, or an address and a length, expected")
    m = sh.machine
    if words[0][:1].isdigit():
        if len(words) > 2:
            raise UsageError("an address and a length expected")
        try:
            addr = int(words[0], 0)
            length = int(words[1], 0) if len(words) == 2 else 8
        except ValueError:
            raise UsageError("an address and a length expected") from None
        where = m.image.symbolize(addr)
    else:
        addr, length = _lvalue(sh, text)
        where = text
    wp = debugger(sh).add_watchpoint(addr, length, where)
    print(f"Watchpoint {wp.number}: {where} (0x{addr:x}, {wp.length} bytes)", file=sh.out)
    return 0


def _lvalue(sh: Shell, text: str) -> tuple[int, int]:
    """The address and size of the object a C expression names, for watch."""
    from ..debug.c_expression import evaluate
    from .cmd_inspect import kernel_program, registers

    obj = evaluate(kernel_program(sh).prog, text, registers(sh), lvalue=True)
    if obj.address_ is None:
        raise KlpemuError(f"Cannot watch constant value '{text}'.", EINVAL)
    size = obj.type_.size or 0
    if size not in (1, 2, 4, 8):
        raise KlpemuError(f"'{text}' is {size} bytes: a watchpoint covers 1, 2, 4 or 8", EINVAL)
    return obj.address_, size


@command("delete", "delete [N...]")
def cmd_delete(sh: Shell, args: list[str]) -> int:
    """Delete breakpoints and watchpoints by number; all of them without a number."""
    if any(not a.isdigit() for a in args):
        raise UsageError("breakpoint numbers expected")
    dbg = debugger(sh)
    if not args:
        dbg.delete()
    for a in args:
        dbg.delete(int(a))
    return 0


@command("info", "info break|cpus|tasks|registers")
def cmd_info(sh: Shell, args: list[str]) -> int:
    """break: the breakpoints and watchpoints; cpus: each CPU, its task and where it is (the
    stopped one marked *); tasks: every task with its state, CPU and patch_state; registers:
    as regs."""
    if len(args) != 1:
        raise UsageError("one of break, cpus, tasks, registers")
    what = args[0]
    if what in ("break", "breakpoints", "b", "watchpoints"):
        return _info_break(sh)
    if what == "cpus":
        return _info_cpus(sh)
    if what == "tasks":
        return _info_tasks(sh)
    if what in ("registers", "reg", "r"):
        return cmd_regs(sh, [])
    raise UsageError(f'undefined info command: "{what}"')


def _info_break(sh: Shell) -> int:
    points = debugger(sh).points
    if not points:
        print("No breakpoints or watchpoints.", file=sh.out)
        return 0
    print("Num     Type           Disp Hits Address            What", file=sh.out)
    for bp in points.values():
        disp = "del " if bp.temporary else "keep"
        only = "".join(f" {n} {v}" for n, v in (("cpu", bp.cpu), ("task", bp.task)) if v is not None)
        what = f"{bp.where}{only}" if bp.kind == "breakpoint" else f"{bp.where} ({bp.length} bytes, write)"
        print(f"{bp.number:<7} {bp.kind:<14} {disp} {bp.hits:<4} 0x{bp.addr:016x} {what}", file=sh.out)
    return 0


def _info_cpus(sh: Shell) -> int:
    m = sh.machine
    stopped = debugger(sh).stopped if sh.debugger is not None else None
    for cpu in m.cpus:
        mark = "*" if stopped is not None and stopped.cpu == cpu.index else " "
        if not cpu.online:
            print(f"{mark} cpu{cpu.index}  offline", file=sh.out)
            continue
        pid, comm = m.task_on(cpu.index)
        state = "halted" if cpu.halted else "running"
        rip = cpu.reg("rip")
        print(f"{mark} cpu{cpu.index}  {state:<8} {comm}:{pid}  {m.image.symbolize(rip)}", file=sh.out)
    return 0


def _info_tasks(sh: Shell) -> int:
    from ..kernel.tasks import all_tasks

    print("  PID COMM             S CPU PATCH_STATE", file=sh.out)
    for t in all_tasks(sh.machine):
        cpu = t.running_on
        print(
            f"{t.pid:>5} {t.comm:<16} {t.state_letter()} {'-' if cpu is None else cpu:>3} {t.patch_state}",
            file=sh.out,
        )
    return 0


@command("regs", "regs")
def cmd_regs(sh: Shell, args: list[str]) -> int:
    """The registers of the CPU the debugger looks at (the stopped one), with fs_base and
    gs_base (the kernel's per-CPU data is %gs-relative)."""
    from unicorn import x86_const as x

    no_arguments(args)
    cpu = sh.machine.cpus[sh.debug_cpu]
    regs = cpu.regs()
    regs["fs_base"] = cpu.ctx.reg_read(x.UC_X86_REG_FS_BASE)
    regs["gs_base"] = cpu.ctx.reg_read(x.UC_X86_REG_GS_BASE)
    for name, value in regs.items():
        note = f"  {sh.machine.image.symbolize(value)}" if name == "rip" else ""
        print(f"{name:<8} 0x{value:016x}{note}", file=sh.out)
    return 0


@command("continue", "continue")
def cmd_continue(sh: Shell, args: list[str]) -> int:
    """Let the stopped command run on (to its end, or the next breakpoint)."""
    no_arguments(args)
    dbg = debugger(sh)
    dbg.require_stop("continue")
    dbg.resume_requested = True
    return 0


@command("c", "c")
def cmd_c(sh: Shell, args: list[str]) -> int:
    """gdb's short name for continue."""
    return cmd_continue(sh, args)


def _count(args: list[str]) -> int:
    if len(args) > 1 or (args and not args[0].isdigit()):
        raise UsageError("an instruction count expected")
    return int(args[0]) if args else 1


@command("stepi", "stepi [N]")
def cmd_stepi(sh: Shell, args: list[str]) -> int:
    """Run N instructions (default 1) on the stopped CPU, the others frozen; each one is shown
    with its ftrace role (site, trampoline, handler, new function)."""
    n = _count(args)
    dbg = debugger(sh)
    stop = dbg.require_stop("stepi")
    for _ in range(n):
        dbg.step_report(dbg.engine.step(stop.cpu))
    return 0


@command("si", "si [N]")
def cmd_si(sh: Shell, args: list[str]) -> int:
    """gdb's short name for stepi."""
    return cmd_stepi(sh, args)


def _run_until(sh: Shell, dbg: ShellDebugger, cpu: int, done, what: str) -> None:
    """Step the stopped CPU until done(report, last_insn) says so, then show where it is."""
    report = dbg.require_stop(what)
    for _ in range(MAX_STEPS):
        text = report.insn
        report = dbg.engine.step(cpu)
        if done(report, text):
            dbg.step_report(report)
            return
    dbg.step_report(report)
    raise KlpemuError(f"{what}: gave up after {MAX_STEPS} instructions", EINVAL)


@command("nexti", "nexti")
def cmd_nexti(sh: Shell, args: list[str]) -> int:
    """One instruction, a call counting as one: its callee runs to its return."""
    no_arguments(args)
    dbg = debugger(sh)
    stop = dbg.require_stop("nexti")
    _, _, text = insn_at(sh.machine, stop.pc)
    if not text.startswith("call"):
        return cmd_stepi(sh, [])
    sp = sh.machine.cpus[stop.cpu].reg("rsp")

    def returned(_report, _insn: str) -> bool:
        # the call's return, wherever it lands: a livepatch's trampoline returns into the new
        # function, not after the call
        return sh.machine.cpus[stop.cpu].reg("rsp") >= sp

    _run_until(sh, dbg, stop.cpu, returned, "nexti")
    return 0


@command("finish", "finish")
def cmd_finish(sh: Shell, args: list[str]) -> int:
    """Run until the current function returns; show the value it returns (rax)."""
    no_arguments(args)
    dbg = debugger(sh)
    stop = dbg.require_stop("finish")
    cpu = sh.machine.cpus[stop.cpu]
    sp = cpu.reg("rsp")
    print(f"Run till exit from {stop.where}", file=sh.out)

    def returned(_report, insn: str) -> bool:
        # our own ret: the stack pointer rises above where it was when we started
        return insn.startswith("ret") and cpu.reg("rsp") > sp

    _run_until(sh, dbg, stop.cpu, returned, "finish")
    print(f"Value returned: rax = 0x{cpu.reg('rax'):x}", file=sh.out)
    return 0


@command("bt", "bt")
def cmd_bt(sh: Shell, args: list[str]) -> int:
    """The stack of the task on the debugger's CPU, walked by the reliable unwinder (the one
    the livepatch consistency model uses), with its verdict."""
    from ..kernel.stacktrace import unwind_task
    from ..kernel.tasks import Task

    no_arguments(args)
    m = sh.machine
    task = Task(m, m.pcpu(sh.debug_cpu).current_task)
    trace = unwind_task(m, task)
    for i, frame in enumerate(trace.frames):
        print(f"#{i:<2} 0x{frame.addr:016x} {frame.symbol}", file=sh.out)
    verdict = "reliable" if trace.reliable else f"unreliable: {trace.reason}"
    print(f"{task.comm}:{task.pid} on cpu{sh.debug_cpu}, stack {verdict}", file=sh.out)
    return 0


def _address(sh: Shell, text: str) -> int:
    """x's address: a number, a symbol, or (with drgn) any C expression."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    m = sh.machine
    if m.image.has(text):
        return m.image.addr(text)
    from ..debug.c_expression import evaluate
    from .cmd_inspect import kernel_program, registers

    obj = evaluate(kernel_program(sh).prog, text, registers(sh))
    if obj.type_.unaliased_kind().name in ("FUNCTION", "ARRAY", "STRUCT", "UNION"):
        if obj.address_ is None:
            raise KlpemuError(f"'{text}' has no address", EINVAL)
        return obj.address_  # as gdb: x of a function or an object starts at it
    return int(obj.value_())


@command("x", "x/NFU ADDR|SYMBOL|EXPR", raw=True)
def cmd_x(sh: Shell, args: list[str]) -> int:
    """Guest memory as gdb's x shows it: N units of U (b, h, w, g) in format F (x, d, u, o, t,
    c), or N instructions (i) or strings (s), from an address, a symbol or an expression."""
    fmt = args[0][1:] if args and args[0].startswith("/") else ""
    rest = args[1:] if fmt else args
    if not rest:
        raise UsageError("an address expected")
    count_text = "".join(ch for ch in fmt if ch.isdigit())
    letters = [ch for ch in fmt if not ch.isdigit()]
    count = int(count_text) if count_text else 1
    unit = next((UNITS[ch] for ch in letters if ch in UNITS), 8)
    form = next((ch for ch in letters if ch not in UNITS), "x")
    if form not in "xduotcis":
        raise UsageError(f"undefined format letter '{form}'")
    m = sh.machine
    addr = _address(sh, rest[0])
    if form == "i":
        for _ in range(count):
            size, _, text = insn_at(m, addr)
            print(f"   0x{addr:x} <{m.image.symbolize(addr)}>:\t{text}", file=sh.out)
            addr += size
        return 0
    if form == "s":
        for _ in range(count):
            raw = m.mem.read_cstr(addr, 4096)
            print(f'0x{addr:x}:\t"{raw}"', file=sh.out)
            addr += len(raw.encode("utf-8", "surrogateescape")) + 1
        return 0
    per_line = max(1, 16 // unit) if form != "c" else 8
    values = []
    for i in range(count):
        data = m.mem.read(addr + i * unit, unit)
        if form == "d":
            values.append(str(struct.unpack(SIGNED[unit], data)[0]))
        else:
            value = struct.unpack(UNSIGNED[unit], data)[0]
            values.append(
                {
                    "x": f"0x{value:0{unit * 2}x}",
                    "u": str(value),
                    "o": f"0{value:o}",
                    "t": f"{value:0{unit * 8}b}",
                    "c": repr(chr(value & 0xFF)),
                }[form]
            )
    for i in range(0, len(values), per_line):
        print(f"0x{addr + i * unit:x}:\t" + "\t".join(values[i : i + per_line]), file=sh.out)
    return 0


@command("gdbserver", "gdbserver [HOST:]PORT [--allow-remote]")
def cmd_gdbserver(sh: Shell, args: list[str]) -> int:
    """Serve this machine to gdb (`target remote :PORT`, with `klpemu image-path` as the file):
    CPUs are gdb's threads. The machine waits, stopped, for gdb; after a detach it runs on and
    another gdb may attach; gdb's kill brings you back here, the machine as gdb left it. Only a
    loopback address unless --allow-remote: whoever reaches the port controls the machine."""
    from ..debug.server import GdbServer, listen, parse_listen

    allow_remote = "--allow-remote" in args
    rest = [a for a in args if a != "--allow-remote"]
    if len(rest) != 1:
        raise UsageError("a port, or HOST:PORT, expected")
    where = rest[0] if ":" in rest[0] else f"127.0.0.1:{rest[0]}"
    listener = listen(*parse_listen(where), allow_remote=allow_remote)
    own = sh.debugger
    if own is not None:  # one debugger per machine: gdb takes over from the shell's
        own.engine.detach()
        sh.debugger = None
        if own.points:
            print("the shell's breakpoints are deleted: gdb sets its own", file=sh.out)
    server = GdbServer(sh.system, listener, sh.out)
    print(f"Listening on port {server.port}", file=sh.out, flush=True)
    try:
        return server.serve()
    finally:
        sh.machine.stop_handler = None


@command("gdb-symbols", "gdb-symbols")
def cmd_gdb_symbols(sh: Shell, args: list[str]) -> int:
    """gdb's add-symbol-file commands for the loaded modules (as lx-symbols gives them), to
    paste into a gdb attached with gdbserver."""
    from ..debug.symbols import add_symbol_file_lines

    no_arguments(args)
    for line in add_symbol_file_lines(sh.machine.kernel):
        print(line, file=sh.out)
    return 0
