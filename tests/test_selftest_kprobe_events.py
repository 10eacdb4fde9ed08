"""Linux's tools/testing/selftests/ftrace/test.d/kprobe/kprobe_syntax_errors.tc, case by case:
each bad kprobe definition is refused, and error_log carries Linux's message with the caret where
the script's ^ is. The script checks the caret alone; these also check the message.

The script's branches follow what README claims. This kernel claims `r[maxactive]`, `$arg<N>`,
`imm-value`, `imm-string`, `$comm`, arrays, `Create/append/` and `%return`; it has no BTF, so
the `<argname>` branch is the one without it (`$arg*` needs BTF); it claims `kernel return
probes support:` ($argN on a return probe, saved at the entry), so the BAD_VAR case of `r
vfs_read $arg1` does not apply.
"""

from __future__ import annotations

import re
from errno import EBUSY, EINVAL, ENOENT

import pytest
from ftracetest import Ftracetest, trace_lines, yield_
from machine_util import booted_system, shell_run

FUNCTION_FORK = "kernel_clone"

# (the script's pattern, Linux's message for it)
SYNTAX_ERRORS = [
    ("p^100 vfs_read", "Maxactive is only for function exit"),
    ("r^1a111 vfs_read", "Invalid maxactive number"),
    ("r^100000 vfs_read", "Maxactive is too big"),
    ("p ^non_exist_func", "Invalid probed address or symbol"),
    ("p ^hoge-fuga", "Invalid probed address or symbol"),
    ("p ^hoge+1000-1000", "Invalid probed address or symbol"),
    ("r ^vfs_read+10", "Retprobe address must be an function entry"),
    ("p:^/bar vfs_read", "Group name is not specified"),
    (
        "p:^12345678901234567890123456789012345678901234567890123456789012345/bar vfs_read",
        "Group name is too long",
    ),
    ("p:^foo.1/bar vfs_read", "Group name must follow the same rules as C identifiers"),
    ("p:^ vfs_read", "Event name is not specified"),
    (
        "p:foo/^12345678901234567890123456789012345678901234567890123456789012345 vfs_read",
        "Event name is too long",
    ),
    ("p:foo/^bar.1 vfs_read", "Event name must follow the same rules as C identifiers"),
    ("p vfs_read ^$retval", "$retval is not available on probe"),
    ("p vfs_read ^$stack10000", "Invalid stack number"),
    ("p vfs_read ^$arg10000", "Invalid argument number"),
    ("p vfs_read ^$none_var", "Invalid $-valiable specified"),
    ("p vfs_read ^%none_reg", "Invalid register name"),
    ("p vfs_read ^@12345678abcde", "Invalid memory address"),
    ("p vfs_read ^@+10", "File offset is not available with kprobe"),
    ("p vfs_read arg1=\\^x", "Invalid immediate value"),
    ('p vfs_read arg1=\\"abcd^', "String is not closed with '\"'"),
    ("p vfs_read ^+0@0)", "Dereference needs a brace"),
    ("p vfs_read ^+0ab1(@0)", "Invalid dereference offset"),
    ("p vfs_read +0(+0(@0^)", "Dereference brace is not closed"),
    ("p vfs_read +0(^$comm)", "$comm can not be dereferenced"),
    ("p vfs_read ^&1", "Invalid fetch argument"),
    (
        "p vfs_read +0(^+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(@0))))))))))))))",
        "Dereference is too much nested",
    ),
    ("p vfs_read +0(@11):u8[10^", "Array is not closed"),
    ("p vfs_read +0(@11):u8[10]^a", "Array has wrong suffix"),
    ("p vfs_read +0(@11):u8[^10a]", "Invalid array size"),
    ("p vfs_read +0(@11):u8[^256]", "Array number is too big"),
    ("p vfs_read @11:^unknown_type", "Unknown type is specified"),
    ("p vfs_read $stack0:^string", "String accepts only memory argument"),
    ("p vfs_read @11:^b10@a/16", "Invalid bitfield"),
    ("p vfs_read ^arg123456789012345678901234567890=@11", "Argument name is too long"),
    ("p vfs_read ^=@11", "Argument name is not specified"),
    ("p vfs_read ^var.1=@11", "Argument name must follow the same rules as C identifiers"),
    ("p vfs_read var1=@11 ^var1=@12", "This argument name is already used"),
    (
        "p vfs_read ^+1234567(+1234567(+1234567(+1234567(+1234567(+1234567(@1234))))))",
        "Argument expression is too long",
    ),
    ("p vfs_read arg1=^", "No argument expression"),
    # %return suffix errors
    ("p vfs_read^%hoge", "Invalid probed address suffix"),
    ("p ^vfs_read+10%return", "Retprobe address must be an function entry"),
    # BTF arguments errors, the branch for a kernel without BTF
    ("p vfs_read ^$arg*", "BTF is not available or not supported"),
]


