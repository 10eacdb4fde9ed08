"""trace-call: one call of a traced function, every instruction labelled by its part of ftrace."""

from __future__ import annotations

import io

import pytest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.kernel.ftrace.ops import FL
from klpemu.shell import Shell
from klpemu.trace_call import TraceCallError, trace_call

FUNC = "cmdline_proc_show"

REDIRECT_PARTS = [
    "site",
    "trampoline: save regs",
    "trampoline: call handler",
    "handler: ftrace_redirect_func",
    "trampoline: restore regs",
    "trampoline: return",
    "new function: version_proc_show",
    "return",
]
# The redirect through ops r's private copy of ftrace_caller: 42 trampoline instructions (as
# test_ftrace_trampolines counts ftrace_caller), ftrace_redirect_func's 3, and version_proc_show
# writing the 62-byte banner (strlen and memcpy loop over it).
REDIRECT_COUNTS = {
    "site": 1,
    "trampoline: save regs": 24,
    "trampoline: call handler": 4,
    "handler: ftrace_redirect_func": 3,
    "trampoline: restore regs": 13,
    "trampoline: return": 1,
    "new function: version_proc_show": 548,
    "return": 1,
}


@pytest.fixture
def system():
    return booted_system()


shell = shell_run


def redirect_ops(m):
    ft = m.kernel.ftrace
    ops = ft.ops_native("r", "ftrace_redirect_func", FL["IPMODIFY"])
    m.struct("ftrace_ops", ops.addr).private = m.image.addr("version_proc_show")
    ft.set_filter(ops, [FUNC])
    ft.register(ops)
    return ops


def test_without_ops_the_site_is_a_nop_and_the_body_follows(system):
    m = system.machine
    r = trace_call(m, FUNC, seq_file=True)
    assert r.parts() == ["site", "traced function", "return"]
    site = r.steps[0]
    assert site.addr == m.image.addr(FUNC) and site.text.startswith("nop") and "NOP5" in site.detail
    assert r.steps[1].addr == site.addr + 5
    assert r.steps[-1].text.startswith("ret")
    assert r.ret == 0
    assert r.seq_text == m.config.cmdline + "\n"
    assert sum(r.counts().values()) == len(r.steps)


def test_native_redirect_labels_every_part_in_order(system):
    m = system.machine
    redirect_ops(m)
    r = trace_call(m, FUNC, seq_file=True)
    assert r.parts() == REDIRECT_PARTS
    assert r.counts() == REDIRECT_COUNTS
    assert r.seq_text == system.console.read_file("/proc/version")
    assert r.ret == 0
    # The private trampoline is named by its owner, and its phases come from the template.
    tramp = [s for s in r.steps if s.label.startswith("trampoline")]
    assert all(s.where.startswith("ftrace_trampoline+") and s.where.endswith("[r]") for s in tramp)
    assert "a copy of ftrace_caller" in tramp[0].detail
    notes = [s.note for s in tramp if s.note]
    assert notes[0] == "ftrace_caller_op_ptr: rdx = ops 'r'"
    assert notes[1] == "ftrace_call: the call slot"
    assert notes[2] == "to version_proc_show+0x0: regs->ip, where the handler redirected"
    assert r.steps[0].text.startswith("call") and "private trampoline of ops 'r'" in r.steps[0].detail


def test_the_shell_command_prints_labelled_lines_headers_and_a_summary(system):
    redirect_ops(system.machine)
    status, out, err = shell(system, f"trace-call {FUNC} --seq-file")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    headers = [line[3:].split(" -- ")[0] for line in lines if line.startswith("== ")]
    assert headers == REDIRECT_PARTS
    assert lines[0].startswith("== site -- ")
    assert lines[1].startswith("[site]") and f"{FUNC}+0x0" in lines[1]
    # A blank line before every header but the first.
    for i, line in enumerate(lines):
        if line.startswith("== ") and i:
            assert lines[i - 1] == ""
    summary = out[out.index("instructions per part:") :].splitlines()
    rows = {" ".join(row.split()[:-1]): int(row.split()[-1]) for row in summary[1 : len(REDIRECT_COUNTS) + 2]}
    assert rows == {**REDIRECT_COUNTS, "total": sum(REDIRECT_COUNTS.values())}
    assert f"{FUNC} returned 0 (0x0)" in out
    assert out.endswith(system.console.read_file("/proc/version"))


