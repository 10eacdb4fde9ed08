"""klp-build: patches in tests/klp_build/ turned into livepatch modules, each loaded into a booted
machine (a snapshot restore), its transition completed, its new behaviour read in the shell, and
the old one back after disabling; and the refusals, with their messages.

The original tree's objects are built once and kept in the user's cache directory (keyed by the
sources, the flags and gcc), so each patch costs only the files it touches. Each patch is built
once per session.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from machine_util import booted_system, shell_run

from klpemu.errors import KlpemuError
from klpemu.klp_build import klp_build
from klpemu.klp_build.refuse import Refusal

PATCHES = Path(__file__).parent / "klp_build"
LP = "/sys/kernel/livepatch"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc")

_built: dict[tuple, tuple[Path, str]] = {}


@pytest.fixture(scope="session")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("klp_build")


def build(outdir: Path, patch: str, **kw) -> tuple[Path, str]:
    """(the module, klp-build's report) for tests/klp_build/PATCH.patch, built once per session."""
    key = (patch, tuple(sorted(kw.items())))
    if key not in _built:
        out = io.StringIO()
        name = kw.pop("name", None) or patch.replace("-", "_")
        ko = outdir / f"{name}.ko"
        klp_build(PATCHES / f"{patch}.patch", name=name, output=ko, out=out, **kw)
        _built[key] = ko, out.getvalue()
    return _built[key]


def report_lines(report: str) -> list[str]:
    """The report without the timed step lines."""
    return [line for line in report.splitlines() if not line.startswith("[")]


def run(system, cmd: str) -> str:
    status, out, err = shell_run(system, cmd)
    assert status == 0, (cmd, err)
    return out


def load_and_check(ko: Path, name: str, path: str, before, after, setup: str = "") -> None:
    """insmod, the transition completes, `cat path` shows `after`; disabled, it shows `before`."""
    system = booted_system()
    if setup:
        run(system, setup)
    old = run(system, f"cat {path}")
    assert before(old), old
    run(system, f"insmod {ko}")
    run(system, f"wait {LP}/{name}/transition 0")
    assert run(system, f"cat {LP}/{name}/enabled") == "1\n"
    new = run(system, f"cat {path}")
    assert after(new), new
    run(system, f"echo 0 > {LP}/{name}/enabled; wait --gone {LP}/{name}")
    restored = run(system, f"cat {path}")
    assert before(restored), restored
    run(system, f"rmmod {name}")
    log = run(system, "dmesg")
    assert f"livepatch: '{name}': patching complete" in log
    assert f"livepatch: '{name}': unpatching complete" in log


def test_a_changed_function_body_and_a_new_function_it_calls(outdir):
    ko, report = build(outdir, "version-new-function", show_first_changed=True)
    assert report_lines(report) == [
        "  changed function: vmlinux: version_proc_show (firmware/fs/proc/version.c)",
        "    first change at version_proc_show+0x10:",
        "      - call 0x15  <seq_puts-4>",
        "      + push rbx",
        "  new function: vmlinux: version_note (firmware/fs/proc/version.c)",
        "  klp relocation: .klp.sym.vmlinux.linux_banner,0",  # a global vmlinux does not export
    ]
    note = "fixed: version_note was added by the patch\n"
    load_and_check(
        ko,
        "version_new_function",
        "/proc/version",
        lambda t: t.startswith("klpemu kernel version") and note not in t,
        lambda t: t.startswith("klpemu kernel version") and t.endswith(note),
    )


def test_a_new_static_variable_belongs_to_the_module(outdir):
    ko, report = build(outdir, "version-new-variable")
    assert report_lines(report) == [
        "  changed function: vmlinux: version_proc_show (firmware/fs/proc/version.c)",
        "  new variable: vmlinux: version_reads (firmware/fs/proc/version.c), the module's own",
        "  klp relocation: .klp.sym.vmlinux.linux_banner,0",
    ]
    system = booted_system()
    run(system, f"insmod {ko}; wait {LP}/version_new_variable/transition 0")
    assert run(system, "cat /proc/version").endswith("PREEMPT\nread 1 times since the fix\n")
    assert run(system, "cat /proc/version").endswith("PREEMPT\nread 2 times since the fix\n")


def test_a_duplicated_static_name_is_patched_at_its_position(outdir, image):
    ko, report = build(outdir, "uptime-sympos", show_first_changed=True)
    assert report_lines(report) == [
        "  changed function: vmlinux: get_idle_time (firmware/fs/proc/uptime.c)",
        "    first change at get_idle_time+0x1d:",
        "      - ret",
        "      + add rax, 0xdbba0",
        "  get_idle_time: a static name defined more than once in vmlinux: old_sympos 2",
    ]
    # Two get_idle_time in the image, stat.c's first: uptime.c's is the second.
    assert len([s for s in image.by_name["get_idle_time"] if s.local]) == 2

    def idle(text: str) -> float:
        return float(text.split()[1])

    # Each of the 2 CPUs now counts an hour more idle time; /proc/stat's helper is left alone.
    load_and_check(ko, "uptime_sympos", "/proc/uptime", lambda t: idle(t) < 60, lambda t: idle(t) >= 7200)
    system = booted_system()
    run(system, f"insmod {ko}; wait {LP}/uptime_sympos/transition 0")
    stat_idle = [int(line.split()[4]) for line in run(system, "cat /proc/stat").splitlines()[:2]]
    assert stat_idle[0] < 1000 and stat_idle[1] < 1000, stat_idle  # ticks of the emulated seconds only


def test_an_inline_helper_that_changed_patches_its_callers(outdir):
    ko, report = build(outdir, "meminfo-inline")
    assert report_lines(report) == [
        "  changed function: vmlinux: meminfo_proc_show (firmware/fs/proc/meminfo.c), inlines changed show_val_kb",
        "  klp relocation: .klp.sym.vmlinux.kernel_image_pages,0",
    ]
    load_and_check(
        ko,
        "meminfo_inline",
        "/proc/meminfo",
        lambda t: t.startswith("MemTotal:") and " kB\n" in t and "KiB" not in t,
        lambda t: t.startswith("MemTotal:") and t.count(" KiB\n") == 10 and " kB" not in t,
    )


def test_a_static_variable_is_reached_by_a_klp_relocation(outdir, image):
    ko, report = build(outdir, "cmdline-static-var")
    assert report_lines(report) == [
        "  changed function: vmlinux: cmdline_proc_show (firmware/fs/proc/cmdline.c)",
        "  klp relocation: .klp.sym.vmlinux.boot_command_line,0",
        "  klp relocation: .klp.sym.vmlinux.proc_cmdline,0",
    ]
    addr = image.by_name["proc_cmdline"][0].addr
    shown = f"(shown by the entry /proc/cmdline at {addr:x})\n"
    load_and_check(
        ko, "cmdline_static_var", "/proc/cmdline", lambda t: "shown by" not in t, lambda t: t.endswith(shown)
    )


def test_a_shipped_modules_function_is_fixed(outdir):
    ko, report = build(outdir, "module-target")
    assert report_lines(report) == [
        "  changed function: test_klp_mod_target: test_klp_mod_target_show (firmware/modules/test_klp_mod_target.c)",
        "  klp relocation: .klp.sym.test_klp_mod_target.pde,0",
    ]
    load_and_check(
        ko,
        "module_target",
        "/proc/test_klp_mod_target",
        lambda t: t == "test_klp_mod_target: original output\n",
        lambda t: t == "test_klp_mod_target: fixed output (entry /proc/test_klp_mod_target)\n",
        setup="insmod test_klp_mod_target",
    )


def test_replace_makes_an_atomic_replace_patch(outdir):
    ko, _ = build(outdir, "version-new-function", name="version_replace", replace=True)
    other, _ = build(outdir, "cmdline-static-var")
    system = booted_system()
    run(system, f"insmod {other}; wait {LP}/cmdline_static_var/transition 0")
    run(system, f"insmod {ko}; wait {LP}/version_replace/transition 0; wait --gone {LP}/cmdline_static_var")
    assert "shown by" not in run(system, "cat /proc/cmdline")
    assert run(system, "cat /proc/version").endswith("added by the patch\n")


def refusal(outdir, patch: str) -> list[str]:
    with pytest.raises(Refusal) as e:
        klp_build(PATCHES / f"{patch}.patch", output=outdir / f"{patch}.ko", out=io.StringIO())
    assert not (outdir / f"{patch}.ko").exists()
    return e.value.reasons


def test_a_struct_layout_change_is_refused(outdir):
    assert refusal(outdir, "refuse-struct-layout") == [
        "firmware/include/linux/proc_fs.h: struct proc_dir_entry: changes its size (32 -> 40 bytes);"
        " a livepatch cannot change data structures in use",
    ]


def test_a_function_without_an_fentry_site_is_refused(outdir):
    assert refusal(outdir, "refuse-notrace") == [
        "firmware/lib/vsprintf.c: snprintf: has no fentry site (notrace or not traceable), so cannot be redirected"
    ]


def test_a_patch_that_does_not_apply_names_the_file_and_the_hunk(tmp_path):
    bad = tmp_path / "bad.patch"
    bad.write_text((PATCHES / "uptime-sympos.patch").read_text().replace("stime_ticks;", "utime_ticks;"))
    with pytest.raises(KlpemuError, match=r"bad.patch: firmware/fs/proc/uptime.c: hunk at line 7 does not apply"):
        klp_build(bad, output=tmp_path / "bad.ko", out=io.StringIO())
    assert not (tmp_path / "bad.ko").exists()


@pytest.mark.parametrize(
    "patch, reason",
    [
        ("refuse-data", "firmware/init/main.c: linux_banner: changes initialised data, whose old value is in use"),
        ("refuse-init", "firmware/modules/hello.c: hello_init: changes an __init function, which has already run"),
        (
            "refuse-mechanism",
            "firmware/kernel/livepatch/core.c: klp_enable_patch: changes livepatch,"
            " which the patch mechanism itself runs",
        ),
        (
            # kzalloc is inlined in livepatch's shadow variables (and in livepatch-shadow-mod, which is fine).
            "refuse-inline-mechanism",
            "firmware/kernel/livepatch/shadow.c: __klp_shadow_get_or_alloc, inlines changed kzalloc:"
            " changes livepatch, which the patch mechanism itself runs",
        ),
    ],
)
def test_what_a_livepatch_cannot_change_is_refused(outdir, patch, reason):
    assert refusal(outdir, patch) == [reason]


def test_without_gcc_it_says_so(tmp_path, monkeypatch, capsys):
    from klpemu.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["klp-build", str(PATCHES / "version-new-function.patch"), "-o", str(tmp_path / "x.ko")]) == 1
    assert capsys.readouterr().err == "klpemu: klpemu klp-build needs gcc and make (not found on PATH)\n"