@pytest.fixture(scope="module")
def ft():
    return Ftracetest(booted_system())


def check_error(ft: Ftracetest, pattern: str) -> str:
    return ft.errlog_check("trace_kprobe", pattern, "kprobe_events")


def test_readme_claims_what_the_script_greps_for(ft):
    readme = ft.cat("README")
    for claim in ("r[maxactive]", "$arg<N>", "imm-value", "imm-string", "Create/append/", " <type>\\[<array-size>\\]"):
        assert claim in readme, claim
    assert "place (kretprobe): " in readme and "%return" in readme
    lines = readme.splitlines()
    fetcharg = next(i for i, line in enumerate(lines) if "fetcharg:" in line)
    assert "$comm" in "\n".join(lines[fetcharg : fetcharg + 2])
    assert "<argname>" not in readme and "kernel return probes support:" in readme


@pytest.mark.parametrize(("pattern", "message"), SYNTAX_ERRORS, ids=[p for p, _ in SYNTAX_ERRORS])
def test_syntax_error(ft, pattern, message):
    entry = check_error(ft, pattern)
    caret = " " * (11 + pattern.index("^")) + "^"
    assert entry == f"trace_kprobe: error: {message}\n  Command: {pattern.replace('^', '')}\n{caret}"
    assert ft.cat("kprobe_events") == ""


def test_instruction_boundary(ft):
    """A probe inside vfs_read's fentry site: kprobes refuse the address (EILSEQ)."""
    assert ft.try_write("kprobe_events", "p vfs_read") == 0
    assert "[FTRACE]" in ft.cat("/sys/kernel/debug/kprobes/list")
    entry = check_error(ft, "p ^vfs_read+3")
    assert entry.splitlines()[0] == "trace_kprobe: error: Probe point is not an instruction boundary"
    assert ft.cat("kprobe_events") == "p:kprobes/p_vfs_read_0 vfs_read\n"
    assert ft.try_write("kprobe_events", "") == 0


def test_multiprobe_errors(ft):
    assert ft.try_write("kprobe_events", f"p:kprobes/testevent {FUNCTION_FORK}") == 0
    assert check_error(ft, "^r:kprobes/testevent do_exit").startswith(
        "trace_kprobe: error: Probe type is different from existing probe\n"
    )
    assert ft.try_write("kprobe_events", f"p:kprobes/testevent {FUNCTION_FORK} abcd=\\1") == 0
    diff = "trace_kprobe: error: Argument type or name is different from existing probe\n"
    assert check_error(ft, f"p:kprobes/testevent {FUNCTION_FORK} ^bcd=\\1").startswith(diff)
    assert check_error(ft, f"p:kprobes/testevent {FUNCTION_FORK} ^abcd=\\1:u8").startswith(diff)
    assert check_error(ft, f'p:kprobes/testevent {FUNCTION_FORK} ^abcd=\\"foo"').startswith(diff)
    assert check_error(ft, f"^p:kprobes/testevent {FUNCTION_FORK} abcd=\\1").startswith(
        "trace_kprobe: error: There is already the exact same probe event\n"
    )
    assert ft.cat("kprobe_events") == f"p:kprobes/testevent {FUNCTION_FORK} abcd=\\1\n"
    assert ft.try_write("kprobe_events", "") == 0


