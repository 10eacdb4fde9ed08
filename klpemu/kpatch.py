"""`kpatch`: load, unload, list and describe livepatch modules the way dynup/kpatch's `kpatch`
utility does on a kernel with CONFIG_LIVEPATCH, through the same interfaces it uses: insmod and
rmmod, /sys/kernel/livepatch/<patch>/{enabled,transition}, /proc/<pid>/patch_state, and sleeps of
(emulated) seconds while a transition runs.

What it adds to kpatch: a stalled task is listed with the reason it cannot switch (kpatch prints
only its stack; idle tasks, which have no /proc/<pid>, are listed too), `info` shows the patched
objects and functions from sysfs after the modinfo, and it refuses modules that are not livepatch
modules instead of loading or removing them anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from errno import EBUSY, EIO
from functools import partial
from typing import TYPE_CHECKING, TextIO

from .errors import KlpemuError
from .fs.vfs import Dir
from .kernel.module import ModuleError, mod_strerror
from .kernel.stacktrace import unwind_task
from .modinfo import (
    ModuleFile,
    find_module_file,
    format_modinfo,
    module_name,
    shipped_module_files,
)

if TYPE_CHECKING:
    from .kernel.module import Module
    from .system import System

SYSFS = "/sys/kernel/livepatch"
SEC = 1_000_000_000
POST_ENABLE_WAIT = 15  # seconds a transition gets before kpatch calls it stalled
POST_SIGNAL_WAIT = 60  # and after the stalled tasks were signalled
MODULE_REF_WAIT = 15  # seconds for a disabled patch module's references to drop
MAX_LOAD_ATTEMPTS = 5  # insmod or a disable refused with -EBUSY (another transition) is retried
RETRY_INTERVAL = 2  # seconds between those attempts

USAGE = [
    ("load <module>", "load a livepatch module (a .ko file or a shipped name), wait for its transition"),
    ("unload <module>", "disable a livepatch module, wait for its transition, remove it"),
    ("unload --all", "unload every livepatch module"),
    ("info <module>", "show a module's modinfo, and what it patches when loaded"),
    ("list", "list the loaded livepatch modules and the installed (shipped) ones"),
    ("signal", "signal the tasks stalling a transition (the kernel does it by itself)"),
]


class Die(Exception):
    """kpatch's die(): the message goes to stderr after `kpatch: `, the status is 1."""