def test_two_ops_share_ftrace_caller_and_the_list_function_calls_each(system):
    m = system.machine
    ft = m.kernel.ftrace
    for name in ("a", "b"):
        ops = ft.ops_native(name, "ftrace_empty_func")
        ft.set_filter(ops, [FUNC])
        ft.register(ops)
    r = trace_call(m, FUNC, seq_file=True)
    assert r.parts() == [
        "site",
        "trampoline: save regs",
        "trampoline: call handler",
        "list function",
        "handler: ftrace_empty_func",  # b, the newest, first
        "list function",
        "handler: ftrace_empty_func",
        "list function",
        "trampoline: restore regs",
        "trampoline: return",
        "traced function",
        "return",
    ]
    assert "ftrace_caller (shared)" in r.steps[0].detail
    ret = next(s for s in r.steps if s.label == "trampoline: return")
    assert ret.note == f"back to {FUNC}+0x5, after the site"
    handlers = [
        s.detail
        for i, s in enumerate(r.steps)
        if s.label.startswith("handler") and r.steps[i - 1].label == "list function"
    ]
    assert handlers == ["the handler of ops 'b'", "the handler of ops 'a'"]
    assert {s.where.split("+")[0] for s in r.steps if s.label == "list function"} == {
        "ftrace_ops_list_func",
        "ftrace_ops_test",
    }
    assert r.seq_text == m.config.cmdline + "\n"


def test_python_ops_shows_the_hypercall_and_runs_the_callback(system):
    m = system.machine
    ft = m.kernel.ftrace
    seen = []
    ops = ft.ops_python("py", lambda ip, parent_ip, regs: seen.append((ip, parent_ip)), FL["SAVE_REGS"])
    ft.set_filter(ops, [FUNC])
    ft.register(ops)
    r = trace_call(m, FUNC, seq_file=True)
    assert "python handler" in r.parts()
    assert "a copy of ftrace_regs_caller" in r.steps[1].detail
    out_insn = [s for s in r.steps if s.label == "python handler" and s.text.startswith("out")]
    assert len(out_insn) == 1
    assert "the Python callback of ops 'py' runs on the host" in out_insn[0].note
    assert seen == [(m.image.addr(FUNC), m.image.addr("hostcall_return"))]
    status, out, _ = shell(system, f"trace-call {FUNC} --seq-file")
    assert status == 0 and "[python handler]" in out and "Python callback of ops 'py'" in out
    assert len(seen) == 2


def test_function_tracer_handler_and_its_callees(system):
    m = system.machine
    system.vfs.write("/sys/kernel/tracing/set_ftrace_filter", f"{FUNC}\n")
    system.vfs.write("/sys/kernel/tracing/current_tracer", "function\n")
    r = trace_call(m, FUNC, seq_file=True)
    counts = r.counts()
    # The ring's first record begins a page (rb_move_tail's 25); the next fits on it.
    assert counts["handler: function_trace_call"] == 143 + 25  # 141 + local_clock's 2
    where = {s.where.split("+")[0] for s in r.steps if s.label == "handler: function_trace_call"}
    assert {"local_clock", "rb_move_tail"} <= where
    r = trace_call(m, FUNC, seq_file=True)
    assert r.counts()["handler: function_trace_call"] == 143
    assert f"{FUNC} <-hostcall_return" in system.vfs.read("/sys/kernel/tracing/trace")