def test_error_log_keeps_the_last_eight(ft):
    ft.try_write("error_log", "")
    for n in range(10):
        ft.try_write("kprobe_events", f"p vfs_read ^$stack{10000 + n}", append=True)
    log = ft.cat("error_log")
    assert log.count("trace_kprobe: error:") == 8
    assert "$stack10002" in log and "$stack10001" not in log


# --- the other kprobe and dynevent scripts that apply -------------------------------------------


@pytest.fixture
def fresh():
    """A machine of its own, for scripts that hit their probes."""
    return Ftracetest(booted_system())


def hits(ft: Ftracetest, name: str) -> list[str]:
    return [line for line in trace_lines(ft) if f" {name}: " in line]


def test_busy_check(fresh):
    """busy_check.tc: an enabled event keeps kprobe_events from being cleared."""
    ft = fresh
    assert ft.try_write("kprobe_events", f"p:myevent {FUNCTION_FORK}") == 0
    assert ft.exists("events/kprobes/myevent")
    assert ft.try_write("events/kprobes/myevent/enable", "1") == 0
    assert ft.try_write("kprobe_events", "") == EBUSY
    assert ft.try_write("events/kprobes/myevent/enable", "0") == 0
    assert ft.try_write("kprobe_events", "") == 0


def test_add_and_remove(fresh):
    """add_and_remove.tc."""
    ft = fresh
    assert ft.try_write("kprobe_events", f"p:myevent {FUNCTION_FORK}") == 0
    assert "myevent" in ft.cat("kprobe_events")
    assert ft.exists("events/kprobes/myevent")
    assert ft.try_write("kprobe_events", "") == 0
    assert not ft.exists("events/kprobes/myevent")


def test_kprobe_args(fresh):
    """kprobe_args.tc: $stack, $stack0 and +0($stack), listed back and recorded."""
    ft = fresh
    assert ft.try_write("kprobe_events", f"p:testprobe {FUNCTION_FORK} $stack $stack0 +0($stack)") == 0
    assert ft.cat("kprobe_events") == f"p:kprobes/testprobe {FUNCTION_FORK} arg1=$stack arg2=$stack0 arg3=+0($stack)\n"
    assert ft.try_write("events/kprobes/testprobe/enable", "1") == 0
    yield_(ft)
    (line,) = hits(ft, "testprobe")
    assert re.search(r"kernel_clone\+0x0/0x[0-9a-f]+\) arg1=0x[0-9a-f]+ arg2=0x[0-9a-f]+ arg3=0x[0-9a-f]+$", line)
    assert ft.try_write("events/kprobes/testprobe/enable", "0") == 0
    assert ft.try_write("kprobe_events", "-:testprobe", append=True) == 0
    assert not ft.exists("events/kprobes/testprobe")


def test_kprobe_args_type(fresh):
    """kprobe_args_type.tc: one stack word as sN, uN, xN and a 4-bit field at bit 4."""
    ft = fresh
    for width in (64, 32, 16, 8):
        assert ft.try_write("trace", "") == 0
        event = f"p:testprobe {FUNCTION_FORK} $stack0:s{width} $stack0:u{width} $stack0:x{width} $stack0:b4@4/{width}"
        assert ft.try_write("kprobe_events", event) == 0
        assert ft.try_write("events/kprobes/testprobe/enable", "1") == 0
        yield_(ft)
        assert ft.try_write("events/kprobes/testprobe/enable", "0") == 0
        (line,) = hits(ft, "testprobe")
        m = re.search(r" arg1=(\S+) arg2=(\S+) arg3=(\S+) arg4=(\S+)$", line)
        assert m, line
        s, u, x, bf = m.groups()
        mask = (1 << width) - 1
        assert int(s) & mask == int(u) == int(x, 16)
        assert x == f"0x{int(u):x}"
        assert int(bf) == (int(u) >> 4) & 0xF
        assert ft.try_write("kprobe_events", "-:testprobe", append=True) == 0