class Kpatch:
    def __init__(self, system: System, out: TextIO, err: TextIO):
        self.system = system
        self.m = system.machine
        self.vfs = system.vfs
        self.out = out
        self.err = err

    # --- output --------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def warn(self, text: str) -> None:
        self.out.flush()  # keep stdout and stderr in the order they were written
        print(f"kpatch: {text}", file=self.err)
        self.err.flush()

    def complain(self, text: str) -> None:
        """What a command kpatch runs (insmod, a shell's echo) wrote to stderr."""
        self.out.flush()
        print(text, file=self.err)
        self.err.flush()

    def main(self, argv: list[str]) -> int:
        if not argv:
            return self.usage()
        cmd, args = argv[0], argv[1:]
        # One table per arity, so that each is a table of one signature.
        takes_module: dict[str, Callable[[str], int]] = {
            "load": self.cmd_load,
            "unload": self.cmd_unload,
            "info": self.cmd_info,
        }
        takes_nothing: dict[str, Callable[[], int]] = {"list": self.cmd_list, "signal": self.cmd_signal}
        if cmd in ("help", "-h", "--help"):
            return self.usage()
        if cmd not in takes_module and cmd not in takes_nothing:
            self.say(f"subcommand {cmd} not recognized")
            return self.usage()
        run: Callable[[], int]
        if cmd in takes_module and len(args) == 1:
            run = partial(takes_module[cmd], args[0])
        elif cmd in takes_nothing and not args:
            run = takes_nothing[cmd]
        else:
            return self.usage()
        try:
            return run()
        except Die as e:
            self.warn(str(e))
            return 1

    def usage(self) -> int:
        self.out.flush()
        lines = ["usage: kpatch <command> [<args>]", "", "Valid commands:"]
        for name, text in USAGE:
            lines += [f"   {name}", f"      {text}"]
        print("\n".join(lines), file=self.err)
        return 1

    # --- the machine ---------------------------------------------------------------------------

    def sleep(self, seconds: int) -> None:
        self.m.run(seconds * SEC)
        if self.m.oops is not None:
            raise KlpemuError("the machine crashed while kpatch waited", EIO)

    def patches(self) -> list[str]:
        return [node.name for node in self.vfs.listdir(SYSFS)]

    def read(self, path: str) -> str | None:
        try:
            return self.vfs.read(path).strip()
        except KlpemuError:
            return None

    def in_transition(self, name: str) -> bool:
        return self.read(f"{SYSFS}/{name}/transition") == "1"

    def enabled(self, name: str) -> bool:
        return self.read(f"{SYSFS}/{name}/enabled") == "1"

    def transition_patch(self) -> str | None:
        return next((p for p in self.patches() if self.in_transition(p)), None)

    def loaded(self, name: str) -> Module | None:
        mods = self.m.kernel.modules
        mod = mods.find(name)
        if mod is None or mods.state(mod) == "MODULE_STATE_UNFORMED":
            return None
        return mod

    def insmod(self, f: ModuleFile) -> int:
        """insmod; 0 or the errno it failed with (its message already printed)."""
        try:
            self.m.kernel.modules.load(f.path, [], filename=f.path.name)
        except ModuleError as e:
            if self.m.oops is not None:
                raise
            self.complain(f"insmod: ERROR: could not insert module {f.shown}: {mod_strerror(e.errno)}")
            return e.errno or 1
        return 0

    def write_enabled(self, name: str, value: str) -> int:
        """`echo VALUE > .../enabled`; 0 or the errno the write failed with (message printed)."""
        try:
            self.vfs.write(f"{SYSFS}/{name}/enabled", value + "\n")
        except KlpemuError as e:
            if self.m.oops is not None:
                raise
            self.complain(f"echo: write error: {e.strerror}")
            return e.errno or 1
        return 0

    # --- waiting -------------------------------------------------------------------------------

    def wait_for_patch_transition(self, name: str) -> bool:
        """Poll `transition` once a second; after 15 s the stall is reported and the tasks
        signalled, then 60 s more. True once the transition is over."""
        if not self.in_transition(name):
            return True
        for limit, stalled_after in ((POST_ENABLE_WAIT, True), (POST_SIGNAL_WAIT, False)):
            self.say(f"waiting (up to {limit} seconds) for patch transition to complete...")
            for i in range(limit):
                if not self.in_transition(name):
                    self.say(f"transition complete ({i} seconds)")
                    return True
                self.sleep(1)
            if stalled_after:
                self.say("patch transition has stalled!")
                self.signal_stalled_processes()
        return False

    def signal_stalled_processes(self) -> None:
        if self.transition_patch() is None:
            return
        # There is no `signal` file: the kernel sends its fake signals itself after 15 retries.
        self.warn("Livepatch process signaling is performed automatically on your system.")
        self.warn("Skipping manual process signaling.")

    def show_stalled_processes(self) -> None:
        """Each task still in the old state: pid and comm, why it cannot switch, its stack."""
        if self.transition_patch() is None:
            return
        self.say()
        self.say("Stalled processes:")
        for task, reason in self.m.kernel.livepatch.transition.blockers():
            self.say(f"{task.pid} {task.comm}")
            self.say(f"reason: {reason}")
            self.say("stack:")
            self.out.write(unwind_task(self.m, task).proc_stack())

    def wait_for_zero_module_ref_count(self, name: str) -> bool:
        def held() -> bool:
            return int(self.read(f"/sys/module/{name}/refcnt") or 0) > 0

        if not held():
            return True
        self.say(f"waiting (up to {MODULE_REF_WAIT} seconds) for module refcount...")
        for _ in range(MODULE_REF_WAIT):
            if not held():
                return True
            self.sleep(1)
        return not held()

    # --- load ----------------------------------------------------------------------------------

    def cmd_load(self, arg: str) -> int:
        f = find_module_file(arg)
        if f is None:
            raise Die(f"can't find {arg}")
        try:
            livepatch = f.is_livepatch
        except KlpemuError as e:
            raise Die(f"{arg}: {e.strerror}") from None
        if not livepatch:
            raise Die(f"{arg} is not a livepatch module (its modinfo has no livepatch=Y)")
        return self.load_module(f)

    def load_module(self, f: ModuleFile) -> int:
        name = f.name
        if self.vfs.exists(f"{SYSFS}/{name}"):
            if not self.enabled(name):
                # Still disabling (a finished one has no directory): write 1 to reverse it.
                self.say("module already loaded, re-enabling")
                if self.write_enabled(name, "1"):
                    raise Die(f"failed to re-enable module {name}")
                if not self.wait_for_patch_transition(name):
                    self.show_stalled_processes()
                    self.say(f"module {name} did not complete its transition, disabling...")
                    if self.write_enabled(name, "0"):
                        raise Die(f"failed to disable module {name}")
                    self.wait_for_patch_transition(name)
                    raise Die(f"error: failed to re-enable module {name} (transition stalled), patch disabled")
                return 0
            self.say(f"module named {name} already loaded and enabled")
        else:
            self.remove_module(name, quiet=True)  # a disabled patch's module still loaded
            self.say(f"loading patch module: {f.shown}")
            for attempt in range(1, MAX_LOAD_ATTEMPTS + 1):
                errno = self.insmod(f)
                if not errno:
                    break
                if errno != EBUSY or attempt == MAX_LOAD_ATTEMPTS:
                    raise Die(f"failed to load module {f.shown}")
                self.warn("retrying...")  # -EBUSY: another patch is in transition
                self.sleep(RETRY_INTERVAL)
        if not self.wait_for_patch_transition(name):
            self.show_stalled_processes()
            self.say(f"module {name} did not complete its transition, unloading...")
            self.unload_module(name)
            raise Die(f"error: failed to load module {name} (transition stalled)")
        return 0

    # --- unload --------------------------------------------------------------------------------

    def cmd_unload(self, arg: str) -> int:
        if arg == "--all":
            return self.unload_all()
        self.unload_module(module_name(arg))
        return 0

    def disable_patch(self, name: str) -> bool:
        """Write 0 to enabled if it is 1; False if the patch is not there to disable."""
        if not self.vfs.exists(f"{SYSFS}/{name}/enabled"):
            mod = self.loaded(name)
            if mod is None:
                self.warn(f"patch module {name} is not loaded")
                return False
            if mod.info.get("livepatch") != ["Y"]:
                raise Die(f"{name} is not a livepatch module")
            return True  # loaded, already disabled
        if self.enabled(name):
            self.say(f"disabling patch module: {name}")
            for attempt in range(1, MAX_LOAD_ATTEMPTS + 1):
                errno = self.write_enabled(name, "0")
                if not errno:
                    break
                if errno != EBUSY or attempt == MAX_LOAD_ATTEMPTS:
                    return False
                self.warn("retrying...")
                self.sleep(RETRY_INTERVAL)
        return True

    def remove_module(self, name: str, quiet: bool = False) -> None:
        if self.loaded(name) is None:
            return
        if not self.wait_for_zero_module_ref_count(name):
            raise Die(f"failed to unload module {name} (refcnt)")
        if not quiet:
            self.say(f"unloading patch module: {name}")
        try:
            self.m.kernel.modules.unload(name)
        except ModuleError:
            if self.m.oops is not None:
                raise  # kpatch ignores rmmod's errors; a crash it cannot

    def unload_module(self, name: str) -> None:
        if not self.disable_patch(name):
            raise Die(f"failed to disable module {name}")
        if not self.wait_for_patch_transition(name):
            raise Die(f"transition stalled for {name}")
        self.remove_module(name)

    def unload_all(self) -> int:
        """Disable and remove patch after patch; a stalled one is left for a later pass, and
        what is left at the end is reported."""
        while True:
            done = 0
            for name in self.patches():
                if not self.disable_patch(name):
                    continue
                if not self.wait_for_patch_transition(name):
                    self.warn(f"transition stalled for {name}")
                    continue
                self.remove_module(name)
                done += 1
            if not done:
                break
        left = self.patches()
        for name in left:
            self.warn(f"failed to unload module {name}")
        return 1 if left else 0

    # --- list, info, signal --------------------------------------------------------------------

    def cmd_list(self) -> int:
        self.say("Loaded patch modules:")
        for name in self.patches():
            on = self.enabled(name)
            if self.in_transition(name):
                state = "enabling..." if on else "disabling..."
            else:
                state = "enabled" if on else "disabled"
            self.say(f"{name} [{state}]")
        self.show_stalled_processes()
        self.say()
        self.say("Installed patch modules:")
        release = self.kernel_release()
        for f in shipped_module_files():
            try:
                if f.is_livepatch:
                    self.say(f"{module_name(f.path.name)} ({release})")
            except KlpemuError:
                continue  # an unreadable file is no installed patch
        return 0

    def kernel_release(self) -> str:
        """uname -r: the word after `version` in the banner (/proc/version)."""
        words = (self.read("/proc/version") or "").split()
        return words[words.index("version") + 1] if "version" in words[:-1] else "unknown"

    def cmd_info(self, arg: str) -> int:
        f = find_module_file(arg)
        if f is None:
            raise Die(f"can't find {arg}")
        self.say(f"Patch information for {arg}:")
        try:
            self.out.write(format_modinfo(f.shown, f.modinfo()))
        except KlpemuError as e:
            name = module_name(f.path.name)
            self.complain(f"modinfo: ERROR: could not get modinfo from '{name}': {e.strerror}")
            raise Die(f"failed to get info for module {arg}") from None
        self.say()
        self.describe_patch(f.name)
        return 0

    def describe_patch(self, name: str) -> None:
        """Whether it is loaded; then its patch's sysfs directory: state, objects, functions."""
        d = f"{SYSFS}/{name}"
        if not self.vfs.exists(d):
            self.say("Loaded, with its patch disabled." if self.loaded(name) else "Not loaded.")
            return
        transition = "in transition" if self.in_transition(name) else "not in transition"
        state = "enabled" if self.enabled(name) else "disabled"
        self.say(f"Loaded: {state}, {transition}, stack_order {self.read(d + '/stack_order')}")
        lp = self.m.kernel.livepatch
        if any(lp.name(p) == name and p.forced for p in lp.patches):
            self.say(
                "Forced: a transition of it was forced, so its module stays loaded for good "
                "(a task may still run its code)."
            )
        self.say(f"Objects and functions ({d}):")
        for obj in self.vfs.listdir(d):
            if not isinstance(obj, Dir):
                continue
            patched = self.read(f"{d}/{obj.name}/patched")
            self.say(f"  {obj.name}: {'patched' if patched == '1' else 'not patched'}")
            for func in self.vfs.listdir(f"{d}/{obj.name}"):
                if isinstance(func, Dir):
                    self.say(f"    {func.name}")

    def cmd_signal(self) -> int:
        self.signal_stalled_processes()
        return 0
