"""Module linking by exported symbols only: EXPORT_SYMBOL and EXPORT_SYMBOL_GPL fill __ksymtab and
__ksymtab_gpl; a module's undefined symbols resolve against those of vmlinux and of the loaded
modules and nothing else; licences, taints, references between modules, and /proc/kallsyms."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from machine_util import booted_system
from test_modules import assert_nothing_loaded, log_since, next_seq, ok, run, snapshot

from klpemu.kernel.module import shipped_modules_dir
from klpemu.machine.machine import shipped_image

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

# A static of fs/proc/cmdline.c and a global of init/main.c that Linux does not export either.
USES_INTERNALS = """\
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/proc_fs.h>

extern const struct proc_dir_entry proc_cmdline;
extern const char linux_banner[];
%s
static struct klp_func funcs[] = { { } };
static struct klp_object objs[] = { { .funcs = funcs }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int internals_init(void)
{
	int ret = klp_enable_patch(&patch);

	if (!ret)
		pr_info("banner, as %%s shows it: %%s", proc_cmdline.name, linux_banner);
	return ret;
}

static void internals_exit(void)
{
}

module_init(internals_init);
module_exit(internals_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
"""

KLP_RELOCS = """
KLP_MODULE_RELOC(vmlinux) internals_relocs[] = {
	KLP_SYMPOS(proc_cmdline, 0),
	KLP_SYMPOS(linux_banner, 0),
};
"""

PROPRIETARY = """\
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>

static int blob_init(void)
{
	%s;
	return 0;
}

static void blob_exit(void)
{
}

module_init(blob_init);
module_exit(blob_exit);
MODULE_LICENSE("Proprietary");
"""

_built: dict[str, Path] = {}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    from klpemu.modbuild import build_module

    def build(name: str, source: str) -> Path:
        if name not in _built:
            src = tmp_path_factory.mktemp("exports") / f"{name}.c"
            src.write_text(source)
            _built[name] = build_module(src)
        return _built[name]

    return build


def undefined(ko: Path) -> set[str]:
    symtab = ELFFile(open(ko, "rb")).get_section_by_name(".symtab")
    return {s.name for s in symtab.iter_symbols() if s.name and s["st_shndx"] == "SHN_UNDEF"}


# --- what vmlinux exports ------------------------------------------------------------------------


def test_vmlinux_exports_what_linux_exports():
    image = booted_system().machine.image
    exports = image.exports
    plain = ["printk", "seq_printf", "kmalloc", "kfree", "msleep", "jiffies", "__fentry__", "schedule_delayed_work"]
    gpl_only = [
        "klp_enable_patch",
        "klp_shadow_get",
        "klp_get_state",
        "register_kprobe",
        "flush_work",
        "console_printk",
    ]
    assert [exports[n].gpl_only for n in plain + gpl_only] == [False] * len(plain) + [True] * len(gpl_only)
    assert all(exports[n].value == image.addr(n) for n in plain + gpl_only)
    # Not exported, as in Linux: a static function, an internal global, the livepatch core's own.
    assert {"cmdline_proc_show", "linux_banner", "boot_command_line", "klp_ftrace_handler"}.isdisjoint(exports)


def test_the_tables_are_sorted_for_a_binary_search():
    elf = ELFFile(open(shipped_image(), "rb"))
    symbols = list(elf.get_section_by_name(".symtab").iter_symbols())
    for table in ("__ksymtab", "__ksymtab_gpl"):
        sec = elf.get_section_by_name(table)
        lo, hi = sec["sh_addr"], sec["sh_addr"] + sec["sh_size"]
        entries = sorted(
            (s["st_value"], s.name) for s in symbols if s.name.startswith("__ksymtab_") and lo <= s["st_value"] < hi
        )
        assert len(entries) == sec["sh_size"] // 12 > 0
        names = [name for _, name in entries]
        assert names == sorted(names), table


def test_every_shipped_module_links_against_exports_only():
    exports = set(booted_system().machine.image.exports)
    module_exports = {"hello_greet"}  # hello's EXPORT_SYMBOL, which hello_friend uses
    for ko in sorted(shipped_modules_dir().glob("*.ko")):
        assert undefined(ko) - {"__this_module"} <= exports | module_exports, ko.name


# --- a module that reaches what vmlinux does not export -----------------------------------------


@needs_gcc
def test_a_static_and_an_internal_global_are_unknown_symbols(build):
    ko = build("internals", USES_INTERNALS % "")
    system = booted_system()
    before = snapshot(system)
    seq = next_seq(system)
    status, _, err = run(system, f"insmod {ko}")
    assert (status, err) == (1, f"insmod: ERROR: could not insert module {ko}: Unknown symbol in module\n")
    assert log_since(system, seq) == [
        "internals: loading out-of-tree module taints kernel.",
        "internals: tainting kernel with TAINT_LIVEPATCH",
        "internals: Unknown symbol proc_cmdline (err -2)",
        "internals: Unknown symbol linux_banner (err -2)",
    ]
    assert_nothing_loaded(system, before)
    assert not system.vfs.exists("/sys/kernel/livepatch/internals")


@needs_gcc
def test_the_same_module_with_klp_relocations_loads(build):
    ko = build("internals_klp", USES_INTERNALS % KLP_RELOCS)
    system = booted_system()
    seq = next_seq(system)
    ok(system, f"insmod {ko}; wait /sys/kernel/livepatch/internals_klp/transition 0")
    banner = system.vfs.read("/proc/version").rstrip("\n")
    assert f"banner, as /proc/cmdline shows it: {banner}" in log_since(system, seq)
    ok(system, "echo 0 > /sys/kernel/livepatch/internals_klp/enabled")
    ok(system, "wait --gone /sys/kernel/livepatch/internals_klp; rmmod internals_klp")


# --- licences and taints -------------------------------------------------------------------------


@needs_gcc
def test_a_proprietary_module_cannot_use_a_gpl_only_export(build):
    ko = build("blob_gpl", PROPRIETARY % "klp_shadow_get(NULL, 1)")
    system = booted_system()
    before = snapshot(system)
    seq = next_seq(system)
    assert run(system, f"insmod {ko}")[2] == f"insmod: ERROR: could not insert module {ko}: Unknown symbol in module\n"
    assert log_since(system, seq) == [
        "blob_gpl: loading out-of-tree module taints kernel.",
        "blob_gpl: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
        "blob_gpl: Unknown symbol klp_shadow_get (err -2)",
    ]
    assert_nothing_loaded(system, before)
    # The taint stays with the kernel, as Linux's does, though the module did not load.
    assert system.vfs.read("/proc/sys/kernel/tainted") == f"{1 << 0 | 1 << 12}\n"


@needs_gcc
def test_a_proprietary_module_using_plain_exports_loads_and_taints_the_kernel(build):
    ko = build("blob", PROPRIETARY % 'pr_info("a blob\\n")')
    system = booted_system()
    assert system.vfs.read("/proc/sys/kernel/tainted") == "0\n"
    seq = next_seq(system)
    ok(system, f"insmod {ko}")
    assert log_since(system, seq) == [
        "blob: loading out-of-tree module taints kernel.",
        "blob: module license 'Proprietary' taints kernel.",
        "Disabling lock debugging due to kernel taint",
        "a blob",
    ]
    assert system.vfs.read("/proc/sys/kernel/tainted") == f"{1 << 0 | 1 << 12}\n"
    assert system.vfs.read("/sys/module/blob/taint") == "PO\n"
    assert system.vfs.read("/proc/modules").endswith(" (PO)\n")
    # A second one prints no taint message: the kernel has both bits already.
    ok(system, "rmmod blob")
    seq = next_seq(system)
    ok(system, f"insmod {ko}")
    assert log_since(system, seq) == ["a blob"]


def test_writing_tainted_adds_bits_and_an_oops_report_shows_them():
    system = booted_system()
    ok(system, "insmod livepatch-sample")
    assert system.vfs.read("/proc/sys/kernel/tainted") == f"{1 << 15}\n"
    ok(system, "echo 512 > /proc/sys/kernel/tainted")  # W: what a user may add; nothing goes away
    assert system.vfs.read("/proc/sys/kernel/tainted") == f"{1 << 15 | 1 << 9}\n"
    status, _, err = run(system, "echo 1 > /proc/sys/kernel/tainted; echo x > /proc/sys/kernel/tainted")
    assert status == 1 and "Invalid argument" in err
    assert system.vfs.read("/proc/sys/kernel/tainted") == f"{1 << 15 | 1 << 9 | 1}\n"
    run(system, "echo c > /proc/sysrq-trigger")
    oops = system.machine.oops
    assert oops is not None and system.machine.stopped
    cpu_line = next(line for line in oops.lines if line.startswith("CPU: "))
    assert cpu_line.endswith(" Comm: sh Tainted: P        W     K    1.0 #1"), cpu_line
    assert oops.lines[-2] == "Modules linked in: livepatch_sample(K)"  # print_modules, with its taints


# --- modules that export to modules -------------------------------------------------------------


def test_a_module_holds_the_module_whose_export_it_uses():
    system = booted_system()
    ok(system, "insmod hello; insmod hello_friend")
    assert ok(system, "lsmod").splitlines()[1:] == [
        f"hello_friend        {system.machine.kernel.modules.find('hello_friend').core_size:>8}  0",
        f"hello               {system.machine.kernel.modules.find('hello').core_size:>8}  1 hello_friend",
    ]
    assert ok(system, "ls /sys/module/hello/holders") == "hello_friend\n"
    assert system.vfs.read("/sys/module/hello/refcnt") == "1\n"
    status, _, err = run(system, "rmmod hello")
    assert (status, err) == (1, "rmmod: ERROR: Module hello is in use by: hello_friend\n")
    assert system.machine.kernel.modules.find("hello") is not None
    ok(system, "rmmod hello_friend; rmmod hello")
    assert system.machine.kernel.modules.print_modules() == "Modules linked in: [last unloaded: hello]"


@needs_gcc
def test_a_module_cannot_export_a_name_another_exports(build):
    ko = build(
        "greeter",
        "#include <linux/module.h>\nint hello_greet(const char *who) { return 0; }\nEXPORT_SYMBOL(hello_greet);\n"
        'MODULE_LICENSE("GPL");\n',
    )
    system = booted_system()
    ok(system, "insmod hello")
    before = snapshot(system)
    seq = next_seq(system)
    assert run(system, f"insmod {ko}")[2] == f"insmod: ERROR: could not insert module {ko}: Invalid module format\n"
    assert log_since(system, seq)[-1] == "greeter: exports duplicate symbol hello_greet (owned by hello)"
    after = snapshot(system)
    assert after == before


# --- /proc/kallsyms ------------------------------------------------------------------------------


def test_proc_kallsyms_lists_vmlinux_then_modules_with_their_letters():
    system = booted_system()
    ok(system, "insmod hello")
    m = system.machine
    lines = system.vfs.read("/proc/kallsyms").splitlines()
    printk = m.image.addr("printk")
    assert f"{printk:016x} T printk" in lines
    assert f"{m.image.addr('get_idle_time', 2):016x} t get_idle_time" in lines  # a static
    assert f"{m.image.addr('jiffies'):016x} B jiffies" in lines
    hello = m.kernel.modules.find("hello")
    # hello exports hello_greet: upper case; its own statics and its init are lower case.
    assert f"{hello.lookup('hello_greet').addr:016x} T hello_greet\t[hello]" in lines
    assert f"{hello.lookup('hello_exit').addr:016x} t hello_exit\t[hello]" in lines
    assert not [line for line in lines if "hello_init" in line]  # init text is freed, and its symbols
    vmlinux = [line for line in lines if "\t[" not in line]
    assert [int(line.split()[0], 16) for line in vmlinux] == sorted(int(line.split()[0], 16) for line in vmlinux)
    assert lines.index(f"{printk:016x} T printk") < lines.index(
        f"{hello.lookup('hello_greet').addr:016x} T hello_greet\t[hello]"
    )


def test_proc_kallsyms_ends_with_the_ftrace_trampolines():
    system = booted_system()
    ok(system, "insmod livepatch-sample; wait /sys/kernel/livepatch/livepatch_sample/transition 0")
    trampoline = system.machine.kernel.ftrace.site_target(system.machine.image.addr("cmdline_proc_show"))
    assert (
        system.vfs.read("/proc/kallsyms").splitlines()[-1]
        == f"{trampoline:016x} t ftrace_trampoline\t[__builtin__ftrace]"
    )


def test_kptr_restrict_zeroes_the_addresses():
    system = booted_system()
    ok(system, "insmod hello")
    assert ok(system, "cat /proc/sys/kernel/kptr_restrict") == "0\n"
    ok(system, "echo 1 > /proc/sys/kernel/kptr_restrict")  # the shell is root: CAP_SYSLOG still sees them
    assert ok(system, "cat /proc/kallsyms | grep ' T printk$'") != "0000000000000000 T printk\n"
    ok(system, "echo 2 > /proc/sys/kernel/kptr_restrict")
    assert ok(system, "cat /proc/kallsyms | grep ' T printk$'") == "0000000000000000 T printk\n"
    assert ok(system, "cat /proc/kallsyms | grep ' T hello_greet'") == "0000000000000000 T hello_greet\t[hello]\n"
    assert ok(system, "cat /proc/modules").endswith(" Live 0x0000000000000000\n")
    assert ok(system, "cat /sys/module/hello/sections/.text") == "0x0000000000000000\n"
    status, _, err = run(system, "echo 3 > /proc/sys/kernel/kptr_restrict")
    assert status == 1 and "Invalid argument" in err
    assert ok(system, "cat /proc/sys/kernel/kptr_restrict") == "2\n"


EXPORTER = """\
#include <linux/module.h>

int blob_value(void)
{
	return 42;
}
EXPORT_SYMBOL(blob_value);

static int exporter_init(void)
{
	return 0;
}

static void exporter_exit(void)
{
}

module_init(exporter_init);
module_exit(exporter_exit);
MODULE_LICENSE("Proprietary");
"""

USER = """\
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>

int blob_value(void);

static int user_init(void)
{
	%s
	pr_info("%%d\\n", blob_value());
	return 0;
}

static void user_exit(void)
{
}

module_init(user_init);
module_exit(user_exit);
MODULE_LICENSE("GPL");
"""


@needs_gcc
def test_a_gpl_module_inherits_the_taint_of_a_proprietary_module_it_uses(build):
    exporter = build("blob_exporter", EXPORTER)
    user = build("blob_user", USER % "")
    gpl_user = build("blob_gpl_user", USER % "klp_shadow_get(NULL, 1);")
    system = booted_system()
    ok(system, f"insmod {exporter}")
    before = snapshot(system)
    seq = next_seq(system)
    assert run(system, f"insmod {gpl_user}")[2].endswith(": Invalid parameters\n")  # kmod on EINVAL
    assert log_since(system, seq) == [
        "blob_gpl_user: module using GPL-only symbols uses symbols blob_value from proprietary module blob_exporter.",
        "blob_gpl_user: Unknown symbol blob_value (err -22)",
    ]
    assert snapshot(system) == before
    seq = next_seq(system)
    ok(system, f"insmod {user}")
    assert log_since(system, seq) == [
        "blob_user: module uses symbols blob_value from proprietary module blob_exporter, inheriting taint.",
        "42",
    ]
    assert system.vfs.read("/sys/module/blob_user/taint") == "PO\n"
    assert ok(system, "ls /sys/module/blob_exporter/holders") == "blob_user\n"


@needs_gcc
def test_build_module_warns_as_modpost_does(tmp_path, capsys):
    from klpemu.modbuild import build_module

    src = tmp_path / "blob_internal.c"
    src.write_text((USES_INTERNALS % "").replace('MODULE_LICENSE("GPL")', 'MODULE_LICENSE("Proprietary")'))
    ko = build_module(src)
    assert capsys.readouterr().err.splitlines() == [
        "WARNING: modpost: GPL-incompatible module blob_internal.ko uses GPL-only symbol 'klp_enable_patch'",
        f'WARNING: modpost: "proc_cmdline" [{ko}] undefined!',
        f'WARNING: modpost: "linux_banner" [{ko}] undefined!',
    ]