def test_the_command_from_a_checkout(tmp_path):
    """`klpemu klp-build --source CHECKOUT`, as the README shows it, in a subprocess."""
    import os
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "klpemu", "klp-build", str(PATCHES / "uptime-sympos.patch"), "--source", str(root)]
    res = subprocess.run(
        [*cmd, "--show-first-changed", "--keep", "work"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert report_lines(res.stdout) == [
        "  changed function: vmlinux: get_idle_time (firmware/fs/proc/uptime.c)",
        "    first change at get_idle_time+0x1d:",
        "      - ret",
        "      + add rax, 0xdbba0",
        "  get_idle_time: a static name defined more than once in vmlinux: old_sympos 2",
        f"  kept in {tmp_path / 'work'}: patched/ (the tree and its objects),"
        " module/ (livepatch_uptime_sympos.mod.c, livepatch_uptime_sympos.part0.s)",
    ]
    module = tmp_path / "work" / "module"
    stub = (module / "livepatch_uptime_sympos.mod.c").read_text()
    assert '{ .old_name = "get_idle_time", .new_func = klp_build_new0, .old_sympos = 2 },' in stub
    asm = (module / "livepatch_uptime_sympos.part0.s").read_text().splitlines()
    assert "\t.reloc livepatch_get_idle_time_2+1, R_X86_64_PLT32, __fentry__-4" in asm
    assert "\t.reloc livepatch_get_idle_time_2+17, R_X86_64_32S, pcpu_hot+32" in asm
    steps = [line.split("] ", 1)[1] for line in res.stdout.splitlines() if line.startswith("[")]
    original = re.fullmatch(
        r"original tree: (\d+) objects \((cached|built)\) with -ffunction-sections -fdata-sections", steps[0]
    )
    assert original, steps[0]
    assert steps[1:] == [
        "applied uptime-sympos.patch: firmware/fs/proc/uptime.c",
        f"patched tree: 1 of {original.group(1)} objects differ",
        "built livepatch_uptime_sympos.ko: 1 klp_func",
    ]
    assert (tmp_path / "livepatch_uptime_sympos.ko").is_file()


def test_a_moved_line_number_is_not_a_change(outdir):
    """lkdtm_BUG's BUG_ON passes __LINE__, which the comment moves from 19 to 21: not a change."""
    with pytest.raises(KlpemuError, match=r"lines-moved.patch: no function changed, nothing to patch"):
        klp_build(PATCHES / "lines-moved.patch", output=outdir / "lines.ko", out=io.StringIO())


def test_this_module_in_a_patched_module_function_is_refused(tmp_path):
    fix = (PATCHES / "module-target.patch").read_text()
    (tmp_path / "this-module.patch").write_text(fix.replace("KBUILD_MODNAME, ", "THIS_MODULE->name, "))
    with pytest.raises(KlpemuError) as e:
        klp_build(tmp_path / "this-module.patch", output=tmp_path / "x.ko", out=io.StringIO())
    assert str(e.value) == (
        "firmware/modules/test_klp_mod_target.c: test_klp_mod_target_show: uses THIS_MODULE, which in a"
        " livepatch module would be the livepatch itself (KBUILD_MODNAME names the patched module)"
    )
    assert not (tmp_path / "x.ko").exists()


def test_one_patch_for_vmlinux_and_a_module_loaded_later(tmp_path):
    """Two files, two klp_objects; the module's klp relocation is written when it comes."""
    both = tmp_path / "both.patch"
    both.write_text(
        (PATCHES / "version-new-function.patch").read_text() + (PATCHES / "module-target.patch").read_text()
    )
    out = io.StringIO()
    klp_build(both, name="both", output=tmp_path / "both.ko", out=out)
    assert report_lines(out.getvalue()) == [
        "  changed function: vmlinux: version_proc_show (firmware/fs/proc/version.c)",
        "  new function: vmlinux: version_note (firmware/fs/proc/version.c)",
        "  changed function: test_klp_mod_target: test_klp_mod_target_show (firmware/modules/test_klp_mod_target.c)",
        "  klp relocation: .klp.sym.vmlinux.linux_banner,0",
        "  klp relocation: .klp.sym.test_klp_mod_target.pde,0",
    ]
    system = booted_system()
    run(system, f"insmod {tmp_path / 'both.ko'}; wait {LP}/both/transition 0")
    assert run(system, "cat /proc/version").endswith("added by the patch\n")
    run(system, "insmod test_klp_mod_target")
    fixed = "test_klp_mod_target: fixed output (entry /proc/test_klp_mod_target)\n"
    assert run(system, "cat /proc/test_klp_mod_target") == fixed
    run(system, f"echo 0 > {LP}/both/enabled; wait --gone {LP}/both")
    assert run(system, "cat /proc/test_klp_mod_target") == "test_klp_mod_target: original output\n"
