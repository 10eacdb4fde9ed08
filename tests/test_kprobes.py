"""Kprobes: int3 probes at any instruction boundary (stepped out of line or emulated), probes
at fentry sites through ftrace, Linux's errors, the debugfs files, and probes from a module."""

from __future__ import annotations

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.kprobes.core import FLAG
from klpemu.kernel.printk import records
from klpemu.kernel.text_poke import NOP5
from klpemu.system import System

EINVAL, ENOENT, EILSEQ, EOPNOTSUPP = 22, 2, 84, 95
DEBUGFS = "/sys/kernel/debug/kprobes"


@pytest.fixture
def system() -> System:
    return booted_system()


def ok(system: System, cmd: str) -> str:
    status, out, err = shell_run(system, cmd)
    assert status == 0 and err == "", (cmd, out, err)
    return out


def insns(m, func: str):
    sym = m.image.lookup(func)
    return list(Cs(CS_ARCH_X86, CS_MODE_64).disasm(m.mem.read(sym.addr, sym.size), sym.addr))


def first(m, func: str, pred) -> int:
    """The offset in func of the first instruction pred accepts."""
    sym = m.image.lookup(func)
    return next(i.address for i in insns(m, func) if pred(i)) - sym.addr


class Counter:
    """Python handlers that remember the regs->ip each saw."""

    def __init__(self):
        self.pre: list[int] = []
        self.post: list[int] = []

    def pre_handler(self, p, regs):
        self.pre.append(regs.ip)
        return 0

    def post_handler(self, p, regs, flags):
        self.post.append(regs.ip)


def test_int3_probe_steps_the_instruction_out_of_line(system):
    m = system.machine
    kp = m.kernel.kprobes
    sym = m.image.lookup("cmdline_proc_show")
    off = first(m, "cmdline_proc_show", lambda i: i.mnemonic == "push")  # push %rbp, after the site
    addr = sym.addr + off
    original = m.mem.read(addr, 1)
    c = Counter()
    probe = kp.add_kprobe("cmdline_proc_show", off, pre_handler=c.pre_handler, post_handler=c.post_handler)
    assert m.mem.read(addr, 1) == b"\xcc"
    v = kp.view(probe)
    assert v.opcode == original[0] and v.ainsn.emulate_op == 0 and v.ainsn.size == 1
    assert m.mem.read(v.ainsn.insn, 2) == original + b"\xcc"  # the copy, then the int3 that ends the step
    assert ok(system, "cat /proc/cmdline") == m.config.cmdline + "\n"
    # As on Linux: the pre handler sees ip just past the int3, the post handler the next instruction.
    assert c.pre == [addr + 1] and c.post == [addr + 1]
    kp.unregister(probe)
    assert m.mem.read(addr, 1) == original
    assert not kp.table()


@pytest.mark.parametrize(
    "func,mnemonic",
    [
        ("cmdline_proc_show", "call"),  # emulated: a pushed return address
        ("cmdline_proc_show", "ret"),
        ("seq_putc", "jae"),  # a jcc: the condition evaluated on the saved flags
    ],
)
def test_branches_are_emulated(system, func, mnemonic):
    m = system.machine
    kp = m.kernel.kprobes
    sym = m.image.lookup(func)
    off = first(m, func, lambda i: i.mnemonic == mnemonic)
    c = Counter()
    probe = kp.add_kprobe(func, off, pre_handler=c.pre_handler, post_handler=c.post_handler)
    assert kp.view(probe).ainsn.emulate_op != 0 and kp.view(probe).ainsn.insn == 0
    assert ok(system, "cat /proc/cmdline") == m.config.cmdline + "\n"
    assert c.pre and all(ip == sym.addr + off + 1 for ip in c.pre)
    assert len(c.post) == len(c.pre)


