"""/proc entries made at run time (proc_create_single, proc_remove), as modules make theirs:
they appear in /proc, read through their show function, and go away again; a taken name is
refused with Linux's warning."""

from __future__ import annotations

from machine_util import booted_system, shell_run

from klpemu.kernel.printk import records


def guest_string(m, text: str) -> int:
    addr = m.heap.kzalloc(len(text) + 1)
    m.mem.write(addr, text.encode())
    return addr


def test_an_entry_comes_reads_and_goes():
    system = booted_system()
    m = system.machine
    show = m.image.addr("cmdline_proc_show")
    de = m.call("proc_create_single", guest_string(m, "klp_extra"), 0, 0, show)
    assert de
    status, out, err = shell_run(system, "ls -l /proc; cat /proc/klp_extra")
    assert status == 0, err
    assert "-r--r--r-- 1 root root 0 Jan  1 00:00 klp_extra\n" in out  # mode 0 means 0444
    assert out.endswith(f"{m.config.cmdline}\n")
    m.call("proc_remove", de)
    assert not system.vfs.exists("/proc/klp_extra")
    assert shell_run(system, "cat /proc/klp_extra")[2] == "cat: /proc/klp_extra: No such file or directory\n"


def test_a_taken_name_is_refused():
    system = booted_system()
    m = system.machine
    seq = m.var("printk_rb").next_seq
    assert m.call("proc_create_single", guest_string(m, "cmdline"), 0o444, 0, m.image.addr("meminfo_proc_show")) == 0
    assert [r.text for r in records(m, seq)] == ["proc_dir_entry '/proc/cmdline' already registered"]
    assert shell_run(system, "cat /proc/cmdline")[1] == f"{m.config.cmdline}\n"  # still the kernel's own