def test_kprobe_args_symbol_and_string(fresh):
    """kprobe_args_symbol.tc: a data symbol read as every integer type, a bitfield and a string
    (this kernel's banner is linux_banner, Linux's is linux_proc_banner)."""
    ft = fresh
    sym = "@linux_banner"
    ft.try_write(
        "kprobe_events", f"p:testprobe_u {FUNCTION_FORK} arg1={sym}:u64 arg2={sym}:u32 arg3={sym}:u16 arg4={sym}:u8"
    )
    ft.try_write(
        "kprobe_events",
        f"p:testprobe_s {FUNCTION_FORK} arg1={sym}:s64 arg2={sym}:s32 arg3={sym}:s16 arg4={sym}:s8",
        append=True,
    )
    ft.try_write("kprobe_events", f"p:testprobe_bf {FUNCTION_FORK} arg1={sym}:b8@4/32", append=True)
    ft.try_write("kprobe_events", f"p:testprobe_str {FUNCTION_FORK} arg1={sym}:string", append=True)
    assert ft.try_write("events/kprobes/enable", "1") == 0
    yield_(ft)
    assert ft.try_write("events/kprobes/enable", "0") == 0
    banner = ft.cat("/proc/version")
    first = int.from_bytes(banner.encode()[:8], "little")
    (u,) = hits(ft, "testprobe_u")
    assert u.endswith(f"arg1={first} arg2={first & 0xFFFFFFFF} arg3={first & 0xFFFF} arg4={first & 0xFF}")
    (bf,) = hits(ft, "testprobe_bf")
    assert bf.endswith(f"arg1={(first >> 4) & 0xFF}")
    (text,) = hits(ft, "testprobe_str")  # the banner's newline ends the line, as in Linux's trace
    assert text.endswith(f'arg1="{banner.rstrip()}')


def test_kprobe_args_comm(fresh):
    """kprobe_args_comm.tc: $comm is the running task's name."""
    ft = fresh
    assert ft.try_write("kprobe_events", "p:testprobe vfs_read comm=$comm") == 0
    assert ft.try_write("events/kprobes/testprobe/enable", "1") == 0
    yield_(ft)
    assert any(line.lstrip().startswith("sh-7 ") and line.endswith('comm="sh"') for line in hits(ft, "testprobe"))


def test_kprobe_args_syntax(fresh):
    """kprobe_args_syntax.tc's good and bad arguments (those the script can tell apart: its
    `! echo` never fails the script, and Linux takes `+0(%ax)+10`, dropping what follows the
    last `)`; so does this kernel)."""
    ft = fresh
    goodsym, symaddr = "linux_banner", hex(ft.system.machine.image.addr("linux_banner"))
    good = [
        "%ax",
        f"@{goodsym}",
        f"@{symaddr}",
        f"@{goodsym}+10",
        f"@{goodsym}-10",
        "$stack",
        "$stack0",
        "$stack1",
        "$comm",
        "+0(%ax)",
        "-0(%ax)",
        "+10($stack)",
        "+0($stack1)",
        f"+10(@{goodsym}-10)",
        "+0(+10(+20($stack)))",
        "varname=%ax",
        "%ax:x16",
        "$comm:string",
        "+0($stack):string",
        "+0(%ax)+10",
    ]
    bad = [
        "%ex",
        "@",
        "@deaqswdefr",
        f"@{goodsym}*10",
        f"@{goodsym}/10",
        f"@{goodsym}%10",
        f"@{goodsym}&10",
        f"@{goodsym}|10",
        "$stackp",
        "$stack0+10",
        "$stack1-10",
        "$retval",
        "+(%ax)",
        "(%ax+10)",
        "-(%ax)",
        "(%ax)",
        "+10($comm)",
        "varname=varname2=%ax",
        "%ax::x16",
        "%ax:y16",
        "x16:%ax",
        "$comm:x64",
        "$stack:string",
        "%ax:string",
    ]
    for arg in good:
        assert ft.try_write("kprobe_events", f"p vfs_read {arg}") == 0, arg
    for arg in bad:
        assert ft.try_write("kprobe_events", f"p vfs_read {arg}") != 0, arg
    assert ft.try_write("kprobe_events", "r vfs_read $retval") == 0