def test_a_rip_relative_operand_is_moved_with_the_copy(system):
    m = system.machine
    kp = m.kernel.kprobes
    expected = ok(system, "cat /proc/meminfo")
    off = first(m, "meminfo_proc_show", lambda i: "rip" in i.op_str and i.mnemonic == "mov")
    orig = next(i for i in insns(m, "meminfo_proc_show") if i.address == m.image.addr("meminfo_proc_show") + off)
    c = Counter()
    probe = kp.add_kprobe("meminfo_proc_show", off, pre_handler=c.pre_handler)
    slot = kp.view(probe).ainsn.insn
    copy = next(Cs(CS_ARCH_X86, CS_MODE_64).disasm(m.mem.read(slot, 16), slot))

    def target(i):
        disp = int(i.op_str.split("rip ")[1].rstrip("]").replace(" ", ""), 16)
        return i.address + i.size + disp

    assert copy.mnemonic == orig.mnemonic and target(copy) == target(orig)  # the same variable
    assert ok(system, "cat /proc/meminfo") == expected and len(c.pre) == 1


def test_probe_at_a_fentry_site_goes_through_ftrace(system):
    m = system.machine
    kp = m.kernel.kprobes
    sym = m.image.lookup("cmdline_proc_show")
    c = Counter()
    probe = kp.add_kprobe("cmdline_proc_show", pre_handler=c.pre_handler)
    assert kp.view(probe).flags & FLAG["FTRACE"]
    assert m.mem.read(sym.addr, 1) != b"\xcc"
    enabled = ok(system, "cat /sys/kernel/tracing/enabled_functions")
    assert enabled.startswith("cmdline_proc_show (1) R  ") and "kprobe_ftrace_ops" in enabled
    ok(system, "cat /proc/cmdline")
    assert c.pre == [sym.addr + 1]  # as if an int3 at the site had been hit
    with_post = kp.add_kprobe("version_proc_show", pre_handler=c.pre_handler, post_handler=c.post_handler)
    assert "version_proc_show (1) R I" in ok(system, "cat /sys/kernel/tracing/enabled_functions")
    ok(system, "cat /proc/version")
    assert c.post == [m.image.addr("version_proc_show") + 5]  # as if the 5-byte site had been stepped
    kp.unregister(with_post)
    kp.unregister(probe)
    assert m.mem.read(sym.addr, 5) == NOP5
    assert ok(system, "cat /sys/kernel/tracing/enabled_functions") == ""


def snapshot(m):
    kp = m.kernel.kprobes
    text = m.image.lookup("cmdline_proc_show")
    return (
        m.mem.read(text.addr, text.size),
        kp.table(),
        dict(m.heap._sizes),
        m.kernel.ftrace.records.ips(),
        [m.kernel.ftrace.records.flags(i) for i in range(len(m.kernel.ftrace.records))],
    )


@pytest.mark.parametrize(
    "symbol,offset,errno",
    [
        ("cmdline_proc_show", 2, EILSEQ),  # inside the fentry site
        ("cmdline_proc_show", "inside", EILSEQ),  # inside a later instruction
        ("ftrace_caller", 0, EINVAL),  # a trampoline
        ("ftrace_regs_caller", 8, EINVAL),
        ("do_int3", 0, EINVAL),  # the int3 path
        ("kprobe_int3_handler", 0, EINVAL),  # kprobes itself
        ("asm_exc_int3", 0, EINVAL),  # entry text
        ("__kretprobe_trampoline", 0, EINVAL),  # .kprobes.text
        ("no_such_function", 0, ENOENT),
        ("kprobe_table", 0, EINVAL),  # data: found by kallsyms, then not text
        ("boot_params", 0, EINVAL),
    ],
)
def test_refused_probes_change_nothing(system, symbol, offset, errno):
    m = system.machine
    kp = m.kernel.kprobes
    if offset == "inside":
        i = next(i for i in insns(m, symbol)[1:] if i.size > 2)
        offset = i.address - m.image.addr(symbol) + 1
    before = snapshot(m)
    with pytest.raises(KlpemuError) as e:
        kp.add_kprobe(symbol, offset, pre_handler=lambda p, r: 0)
    assert e.value.errno == errno
    assert snapshot(m) == before


def test_a_refused_probe_shows_the_address_it_resolved_to(system):
    """register_kprobe writes p->addr and masks p->flags before check_kprobe_address_safe."""
    m = system.machine
    kp = m.kernel.kprobes
    p = m.heap.kzalloc(m.types.sizeof("kprobe"))
    name = m.heap.kzalloc(16)
    m.mem.write(name, b"do_int3\0")
    v = kp.view(p)
    v.symbol_name = name
    v.flags = FLAG["DISABLED"] | FLAG["GONE"] | FLAG["OPTIMIZED"]
    with pytest.raises(KlpemuError) as e:
        kp.register(p)
    assert e.value.errno == EINVAL  # blacklisted
    assert v.addr == m.image.addr("do_int3") and v.flags == FLAG["DISABLED"]


