"""The shell's commands: files, the kernel log, tasks, modules, running and stepping the
machine, disassembly, tracing and kprobes."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from errno import EINVAL, EIO
from typing import TYPE_CHECKING, Any

from ..disasm import disassemble_function, insn_at
from ..errors import KlpemuError
from ..fs.vfs import Dir, mode_string
from ..kernel.printk import dmesg
from ..kernel.tasks import all_tasks
from .core import Shell, UsageError, command

if TYPE_CHECKING:
    from ..kernel.kprobes.probe import Probe


def parse_duration_ns(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|ms|s)?", text)
    if not m:
        raise UsageError(f"invalid time interval '{text}'")
    scale = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, None: 1_000_000_000}[m.group(2)]
    return int(float(m.group(1)) * scale)


def no_arguments(args: list[str]) -> None:
    """What a command without options says to any: sh's users expect `ps aux` to mean something."""
    if args:
        raise UsageError(f"unsupported argument '{args[0]}' (this command takes none)")


# --- commands --------------------------------------------------------------------------------


@command("ps", "ps")
def cmd_ps(sh: Shell, args: list[str]) -> int:
    """Tasks with state, CPU and livepatch state; kernel threads in brackets, as ps shows them."""
    no_arguments(args)
    print(f"{'PID':>5} {'STATE':<5} {'CPU':>3} {'PATCH':>5} COMM", file=sh.out)
    for t in all_tasks(sh.machine):
        comm = f"[{t.comm}]" if t.is_kthread else t.comm
        print(f"{t.pid:>5} {t.state_letter():<5} {t.cpu:>3} {t.patch_state:>5} {comm}", file=sh.out)
    return 0


@command("cat", "cat FILE...")
def cmd_cat(sh: Shell, args: list[str]) -> int:
    if not args:
        raise UsageError("missing file operand")
    status = 0
    for path in args:
        try:
            sh.out.write(sh.system.vfs.read(path))
        except KlpemuError as e:
            status = sh.error(f"cat: {sh.describe(e)}{sh.timeout_note(e)}")
    return status


@command("dmesg", "dmesg")
def cmd_dmesg(sh: Shell, args: list[str]) -> int:
    """The kernel log, with its timestamps."""
    no_arguments(args)
    sh.out.write(dmesg(sh.machine))
    return 0


@command("echo", "echo [TEXT...] [> FILE | >> FILE]")
def cmd_echo(sh: Shell, args: list[str]) -> int:
    """Print the words, or write them to a guest file (> truncates, >> appends); a quoted '>'
    is text."""
    target, append = None, False
    if sh.redirect is not None:
        target, append = sh.redirect[1], sh.redirect[0] == ">>"
    text = " ".join(args) + "\n"
    if target is None:
        sh.out.write(text)
        return 0
    try:
        sh.system.vfs.write(target, text, append=append)
    except KlpemuError as e:
        if sh.machine.oops is not None:
            raise
        if e.errno in (2, 13, 21):  # the redirection itself failed, as bash reports it
            return sh.error(f"klpemu: {target}: {os.strerror(e.errno)}")
        return sh.error(f"echo: write error: {os.strerror(e.errno) if e.errno else e}{sh.timeout_note(e)}")
    return 0


@command("ls", "ls [-l] [PATH...]")
def cmd_ls(sh: Shell, args: list[str]) -> int:
    long = "-l" in args
    paths = [a for a in args if a != "-l"] or ["/"]
    status = 0
    for path in paths:
        if len(paths) > 1:
            print(f"{path}:", file=sh.out)
        try:
            nodes = sh.system.vfs.listdir(path)
        except KlpemuError as e:
            status = sh.error(f"ls: cannot access '{path}': {os.strerror(e.errno)}")
            continue
        for node in nodes:
            if long:
                links = 2 if isinstance(node, Dir) else 1
                print(f"{mode_string(node)} {links} root root 0 Jan  1 00:00 {node.name}", file=sh.out)
            else:
                print(node.name, file=sh.out)
    return status


