"""A kprobe event on cmdline_proc_show and livepatch-sample's replacement of it: the event's probe
has no post handler, so it sits in kprobe_ftrace_ops beside the patch's IPMODIFY ops; each read
of /proc/cmdline hits the probe at the old function's entry (a record in `trace`) and then runs
the new function. The conflict record shows the meeting and the rule that let both stay."""

from __future__ import annotations

from ftracetest import Ftracetest
from machine_util import booted_system, shell_run

LINE_TAIL = "cmdline: (cmdline_proc_show+0x0/0x2e) m=0x"


def test_kprobe_event_and_livepatch_share_the_function():
    system = booted_system()
    ft = Ftracetest(system)
    assert ft.try_write("kprobe_events", "p:cmdline cmdline_proc_show m=%di") == 0
    assert ft.try_write("events/kprobes/cmdline/enable", "1") == 0
    status, out, err = shell_run(
        system, "insmod livepatch-sample; wait /sys/kernel/livepatch/livepatch_sample/transition 0; cat /proc/cmdline"
    )
    assert status == 0, err
    assert out.endswith("this has been live patched\n")

    hits = [line for line in ft.cat("trace").splitlines() if not line.startswith("#")]
    assert len(hits) == 1 and hits[0].lstrip().startswith("sh-7 ") and LINE_TAIL in hits[0], hits
    assert ft.cat("kprobe_profile") == f"  {'cmdline':<44} {1:15d} {0:15d}\n"
    assert "cmdline_proc_show+0x0    [FTRACE]" in ft.cat("/sys/kernel/debug/kprobes/list")

    (meeting,) = system.kernel.conflicts.records
    text = meeting.format()
    assert "livepatch 'livepatch_sample' meets kprobe at cmdline_proc_show+0x0 [kprobe event kprobes/cmdline]" in text
    assert meeting.rule == "livepatch-kprobe" and meeting.errno == 0
    assert "both stay" in text

    # The event is in use: kprobe_events cannot be cleared until it is off.
    assert ft.try_write("kprobe_events", "") == 16  # EBUSY
    assert ft.try_write("events/kprobes/cmdline/enable", "0") == 0
    assert ft.try_write("kprobe_events", "") == 0
    assert "cmdline_proc_show" not in ft.cat("/sys/kernel/debug/kprobes/list")