def test_a_trampoline_copy_is_not_kernel_text(system):
    m = system.machine
    m.kernel.ftrace.register(m.kernel.ftrace.ops_stub("private"))  # makes a private trampoline
    tramp = m.kernel.ftrace.trampoline_at
    ops = m.kernel.ftrace.ops[0]
    start = m.struct("ftrace_ops", ops.addr).trampoline
    assert tramp(start) is not None
    with pytest.raises(KlpemuError) as e:
        m.kernel.kprobes.add_kprobe(addr=start, pre_handler=lambda p, r: 0)
    assert e.value.errno == EINVAL


@pytest.mark.parametrize(
    "code,errno",
    [
        ("cc", EINVAL),  # int3: someone else's breakpoint, which __copy_instruction cannot see under
        ("48cf", EOPNOTSUPP),  # iretq
        ("ff1500000000", EOPNOTSUPP),  # call *0(%rip): an indirect branch through memory
        ("ff2500000000", EOPNOTSUPP),
    ],
)
def test_instructions_that_run_only_where_they_are(code, errno):
    from klpemu.kernel.kprobes import insn

    with pytest.raises(KlpemuError) as e:
        insn.prepare(bytes.fromhex(code) + bytes(16), 0xFFFFFFFF81000000, 0xFFFFFFFFA0000000)
    assert e.value.errno == errno


def test_emulation_is_chosen_as_linux_chooses_it():
    from klpemu.kernel.kprobes import insn

    at, slot = 0xFFFFFFFF81000000, 0xFFFFFFFFA0000000
    cases = {
        "e810000000": ("call", 0x10),
        "eb05": ("jmp", 5),
        "0f8410000000": ("jcc", 0x10),
        "7405": ("jcc", 5),
        "e2fe": ("loop", -2),
        "c3": ("ret", 0),
        "ffd0": ("call_indirect", 0),
        "ffe3": ("jmp_indirect", 0),
        "9c": ("ifmodifiers", 0),
        "fa": ("ifmodifiers", 0),
        "55": ("none", 0),
    }
    for code, (op, rel) in cases.items():
        p = insn.prepare(bytes.fromhex(code) + bytes(16), at, slot)
        assert (p.emulate_op, p.rel32) == (insn.EMULATE[op], rel), code
    assert insn.prepare(bytes.fromhex("7405") + bytes(16), at, slot).opcode == 4  # je: condition 4
    assert insn.prepare(bytes.fromhex("ffd0") + bytes(16), at, slot).indirect_reg == 10  # rax: pt_regs->ax
    moved = insn.prepare(bytes.fromhex("488b0510000000") + bytes(16), at, slot)
    assert moved.copy == bytes.fromhex("488b05") + (0x10 + at - slot).to_bytes(4, "little", signed=True)


def test_symbol_and_address_together_are_invalid(system):
    m = system.machine
    with pytest.raises(KlpemuError) as e:
        m.kernel.kprobes.add_kprobe("cmdline_proc_show", addr=m.image.addr("cmdline_proc_show"))
    assert e.value.errno == EINVAL


def test_two_probes_at_one_address_share_an_aggregate(system):
    m = system.machine
    kp = m.kernel.kprobes
    off = first(m, "cmdline_proc_show", lambda i: i.mnemonic == "push")
    a, b = Counter(), Counter()
    pa = kp.add_kprobe("cmdline_proc_show", off, pre_handler=a.pre_handler)
    pb = kp.add_kprobe("cmdline_proc_show", off, pre_handler=b.pre_handler, post_handler=b.post_handler)
    (ap,) = kp.table()
    assert kp.is_aggregate(ap) and kp.children(ap) == [pb, pa]  # newest first, as list_add_rcu
    ok(system, "cat /proc/cmdline")
    assert len(a.pre) == len(b.pre) == len(b.post) == 1
    listing = ok(system, f"cat {DEBUGFS}/list").splitlines()
    assert len(listing) == 2 and all("cmdline_proc_show+0x5" in line for line in listing)
    kp.unregister(pa)
    ok(system, "cat /proc/cmdline")
    assert len(a.pre) == 1 and len(b.pre) == 2
    kp.unregister(pb)
    assert not kp.table()
    assert m.mem.read(m.image.addr("cmdline_proc_show") + off, 1) == b"\x55"