def test_kretprobe_args(fresh):
    """kretprobe_args.tc: $retval of a return probe, and the caller it returned to."""
    ft = fresh
    assert ft.try_write("kprobe_events", "r:testprobe2 vfs_read $retval") == 0
    assert ft.cat("kprobe_events") == "r:kprobes/testprobe2 vfs_read arg1=$retval\n"
    assert ft.exists("events/kprobes/testprobe2")
    assert ft.try_write("events/kprobes/testprobe2/enable", "1") == 0
    yield_(ft)
    lines = hits(ft, "testprobe2")
    assert lines and all(re.search(r"\(\S+ <- vfs_read\) arg1=0x[0-9a-f]+$", line) for line in lines), lines
    assert ft.try_write("events/kprobes/testprobe2/enable", "0") == 0
    assert ft.try_write("kprobe_events", "-:testprobe2", append=True) == 0
    assert not ft.exists("events/kprobes/testprobe2")


def test_kretprobe_maxactive(fresh):
    """kretprobe_maxactive.tc: r100 is accepted and listed back, r1000000 is not."""
    ft = fresh
    assert ft.try_write("kprobe_events", "r100:kprobes/testprobe2 vfs_read") == 0
    assert ft.cat("kprobe_events") == "r100:kprobes/testprobe2 vfs_read\n"
    assert ft.try_write("kprobe_events", "r1000000:kprobes/testprobe2 vfs_read") == EINVAL


def test_kretprobe_return_suffix(fresh):
    """kretprobe_return_suffix.tc: `p SYM%return` makes a return probe, listed as `r`."""
    ft = fresh
    assert ft.try_write("kprobe_events", "p:myevent vfs_read%return") == 0
    assert ft.cat("kprobe_events") == "r:kprobes/myevent vfs_read\n"


def test_profile(fresh):
    """profile.tc."""
    ft = fresh
    assert "myevent" not in ft.cat("kprobe_profile")
    assert ft.try_write("kprobe_events", f"p:myevent {FUNCTION_FORK}") == 0
    assert re.search(r"myevent\s*0\s*0$", ft.cat("kprobe_profile"), re.M)
    assert ft.try_write("events/kprobes/myevent/enable", "1") == 0
    yield_(ft)
    assert re.search(r"myevent\s*[1-9]\d*\s*0$", ft.cat("kprobe_profile"), re.M)
    assert ft.try_write("events/kprobes/myevent/enable", "0") == 0
    assert ft.try_write("kprobe_events", "") == 0
    assert "myevent" not in ft.cat("kprobe_profile")


def test_eventname(fresh):
    """kprobe_eventname.tc (its last part wants a `.isra.` function, which this kernel's gcc
    flags do not make)."""
    ft = fresh
    assert ft.try_write("kprobe_events", "p vfs_read") == 0
    assert ft.exists("events/kprobes/p_vfs_read_0")
    assert ft.try_write("kprobe_events", "p:event1 vfs_read") == 0
    assert ft.exists("events/kprobes/event1")
    assert ft.try_write("kprobe_events", "p:kprobes2/event2 vfs_read") == 0
    assert ft.exists("events/kprobes2/event2")


def test_multiprobe(fresh):
    """kprobe_multiprobe.tc: two probes of one event, removed together or one by one."""
    ft = fresh
    def1, def2 = f"p:kprobes/testevent {FUNCTION_FORK}", "p:kprobes/testevent do_exit"
    assert ft.try_write("kprobe_events", def1, append=True) == 0
    assert ft.try_write("kprobe_events", def2, append=True) == 0
    assert ft.cat("kprobe_events") == f"{def1}\n{def2}\n"
    assert ft.try_write("kprobe_events", "-:kprobes/testevent", append=True) == 0
    assert ft.cat("kprobe_events") == ""
    ft.try_write("kprobe_events", def1, append=True)
    ft.try_write("kprobe_events", def2, append=True)
    assert ft.try_write("kprobe_events", f"-:kprobes/testevent {FUNCTION_FORK}", append=True) == 0
    assert ft.cat("kprobe_events") == f"{def2}\n"
    assert ft.try_write("kprobe_events", f"{def1} $stack", append=True) != 0