def test_a_site_being_poked_goes_through_the_int3_handler(system):
    m = system.machine
    ft = m.kernel.ftrace
    site = m.image.addr(FUNC)
    results = []

    def probe(step):
        if m.mem.read(site, 1) == b"\xcc" and not results:
            results.append(trace_call(m, FUNC, seq_file=True))

    ops = ft.ops_native("e", "ftrace_empty_func")
    ft.set_filter(ops, [FUNC])
    m.kernel.text_poke.between_steps = probe
    try:
        ft.register(ops)
    finally:
        m.kernel.text_poke.between_steps = None
    (r,) = results
    assert r.parts() == [
        "site",
        "int3 handler",
        "trampoline: save regs",
        "trampoline: call handler",
        "handler: ftrace_empty_func",
        "trampoline: restore regs",
        "trampoline: return",
        "traced function",
        "return",
    ]
    assert r.steps[0].text == "int3" and "text_poke is rewriting it" in r.steps[0].detail
    assert {"asm_exc_int3", "do_int3", "poke_int3_handler"} <= {
        s.where.split("+")[0] for s in r.steps if s.label == "int3 handler"
    }


def test_same_call_same_trace(system):
    m = system.machine
    redirect_ops(m)
    first = trace_call(m, FUNC, seq_file=True, cpu=1).format()
    assert trace_call(m, FUNC, seq_file=True, cpu=1).format() == first


def test_errors(system):
    m = system.machine
    with pytest.raises(KlpemuError) as e:
        trace_call(m, "ftrace_ops_list_func")
    assert e.value.errno == 22 and "not traceable" in str(e.value)
    with pytest.raises(KlpemuError) as e:
        trace_call(m, "no_such_function")
    assert e.value.errno == 22
    with pytest.raises(KlpemuError) as e:
        trace_call(m, FUNC, cpu=5)
    assert e.value.errno == 22
    with pytest.raises(KlpemuError) as e:
        trace_call(m, FUNC, [1] * 6, seq_file=True)
    assert e.value.errno == 22
    assert shell(system, "trace-call")[2].startswith("trace-call: missing function name\nusage: trace-call FUNC")
    assert shell(system, "trace-call ftrace_stub")[2].startswith("trace-call: ftrace_stub: not traceable")
    assert shell(system, f"trace-call {FUNC} --cpu x")[2].startswith("trace-call: --cpu needs a CPU number")
    assert shell(system, f"trace-call {FUNC} --bogus")[2].startswith("trace-call: unknown option '--bogus'")


def test_a_call_that_crashes_shows_the_trace_then_the_oops(system):
    m = system.machine
    with pytest.raises(TraceCallError) as e:
        trace_call(m, FUNC)  # a NULL seq_file
    assert e.value.errno == 5
    r = e.value.result
    assert r.parts()[:2] == ["site", "traced function"] and r.ret is None
    assert r.oops.startswith("BUG: kernel NULL pointer dereference, address: 0000000000000010")
    assert f"RIP: 0010:{r.steps[-1].where}/" in r.oops  # the faulting instruction is the last one
    assert r.steps[-1].note == "the machine stopped here"
    with pytest.raises(KlpemuError) as e:
        trace_call(m, FUNC, seq_file=True)
    assert e.value.errno == 5 and "stopped" in str(e.value)


def test_the_shell_prints_a_crashing_call_and_its_oops():
    system = booted_system()
    out, err = io.StringIO(), io.StringIO()
    sh = Shell(system, out=out, err=err)
    assert sh.run_line(f"trace-call {FUNC} --arg 0 --arg 0") == 1
    assert out.getvalue().startswith("== site") and "[traced function]" in out.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[lines.index("instructions per part:") - 2].endswith("; the machine stopped here")
    assert lines[-1] == f"{FUNC} did not return: the machine stopped with an oops"
    assert err.getvalue().startswith("BUG: kernel NULL pointer dereference")
    assert sh.run_line(f"trace-call {FUNC} --seq-file") == 1
    assert err.getvalue().endswith("trace-call: the machine stopped after an oops; it cannot run a call\n")