def test_probes_at_one_address_run_newest_first(system):
    m = system.machine
    kp = m.kernel.kprobes
    off = first(m, "cmdline_proc_show", lambda i: i.mnemonic == "push")
    order = []
    probes = [
        kp.add_kprobe("cmdline_proc_show", off, pre_handler=lambda p, r, n=n: order.append(n) or 0, disabled=n == "B")
        for n in "ABC"
    ]
    ok(system, "cat /proc/cmdline")
    assert order == ["C", "A"]  # B is disabled
    (ap,) = kp.table()
    assert kp.children(ap) == probes[::-1]
    addr = m.image.addr("cmdline_proc_show") + off
    assert ok(system, f"cat {DEBUGFS}/list") == "".join(
        f"{addr:016x}  k  cmdline_proc_show+0x{off:x}    {tail}\n" for tail in ("", "[DISABLED]", "")
    )


def bare_kprobe(m, addr: int) -> int:
    """A struct kprobe filled as a module fills one (addr and a guest pre handler)."""
    kp = m.kernel.kprobes
    p = m.heap.kzalloc(m.types.sizeof("kprobe"))
    kp.view(p).addr = addr
    kp.view(p).pre_handler = m.image.addr("kprobe_host_pre_handler")
    return p


def test_unregister_leaves_the_probe_disabled_and_a_second_register_keeps_it(system):
    m = system.machine
    kp = m.kernel.kprobes
    addr = m.image.addr("cmdline_proc_show") + 5
    p = bare_kprobe(m, addr)
    kp.register(p)
    assert m.mem.read(addr, 1) == b"\xcc"
    kp.unregister(p)
    assert kp.view(p).flags == FLAG["DISABLED"]  # __disable_kprobe's doing
    kp.register(p)  # p->flags &= KPROBE_FLAG_DISABLED: it comes back disabled
    assert m.mem.read(addr, 1) == b"\x55"
    assert ok(system, f"cat {DEBUGFS}/list") == f"{addr:016x}  k  cmdline_proc_show+0x5    [DISABLED]\n"
    kp.unregister(p)
    assert kp.table() == []


def test_enable_while_all_probes_are_disarmed(system):
    """enable_kprobe with kprobes globally disabled clears a child's flag only: the probe in
    kprobe_table stays disabled, unarmed, and arming them all later leaves it so."""
    m = system.machine
    kp = m.kernel.kprobes
    addr = m.image.addr("cmdline_proc_show") + 5
    alone = bare_kprobe(m, addr)
    kp.view(alone).flags = FLAG["DISABLED"]
    kp.register(alone)
    ok(system, f"echo 0 > {DEBUGFS}/enabled")
    kp.set_enabled(alone, True)
    assert kp.view(alone).flags == FLAG["DISABLED"]
    ok(system, f"echo 1 > {DEBUGFS}/enabled")
    assert m.mem.read(addr, 1) == b"\x55" and not kp.armed(alone)
    assert ok(system, f"cat {DEBUGFS}/list") == f"{addr:016x}  k  cmdline_proc_show+0x5    [DISABLED]\n"
    kp.set_enabled(alone, True)  # armed now, as nothing is globally disarmed
    assert m.mem.read(addr, 1) == b"\xcc"
    child = bare_kprobe(m, addr)
    kp.view(child).flags = FLAG["DISABLED"]
    kp.register(child)
    kp.set_enabled(alone, False)
    (ap,) = kp.table()
    assert kp.view(ap).flags & FLAG["DISABLED"] and m.mem.read(addr, 1) == b"\x55"
    ok(system, f"echo 0 > {DEBUGFS}/enabled")
    kp.set_enabled(child, True)
    assert kp.view(child).flags == 0 and kp.view(ap).flags & FLAG["DISABLED"] and not kp.armed(ap)
    ok(system, f"echo 1 > {DEBUGFS}/enabled")
    assert m.mem.read(addr, 1) == b"\x55"
    kp.unregister(child)
    kp.unregister(alone)