def test_probepoint_and_non_unique(fresh):
    """probepoint.tc's symbol+offset and address probes, and kprobe_non_uniq_symbol.tc with a
    name this kernel has twice (get_idle_time)."""
    ft = fresh
    addr = ft.system.machine.image.addr("vfs_read")
    assert ft.try_write("kprobe_events", "p:testprobe vfs_read") == 0
    assert ft.try_write("kprobe_events", f"p:testprobe2 0x{addr:x}", append=True) == 0
    assert ft.try_write("kprobe_events", "p:testprobe3 vfs_read+5", append=True) == 0
    assert ft.cat("kprobe_events").splitlines()[1:] == [
        f"p:kprobes/testprobe2 0x{addr:016x}",
        "p:kprobes/testprobe3 vfs_read+5",
    ]
    assert check_error(ft, "p ^get_idle_time").endswith(
        "error: The symbol is not unique\n  Command: p get_idle_time\n             ^"
    )


def test_dynevent_add_remove_kprobe(fresh):
    """dynevent/add_remove_kprobe.tc: dynamic_events takes and lists kprobe definitions."""
    ft = fresh
    assert ft.try_write("dynamic_events", f"p:myevent {FUNCTION_FORK}") == 0
    assert ft.cat("dynamic_events") == f"p:kprobes/myevent {FUNCTION_FORK}\n"
    assert ft.cat("kprobe_events") == f"p:kprobes/myevent {FUNCTION_FORK}\n"
    assert ft.exists("events/kprobes/myevent")
    assert ft.try_write("dynamic_events", "-:myevent", append=True) == 0
    assert ft.cat("dynamic_events") == ""
    assert not ft.exists("events/kprobes/myevent")


def test_dynevent_generic_clear(fresh):
    """dynevent/generic_clear_event.tc, its kprobe part: `-:GROUP/` and `-:EVENT` through
    dynamic_events (the synthetic-event part cannot apply: no synthetic events here)."""
    ft = fresh
    ft.try_write("dynamic_events", f"p:myevent1 {FUNCTION_FORK}", append=True)
    ft.try_write("dynamic_events", f"r:myevent2 {FUNCTION_FORK}", append=True)
    ft.try_write("dynamic_events", f"p:other/myevent3 {FUNCTION_FORK}", append=True)
    assert ft.try_write("dynamic_events", "-:kprobes/myevent1", append=True) == 0
    assert "myevent1" not in ft.cat("dynamic_events")
    assert ft.try_write("dynamic_events", "-:other/", append=True) == 0
    assert ft.cat("dynamic_events") == f"r:kprobes/myevent2 {FUNCTION_FORK}\n"
    assert ft.try_write("dynamic_events", "-:nosuch", append=True) == ENOENT


def test_kprobe_module(fresh):
    """kprobe_module.tc with this kernel's `hello` module (its init calls hello_greet, as the
    trace-printk sample's init runs trace_printk_irq_work): probes on a module function stay
    when the module goes, can be defined while it is gone, and fire when it comes back."""
    ft = fresh
    mod, func = "hello", "hello_greet"

    def sh(cmd: str) -> None:
        status, _, err = shell_run(ft.system, cmd)
        assert status == 0, err

    sh(f"insmod {mod}")
    assert ft.try_write("kprobe_events", f"p:event0 {func}") == 0
    assert ft.exists("events/kprobes/event0")
    assert ft.try_write("kprobe_events", "-:kprobes/event0", append=True) == 0
    assert ft.try_write("kprobe_events", f"p {mod}:{func}") == 0
    assert ft.exists(f"events/kprobes/p_{mod}_{func}_0")
    assert ft.try_write("kprobe_events", f"p:event1 {mod}:{func}") == 0
    assert ft.exists("events/kprobes/event1")
    assert ft.try_write("kprobe_events", f"p:kprobes1/event1 {mod}:{func}") == 0
    assert ft.exists("events/kprobes1/event1")

    sh(f"rmmod {mod}")
    assert ft.exists("events/kprobes1/event1")
    assert ft.try_write("kprobe_events", f"p:event2 {mod}:{func}", append=True) == 0
    assert ft.try_write("events/kprobes1/event1/enable", "1") == 0
    sh(f"insmod {mod}")
    assert any(" event1: (hello_greet+0x0/" in line for line in trace_lines(ft)), ft.cat("trace")
    sh(f"rmmod {mod}")
    assert ft.try_write("events/kprobes1/event1/enable", "0") == 0
    assert ft.try_write("kprobe_events", "-:kprobes1/event1", append=True) == 0
    assert ft.cat("kprobe_events") == f"p:kprobes/event2 {mod}:{func}\n"


