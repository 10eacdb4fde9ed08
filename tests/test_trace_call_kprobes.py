"""Stepping a call through kprobes: a function carrying a kretprobe and a livepatch, and an
int3 kprobe stepped out of line, each part labelled."""

from __future__ import annotations

from machine_util import booted_system, shell_run

from klpemu.kernel.livepatch.builder import KlpBuilder
from klpemu.trace_call import trace_call


def test_kretprobe_and_livepatch_on_one_function():
    system = booted_system()
    m = system.machine
    returns = []
    m.kernel.kprobes.kretprobes.add("cmdline_proc_show", handler=lambda ri, regs: returns.append(ri.ret_addr))
    b = KlpBuilder(m.kernel.livepatch)
    m.kernel.livepatch.enable(b.patch("lp", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])]))
    assert m.run_until(lambda: m.kernel.livepatch.transition.patch is None, 5_000_000_000)
    r = trace_call(m, "cmdline_proc_show", seq_file=True)
    assert r.parts() == [
        "site",
        "trampoline: save regs",
        "trampoline: call handler",
        "list function",
        "handler: klp_ftrace_handler",  # the newest ops first: the patch's
        "list function",
        "handler: kprobe_ftrace_handler",
        "kprobe pre handler: pre_handler_kretprobe",  # swaps the return address for the trampoline
        "handler: kprobe_ftrace_handler",
        "list function",
        "trampoline: restore regs",
        "trampoline: return",
        "new function: version_proc_show",
        "kretprobe trampoline",  # the new function returned here, not to its caller
        "kretprobe handler: kretprobe_host_handler",
        "kretprobe trampoline",
        "return",
    ]
    assert r.seq_text.startswith("klpemu kernel version")  # the new function's text
    assert returns == [m.image.addr("hostcall_return")]  # the real return address, given to the handler
    out = r.format()
    assert "hypercall: the probe's Python handler runs on the host during this instruction" in out
    assert "== return -- from __kretprobe_trampoline to the real return address (the host call's)" in out
    assert "== new function: version_proc_show" in out


def test_int3_kprobe_stepped_out_of_line():
    system = booted_system()
    m = system.machine
    m.kernel.kprobes.add_kprobe(
        "cmdline_proc_show", 5, pre_handler=lambda p, regs: 0, post_handler=lambda p, regs, flags: None
    )
    r = trace_call(m, "cmdline_proc_show", seq_file=True)
    parts = r.parts()
    assert parts[:2] == ["site", "traced function"]
    i = parts.index("int3 handler")
    assert parts[i : i + 8] == [
        "int3 handler",
        "kprobe int3 handler",
        "kprobe pre handler: kprobe_host_pre_handler",
        "kprobe int3 handler",
        "int3 handler",
        "kprobe: out-of-line step",
        "int3 handler",
        "kprobe int3 handler",
    ]
    assert "kprobe post handler: kprobe_host_post_handler" in parts[i + 8 :]
    assert parts[-1] == "return" and r.seq_text == m.config.cmdline + "\n"
    assert "a kprobe's int3: do_int3 passes it to kprobe_int3_handler" in r.format()
    assert shell_run(system, "cat /proc/cmdline")[1] == m.config.cmdline + "\n"