def test_debugfs_list_enabled_and_blacklist(system):
    m = system.machine
    kp = m.kernel.kprobes
    site = m.image.addr("cmdline_proc_show")
    kp.add_kprobe("cmdline_proc_show", pre_handler=lambda p, r: 0)
    kp.add_kprobe("cmdline_proc_show", 5, pre_handler=lambda p, r: 0, disabled=True)
    kp.kretprobes.add("version_proc_show", handler=lambda ri, r: 0)
    listing = set(ok(system, f"cat {DEBUGFS}/list").splitlines())
    assert listing == {
        f"{site:016x}  k  cmdline_proc_show+0x0    [FTRACE]",
        f"{site + 5:016x}  k  cmdline_proc_show+0x5    [DISABLED]",
        f"{m.image.addr('version_proc_show'):016x}  r  version_proc_show+0x0    [FTRACE]",
    }
    assert ok(system, f"cat {DEBUGFS}/enabled") == "1\n"
    ok(system, f"echo 0 > {DEBUGFS}/enabled")
    assert ok(system, f"cat {DEBUGFS}/enabled") == "0\n"
    assert ok(system, "cat /sys/kernel/tracing/enabled_functions") == ""
    ok(system, f"echo 1 > {DEBUGFS}/enabled")
    assert "cmdline_proc_show (1)" in ok(system, "cat /sys/kernel/tracing/enabled_functions")
    assert [(r.level, r.text) for r in records(m)][-2:] == [
        (6, "kprobes: Kprobes globally disabled"),
        (6, "kprobes: Kprobes globally enabled"),
    ]
    status, _, err = shell_run(system, f"echo x > {DEBUGFS}/enabled")
    assert status == 1 and "Invalid argument" in err
    black = ok(system, f"cat {DEBUGFS}/blacklist").splitlines()
    names = {line.split("\t")[1] for line in black}
    assert {
        "kprobe_int3_handler",
        "do_int3",
        "poke_int3_handler",
        "ftrace_caller",
        "ftrace_regs_caller",
        "__kretprobe_trampoline",
        "asm_exc_int3",
        "ftrace_ops_list_func",
    } <= names
    lo, hi = black[0].split("\t")[0].split("-")
    assert int(lo, 16) < int(hi, 16)


def test_arming_all_fails_the_write_with_the_last_error(system):
    """arm_all_kprobes is best effort: probes that can arm are armed, kprobes stay globally
    enabled, and the write to `enabled` fails with the last arming error."""
    m = system.machine
    kp = m.kernel.kprobes
    probe = kp.add_kprobe("cmdline_proc_show", pre_handler=lambda p, r: 0, post_handler=lambda p, r, f: None)
    kp.add_kprobe("version_proc_show", pre_handler=lambda p, r: 0)
    ok(system, f"echo 0 > {DEBUGFS}/enabled")
    ok(system, "insmod livepatch-sample")  # IPMODIFY on cmdline_proc_show, now that nothing holds it
    status, _, err = shell_run(system, f"echo 1 > {DEBUGFS}/enabled")
    assert status == 1 and "Device or resource busy" in err
    assert [(r.level, r.text) for r in records(m)][-1] == (
        4,
        "kprobes: Kprobes globally enabled, but failed to enable 1 out of 2 probes. "
        "Please check which kprobes are kept disabled via debugfs.",
    )
    assert ok(system, f"cat {DEBUGFS}/enabled") == "1\n"
    assert not kp.armed(probe) and kp.armed(kp.get_kprobe(m.image.addr("version_proc_show")))
    assert "version_proc_show (1)" in ok(system, "cat /sys/kernel/tracing/enabled_functions")


def test_module_kprobe_from_insmod_to_rmmod(system):
    m = system.machine
    ok(system, "insmod test_klp_kprobe")
    params = "/sys/module/test_klp_kprobe/parameters"
    ok(system, "cat /proc/cmdline; cat /proc/cmdline")
    assert ok(system, f"cat {params}/pre_calls {params}/post_calls") == "2\n2\n"
    assert (
        ok(system, f"cat {DEBUGFS}/list") == f"{m.image.addr('cmdline_proc_show'):016x}  k  cmdline_proc_show+0x0"
        "    [FTRACE]\n"
    )
    assert m.kernel.kprobes.probes[m.kernel.kprobes.table()[0]].owner == "test_klp_kprobe"
    ok(system, "rmmod test_klp_kprobe")
    assert ok(system, f"cat {DEBUGFS}/list") == ""
    assert ok(system, "cat /sys/kernel/tracing/enabled_functions") == ""