def test_kprobe_args_char_and_argn(fresh):
    """kprobe_args_char.tc (a `char` arg prints as '%c'), and $argN at a function's entry: the
    registers of the calling convention."""
    ft = fresh
    assert ft.try_write("kprobe_events", "p:testprobe vfs_read c=@linux_banner:char n=$arg3 f=$arg1") == 0
    assert ft.cat("events/kprobes/testprobe/format").splitlines()[7:11] == [
        "",
        "\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;",
        "\tfield:u8 c;\toffset:16;\tsize:1;\tsigned:0;",
        "\tfield:u64 n;\toffset:17;\tsize:8;\tsigned:0;",
    ]
    assert ft.try_write("events/kprobes/testprobe/enable", "1") == 0
    yield_(ft)
    lines = [line for line in hits(ft, "testprobe") if line.lstrip().startswith("sh-7 ")]
    assert lines and all(re.search(r"\) c='k' n=0x[0-9a-f]+ f=0xffff", line) for line in lines), lines


def test_kprobe_args_user(fresh):
    """kprobe_args_user.tc with this kernel's open: `ustring` and `+u` read the path from user
    memory; the same fetches on kernel memory fault."""
    ft = fresh
    assert ft.try_write("kprobe_events", "p:myevent sys_open path=+0($arg1):ustring path2=+u0($arg1):string") == 0
    assert "path=+0($arg1):ustring path2=+u0($arg1):string" in ft.cat("kprobe_events")
    assert ft.try_write("events/kprobes/myevent/enable", "1") == 0
    status, _, err = shell_run(ft.system, "cat /proc/version")
    assert status == 0, err
    assert ft.try_write("events/kprobes/myevent/enable", "0") == 0
    assert any(line.endswith('path="/proc/version" path2="/proc/version"') for line in hits(ft, "myevent"))

    assert ft.try_write("kprobe_events", "p:myevent vfs_read path=+0($arg1):ustring path2=+u0($arg1):string") == 0
    assert ft.try_write("events/kprobes/myevent/enable", "1") == 0
    shell_run(ft.system, "cat /proc/version")
    assert ft.try_write("events/kprobes/myevent/enable", "0") == 0
    lines = hits(ft, "myevent")
    assert lines and all(line.endswith("path=(fault) path2=(fault)") for line in lines), lines


def test_kretprobe_entry_arg(fresh):
    """kretprobe_entry_arg.tc: a return probe's $argN are the arguments the call was made with,
    saved at its entry (here checked against a probe on the same entry)."""
    ft = fresh
    assert ft.try_write("kprobe_events", "p:enter vfs_read buf=$arg2 count=$arg3") == 0
    assert ft.try_write("kprobe_events", "r:leave vfs_read buf=$arg2 count=$arg3 ret=$retval", append=True) == 0
    assert ft.try_write("events/kprobes/enable", "1") == 0
    status, _, err = shell_run(ft.system, "cat /proc/version")
    assert status == 0, err
    assert ft.try_write("events/kprobes/enable", "0") == 0
    sh = [line.split(": ", 1)[1] for line in trace_lines(ft) if line.lstrip().startswith("sh-7 ")]
    pairs = [(a, b) for a, b in zip(sh, sh[1:], strict=False) if a.startswith("enter:") and b.startswith("leave:")]
    assert pairs, sh
    for enter, leave in pairs:
        assert enter.split(") ", 1)[1] == leave.split(") ", 1)[1].rsplit(" ret=", 1)[0]