@command("sleep", "sleep DURATION (e.g. 10ms, 2s)")
def cmd_sleep(sh: Shell, args: list[str]) -> int:
    """Run the machine for DURATION of emulated time (s by default; ns, us, ms, s)."""
    if len(args) != 1:
        raise UsageError("missing operand")
    ns = parse_duration_ns(args[0])
    m = sh.machine
    start = m.now
    with sh.progress(lambda: f"sleep: {(m.now - start) / 1e9:.3f}s of {ns / 1e9:g}s emulated"):
        m.run(ns)
    if m.oops is not None:
        sh._oops_shown = True
        return sh.error(str(m.oops))
    return 0


@command("disas", "disas FUNC[,SYMPOS]")
def cmd_disas(sh: Shell, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("one function name expected")
    sh.out.write(disassemble_function(sh.machine, args[0]))
    return 0


def _reg_changes(before: dict[str, int], after: dict[str, int]) -> str:
    return " ".join(f"{k}={after[k]:#x}" for k in after if k != "rip" and after[k] != before[k])


@command("step", "step [N] [--cpu C]")
def cmd_step(sh: Shell, args: list[str]) -> int:
    """Execute N instructions on one CPU, each with the registers it changed."""
    count, cpu = 1, 0
    rest = list(args)
    if "--cpu" in rest:
        i = rest.index("--cpu")
        try:
            cpu = int(rest[i + 1])
        except (IndexError, ValueError):
            raise UsageError("--cpu needs a CPU number") from None
        del rest[i : i + 2]
    if rest:
        try:
            count = int(rest[0])
        except ValueError:
            raise UsageError(f"'{rest[0]}' is not a number") from None
    m = sh.machine
    done = [0]
    with sh.progress(lambda: f"step: {done[0]} of {count} instructions"):
        _step(sh, cpu, count, done)
    if m.oops is not None:
        sh._oops_shown = True
        return sh.error(str(m.oops))
    return 0


def _step(sh: Shell, cpu: int, count: int, done: list[int]) -> None:
    m = sh.machine
    for addr, before, after, events in m.step(cpu, count):
        done[0] += 1
        if addr is None:
            print(f"cpu{cpu}  -- {', '.join(events)} --", file=sh.out)
            continue
        _, raw, text = insn_at(m, addr)
        where = m.image.symbolize(addr) if m.image.function_at(addr) else "(user)"
        note = f"  [{', '.join(events)}]" if events else ""
        print(f"cpu{cpu} {addr:016x} {where:<36} {text:<40} {_reg_changes(before, after)}{note}".rstrip(), file=sh.out)


@command("reboot", "reboot")
def cmd_reboot(sh: Shell, args: list[str]) -> int:
    """A fresh machine booted with the same options (CPUs, seed, command line, image), in place
    of this one: the way out of a guest that no longer answers."""
    no_arguments(args)
    sh.reboot()
    return 0


@command("unwind", "unwind PID")
def cmd_unwind(sh: Shell, args: list[str]) -> int:
    """A task's stack as the livepatch consistency check sees it, with the reliability verdict."""
    from ..kernel.stacktrace import unwind_task
    from ..kernel.tasks import find_task

    if len(args) != 1 or not args[0].isdigit():
        raise UsageError("one PID expected")
    task = find_task(sh.machine, int(args[0]))
    if task is None:
        return sh.error(f"unwind: {args[0]}: No such process")
    trace = unwind_task(sh.machine, task)
    for f in trace.frames:
        tag = {"regs": "  <- interrupted here", "user": ""}.get(f.kind, "")
        print(f"  {f.symbol}{tag}", file=sh.out)
    if trace.user_mode:
        print("running in user mode: nothing on its kernel stack", file=sh.out)
    print("reliable" if trace.reliable else f"unreliable: {trace.reason}", file=sh.out)
    return 0


@command("trace-call", "trace-call FUNC [--cpu C] [--seq-file] [--arg VALUE ...]")
def cmd_trace_call(sh: Shell, args: list[str]) -> int:
    """One call of FUNC, every instruction labelled by its part of ftrace (site, trampoline,
    list function, handlers, body, return), with a per-part summary. --seq-file passes a fresh
    struct seq_file first (for *_proc_show functions) and prints what the call wrote into it."""
    func, cpu, seq_file, values = None, 0, False, []
    rest = list(args)
    while rest:
        a = rest.pop(0)
        if a == "--cpu":
            try:
                cpu = int(rest.pop(0))
            except (IndexError, ValueError):
                raise UsageError("--cpu needs a CPU number") from None
        elif a == "--seq-file":
            seq_file = True
        elif a == "--arg":
            if not rest:
                raise UsageError("--arg needs a value")
            v = rest.pop(0)
            try:
                values.append(int(v, 0))
            except ValueError:
                values.append(sh.machine.image.addr(v))  # a symbol's address
        elif a.startswith("-"):
            raise UsageError(f"unknown option '{a}'")
        elif func is None:
            func = a
        else:
            raise UsageError("one function name expected")
    if func is None:
        raise UsageError("missing function name")
    from ..trace_call import TraceCallError, trace_call

    try:
        result = trace_call(sh.machine, func, values, cpu=cpu, seq_file=seq_file)
    except TraceCallError as e:
        sh.out.write(e.result.format())
        sh._oops_shown = True
        return sh.error(e.result.oops or str(e))
    sh.out.write(result.format())
    return 0


@command("blocking", "blocking [-v|-vv]")
def cmd_blocking(sh: Shell, args: list[str]) -> int:
    """The tasks holding up a livepatch transition and the exact reason, like `kgr blocking`;
    -v adds what forcing would do, -vv each task's stack too."""
    from ..kernel.stacktrace import unwind_task

    verbose = 2 if "-vv" in args else 1 if "-v" in args else 0
    lp = sh.machine.kernel.livepatch
    tr = lp.transition
    if tr.patch is None:
        print("no transition in progress", file=sh.out)
        return 0
    print(f"'{lp.name(tr.patch)}': {tr.verb(tr.target)} transition, attempt {tr.signals_cnt + 1}", file=sh.out)
    for task, reason in tr.blockers():
        comm = f"[{task.comm}]" if task.is_kthread else task.comm
        print(f"{task.pid:>5} {comm:<16} {reason}", file=sh.out)
        if verbose >= 2:
            for f in unwind_task(sh.machine, task).kernel_frames:
                print(f"        {f.symbol}", file=sh.out)
    if verbose:
        name = lp.name(tr.patch)
        print(
            f"force: 'echo 1 > /sys/kernel/livepatch/{name}/force' switches these tasks unchecked. A forced "
            "unpatching transition (or the patches a forced cumulative patch replaces) keeps its module "
            f"loaded for good; 'echo 0 > /sys/kernel/livepatch/{name}/enabled' right after forcing "
            "reverses the still-open transition.",
            file=sh.out,
        )
    return 0


@command("wait", "wait PATH VALUE [TIMEOUT] | wait --gone PATH [TIMEOUT]")
def cmd_wait(sh: Shell, args: list[str]) -> int:
    """Run the machine until a file reads VALUE (or a path is gone), as the selftests poll;
    the timeout (default 15s) is emulated time."""
    gone = bool(args) and args[0] == "--gone"
    rest = args[1:] if gone else args
    need = 1 if gone else 2
    if len(rest) not in (need, need + 1):
        raise UsageError("wrong number of arguments")
    path = rest[0]
    timeout = parse_duration_ns(rest[need]) if len(rest) > need else 15_000_000_000
    vfs = sh.system.vfs

    def holds() -> bool:
        if gone:
            return not vfs.exists(path)
        try:
            return vfs.read(path).strip() == rest[1]
        except KlpemuError:
            return False

    m = sh.machine
    start = m.now
    with sh.progress(lambda: f"wait: {(m.now - start) / 1e9:.3f}s of {timeout / 1e9:g}s emulated"):
        if m.run_until(holds, timeout):
            return 0
    if sh.machine.oops is not None:
        raise KlpemuError("the machine crashed while waiting", EIO)
    what = "still exists" if gone else f"did not read '{rest[1]}'"
    return sh.error(f"wait: {path} {what} after {timeout / 1e9:g}s")


# --- modules ---------------------------------------------------------------------------------


@command("insmod", "insmod FILE|NAME [param=value ...]")
def cmd_insmod(sh: Shell, args: list[str]) -> int:
    """Load a module: a .ko file on the host, or the name of a module shipped with klpemu."""
    from ..kernel.module import ModuleError, mod_strerror, shipped_module

    if not args:
        return sh.error("insmod: ERROR: missing filename.")
    target, params = args[0], args[1:]
    path = target if os.path.isfile(target) else shipped_module(target)
    if path is None:
        return sh.error(f"insmod: ERROR: could not load module {target}: No such file or directory")
    try:
        sh.machine.kernel.modules.load(path, params)
    except ModuleError as e:
        return sh.error(f"insmod: ERROR: could not insert module {target}: {mod_strerror(e.errno)}")
    return 0


@command("rmmod", "rmmod NAME...")
def cmd_rmmod(sh: Shell, args: list[str]) -> int:
    from ..kernel.module import ModuleError

    if not args:
        return sh.error("rmmod: ERROR: missing module name.")
    status = 0
    for arg in args:
        name = os.path.basename(arg).removesuffix(".ko")
        try:
            sh.machine.kernel.modules.unload(name.replace("-", "_"))
        except ModuleError as e:
            status = sh.error(f"rmmod: ERROR: {e}")
    return status


@command("lsmod", "lsmod")
def cmd_lsmod(sh: Shell, args: list[str]) -> int:
    """Module, Size (its core memory) and Used by (the reference count, then the holders)."""
    no_arguments(args)
    mods = sh.machine.kernel.modules
    print("Module                  Size  Used by", file=sh.out)
    for mod in mods.list():
        if mods.state(mod) == "MODULE_STATE_UNFORMED":
            continue
        holders = ",".join(h.name for h in mod.holders)
        print(f"{mod.name:<19} {mod.core_size:>8}  {mods.refcount(mod)}{' ' + holders if holders else ''}", file=sh.out)
    return 0


@command("modinfo", "modinfo FILE|NAME...")
def cmd_modinfo(sh: Shell, args: list[str]) -> int:
    """A module's .modinfo tags, as kmod's modinfo prints them: a .ko file on the host, or a
    module shipped with klpemu by file or module name."""
    from ..modinfo import find_module_file, format_modinfo, module_name

    if not args:
        return sh.error("modinfo: ERROR: missing module or filename.")
    status = 0
    for arg in args:
        f = find_module_file(arg)
        if f is None:
            status = sh.error(f"modinfo: ERROR: Module {arg} not found.")
            continue
        try:
            sh.out.write(format_modinfo(f.shown, f.modinfo()))
        except KlpemuError as e:
            name = module_name(f.path.name)
            status = sh.error(f"modinfo: ERROR: could not get modinfo from '{name}': {e.strerror}")
    return status


@command("kpatch", "kpatch load FILE.ko|NAME | unload NAME|--all | list | info NAME | signal")
def cmd_kpatch(sh: Shell, args: list[str]) -> int:
    """Livepatch modules managed as dynup/kpatch's kpatch utility does (klpemu/kpatch.py)."""
    from ..kpatch import Kpatch

    return Kpatch(sh.system, sh.out, sh.err).main(args)


# --- kprobes and the conflict record ----------------------------------------------------------


def _parse_probe_point(text: str) -> tuple[str, int]:
    name, _, off = text.partition("+")
    try:
        return name, int(off, 0) if off else 0
    except ValueError:
        raise UsageError(f"bad offset in '{text}'") from None


@dataclass(frozen=True)
class Option:
    """A command-line option: a flag (True when given), or one taking the next argument."""

    dest: str
    default: object = False
    convert: Callable[[str], object] | None = None  # None: a flag
    bad_value: str = ""  # the usage error for a missing or unconvertible value


def parse_options(
    args: list[str], options: dict[str, Option], max_operands: int, too_many: str
) -> tuple[dict[str, Any], list[str]]:
    """Options (any order, repeatable, the last value wins) and operands, checked left to
    right so the first mistake is the one reported."""
    values: dict[str, Any] = {o.dest: o.default for o in options.values()}
    operands: list[str] = []
    rest = list(args)
    while rest:
        a = rest.pop(0)
        opt = options.get(a)
        if opt is not None and opt.convert is None:
            values[opt.dest] = True
        elif opt is not None and opt.convert is not None:
            try:
                values[opt.dest] = opt.convert(rest.pop(0))
            except (IndexError, ValueError):
                raise UsageError(opt.bad_value) from None
        elif a.startswith("-"):
            raise UsageError(f"unknown option '{a}'")
        elif len(operands) < max_operands:
            operands.append(a)
        else:
            raise UsageError(too_many)
    return values, operands


KPROBE_OPTIONS = {
    "-r": Option("ret"),
    "--post": Option("post"),
    "-d": Option("delete"),
    "-l": Option("listing"),
    "--maxactive": Option("maxactive", 0, int, "--maxactive needs a number"),
}


@command(
    "kprobe",
    "kprobe [-r [--maxactive N]] [--post] SYMBOL[+OFFSET] | kprobe -d SYMBOL[+OFFSET] | kprobe -l"
    " | kprobe --policy [mainline|legacy]",
)
def cmd_kprobe(sh: Shell, args: list[str]) -> int:
    """Place a kprobe (-r: a kretprobe) whose Python handlers count their calls, as a module's
    register_kprobe would; --post gives it a post handler (at a fentry site: the IPMODIFY ops).
    -d removes the shell's probe there; -l lists the shell's probes with their counts.
    --policy shows or sets which ftrace ops a probe at a fentry site takes: mainline (the
    IPMODIFY one only with a post handler) or legacy (always, as before 5.4)."""
    kprobes = sh.machine.kernel.kprobes
    if args[:1] == ["--policy"]:
        if len(args) == 1:
            print(kprobes.policy, file=sh.out)
        else:
            kprobes.policy = args[1]
        return 0
    opts, points = parse_options(args, KPROBE_OPTIONS, 1, "one probe point expected")
    if opts["listing"]:
        return _kprobe_list(sh)
    if not points:
        raise UsageError("missing probe point")
    if opts["delete"]:
        return _kprobe_delete(sh, points[0])
    return _kprobe_add(sh, points[0], opts)


def _shell_probes(sh: Shell) -> dict[int, Probe]:
    return {kp: p for kp, p in sh.machine.kernel.kprobes.probes.items() if p.owner == "shell"}


def _kprobe_list(sh: Shell) -> int:
    kprobes = sh.machine.kernel.kprobes
    for kp, p in _shell_probes(sh).items():
        v = kprobes.view(kp)
        sym = sh.machine.image.function_at(v.addr)
        where = f"{sym.name}+0x{v.addr - sym.addr:x}" if sym is not None else f"0x{v.addr:x}"
        counts = " ".join(f"{role}={p.hits.get(role, 0)}" for role in p.py)
        nmissed = kprobes.kretprobes.nmissed(p.rp) if p.kind == "r" else v.nmissed
        print(f"{v.addr:016x}  {p.kind}  {where}  {counts} nmissed={nmissed}", file=sh.out)
    return 0


def _kprobe_delete(sh: Shell, point: str) -> int:
    kprobes = sh.machine.kernel.kprobes
    name, offset = _parse_probe_point(point)
    addr = kprobes.lookup_name(name)
    for kp, p in _shell_probes(sh).items():
        if addr is not None and kprobes.view(kp).addr == addr + offset:
            if p.kind == "r":
                kprobes.kretprobes.unregister(p.rp)
            else:
                kprobes.unregister(kp)
            return 0
    return sh.error(f"kprobe: no probe of this shell at {point}")


def _kprobe_add(sh: Shell, point: str, opts: dict[str, Any]) -> int:
    kprobes = sh.machine.kernel.kprobes
    name, offset = _parse_probe_point(point)
    try:
        if opts["ret"]:
            if offset:
                raise KlpemuError("a kretprobe must be at a function's entry", EINVAL)
            kprobes.kretprobes.add(name, handler=lambda ri, regs: 0, maxactive=opts["maxactive"], owner="shell")
        else:
            kprobes.add_kprobe(
                name,
                offset,
                pre_handler=lambda p, regs: 0,
                post_handler=(lambda p, regs, flags: None) if opts["post"] else None,
                owner="shell",
            )
    except KlpemuError as e:
        return sh.error(f"kprobe: {point}: {e} ({os.strerror(e.errno) if e.errno else 'error'})")
    for c in sh.machine.kernel.conflicts.records:
        if c.rule == "kprobe-in-redirected-body" and c.arriving.endswith("[shell]") and c.time_ns == sh.machine.now:
            print(f"kprobe: {c.outcome}", file=sh.err)
    return 0


@command("conflicts", "conflicts [--json]")
def cmd_conflicts(sh: Shell, args: list[str]) -> int:
    """Every meeting of two users of one function: time, site, both users, the rule, the errno
    and the outcome; --json for the records as JSON."""
    if args not in ([], ["--json"]):
        raise UsageError("only --json is accepted")
    conflicts = sh.machine.kernel.conflicts
    sh.out.write(conflicts.to_json() if args else conflicts.text())
    return 0