def test_probe_on_a_module_goes_when_the_module_goes(system):
    m = system.machine
    kp = m.kernel.kprobes
    ok(system, "insmod hello")
    probe = kp.add_kprobe("hello_greet", pre_handler=lambda p, r: 0)
    assert ok(system, f"cat {DEBUGFS}/list").endswith("hello_greet+0x0  hello [FTRACE]\n")
    ok(system, "rmmod hello")
    assert kp.view(probe).flags & FLAG["GONE"]
    assert ok(system, f"cat {DEBUGFS}/list").endswith("[GONE][FTRACE]\n")
    kp.unregister(probe)
    assert ok(system, f"cat {DEBUGFS}/list") == ""


def test_shell_kprobe_command(system):
    status, _, err = shell_run(system, "kprobe cmdline_proc_show+2")
    assert status == 1 and err.endswith("(Invalid or incomplete multibyte or wide character)\n")
    ok(system, "kprobe cmdline_proc_show+5; kprobe -r version_proc_show; cat /proc/cmdline; cat /proc/version")
    out = ok(system, "kprobe -l")
    assert "k  cmdline_proc_show+0x5  pre=1 nmissed=0" in out
    assert "r  version_proc_show+0x0  ret=1 nmissed=0" in out
    ok(system, "kprobe -d cmdline_proc_show+5; kprobe -d version_proc_show")
    assert ok(system, "kprobe -l") == ""


def test_a_copy_out_of_rip_relative_reach_is_refused_with_arch_x86s_line(system, monkeypatch):
    m = system.machine
    kp = m.kernel.kprobes
    off = first(m, "meminfo_proc_show", lambda i: "rip" in i.mnemonic + i.op_str and i.mnemonic == "mov")
    # Slots from the kernel heap, more than 2 GB away from kernel text.
    monkeypatch.setattr(m.heap, "alloc_text", lambda size: m.heap.kzalloc(size))
    before = dict(m.heap._sizes)
    with pytest.raises(KlpemuError) as e:
        kp.add_kprobe("meminfo_proc_show", off, pre_handler=lambda p, r: 0)
    assert e.value.errno == EINVAL and dict(m.heap._sizes) == before
    ((level, text),) = [(r.level, r.text) for r in records(m)][-1:]
    assert level == 3 and text.startswith("Kprobes error: new displacement does not fit into s32 (")
    disp = int(text.split("(")[1].rstrip(")"), 16)  # %llx of an s64
    disp = disp - (1 << 64) if disp >= 1 << 63 else disp
    assert not -(1 << 31) <= disp < 1 << 31


def test_a_probe_hit_while_reentering_is_unrecoverable(system):
    """kprobe_int3_handler with KPROBE_REENTER: the message, dump_kprobe, BUG."""
    m = system.machine
    kp = m.kernel.kprobes
    probe = kp.add_kprobe("cmdline_proc_show", 5, pre_handler=lambda p, r: 0)
    size = m.types.sizeof("kprobe_ctlblk")
    for cpu in m.cpus:  # as if each CPU were stepping a probe that was itself hit from a handler
        kcb = m.struct("kprobe_ctlblk", m.var_addr("kprobe_ctlblk") + cpu.index * size)
        kcb.current_kprobe = probe
        kcb.kprobe_status = 4  # KPROBE_REENTER
    shell_run(system, "cat /proc/cmdline")
    assert m.oops is not None
    texts = [r.text for r in records(m)]
    at = texts.index("Unrecoverable kprobe detected.")
    addr = m.image.addr("cmdline_proc_show") + 5
    assert texts[at + 1 : at + 3] == [
        "kprobes: Dump kprobe:",
        f".symbol_name = cmdline_proc_show, .offset = 5, .addr = {m.image.symbolize(addr)}",
    ]
    assert texts[at + 3].startswith("Kernel panic - not syncing: BUG at arch/x86/kernel/kprobes/core.c:")
