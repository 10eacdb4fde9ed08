"""A Hypothesis state machine over the shipped livepatch and kprobe modules.

Rules: insmod / rmmod, enabled and force written through sysfs, atomic replace, a kprobe on the
patched function (with and without a post handler), the function tracer on and off with and
without a filter, and sleeps that let transitions finish. A model kept here, from the Linux rules
alone, says what /proc/cmdline must show and which operations must be refused; after every step:

- /proc/cmdline shows the topmost enabled patch of cmdline_proc_show (either side of a transition
  while one is under way, since the reading task may not have switched yet);
- a refused operation changed nothing (sites, records, func_stacks, modules, heap, sysfs);
- a transition is finished, or every task not switched yet has a reason (`blocking`);
- the host's caches agree with guest memory (Kernel.check_consistency), and no oops;
- at the end, with everything removed, every fentry site is a NOP5 and enabled_functions empty.

CI runs a few examples (the `ci` profile); HYPOTHESIS_PROFILE=long runs many more.
"""

from __future__ import annotations

import errno
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from machine_util import booted_system

from klpemu.errors import KlpemuError
from klpemu.fuzz import kernel_state, state_diff
from klpemu.kernel.module import shipped_module
from klpemu.kernel.tasks import all_tasks

MS = 1_000_000
NOP5 = bytes.fromhex("0f1f440000")
TRACING = "/sys/kernel/tracing"
LP = "/sys/kernel/livepatch"

# CI: the same examples every run (derandomize), no example database left behind.
settings.register_profile(
    "ci",
    max_examples=12,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=1000, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

# What each module does, from its source (firmware/modules/): the function it patches and what
# /proc/cmdline then prints, or the kprobe it places.
CMDLINE_TEXT = {
    "livepatch_sample": "this has been live patched\n",
    "test_klp_livepatch": "test_klp_livepatch: this has been live patched\n",
}
LIVEPATCHES = {
    # module name: (file, parameters, functions patched, replace)
    "livepatch_sample": ("livepatch-sample.ko", [], {"cmdline_proc_show"}),
    "test_klp_livepatch": ("test_klp_livepatch.ko", [], {"cmdline_proc_show"}),
    "test_klp_atomic_replace": ("test_klp_atomic_replace.ko", None, {"meminfo_proc_show"}),
}


class Patch:
    def __init__(self, name: str, funcs: set[str], replace: bool):
        self.name, self.funcs, self.replace = name, funcs, replace
        self.enabled = False  # its last finished transition was the patching one
        self.forced = False


class LivepatchMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.system = booted_system()
        self.m = self.system.machine
        self.vfs = self.system.vfs
        self.original = self.m.config.cmdline + "\n"
        # The model.
        self.loaded: dict[str, dict] = {}  # module name -> {"kprobe_post": bool} or {}
        self.patches: list[Patch] = []  # klp_patches, oldest first
        self.transition: tuple[Patch, bool] | None = None  # (patch, target enabled)
        self.tracer = "nop"
        self.pinned: set[str] = set()  # modules of forced patches: never unloadable again

    # --- the model ------------------------------------------------------------------------------

    def cmdline_for(self, patches: list[Patch]) -> str:
        for p in reversed(patches):
            if p.enabled and "cmdline_proc_show" in p.funcs:
                return CMDLINE_TEXT[p.name]
        return self.original

    def after_transition(self) -> list[Patch]:
        """klp_patches as the model will hold them when the transition in progress finishes."""
        assert self.transition is not None
        patch, target = self.transition
        if not target:
            return [p for p in self.patches if p is not patch]
        patch.enabled, was = True, patch.enabled
        try:
            kept = [p for p in self.patches if p is patch or not patch.replace]
            return [self._copy(p) for p in kept]
        finally:
            patch.enabled = was

    @staticmethod
    def _copy(p: Patch) -> Patch:
        c = Patch(p.name, p.funcs, p.replace)
        c.enabled, c.forced = p.enabled, p.forced
        return c

    def sync(self) -> None:
        """The engine finished the transition the model waits for: apply it to the model."""
        if self.transition is None or self.m.kernel.livepatch.transition.patch is not None:
            return
        patch, target = self.transition
        self.transition = None
        if target:
            patch.enabled = True
            if patch.replace:
                self.patches = [patch]
        else:
            self.patches.remove(patch)

    def patch_named(self, name: str) -> Patch | None:
        return next((p for p in self.patches if p.name == name), None)

    def conflicts(self, funcs: set[str], kprobe_post: bool) -> bool:
        """A kprobe with a post handler needs IPMODIFY-free sites: it and a livepatch of the same
        function refuse each other (-EBUSY)."""
        if kprobe_post:
            return any("cmdline_proc_show" in p.funcs for p in self.patches)
        return "cmdline_proc_show" in funcs and any(v.get("kprobe_post") for v in self.loaded.values())

    # --- doing, and checking a refusal -----------------------------------------------------------

    def attempt(self, op, expect_errno: int | None) -> bool:
        """Run op; if the model expects a refusal, it must be refused with that errno and leave
        the state as it was. Returns whether it succeeded."""
        idle = self.m.kernel.livepatch.transition.patch is None
        before = kernel_state(self.system)
        try:
            op()
        except KlpemuError as e:
            assert self.m.oops is None, str(self.m.oops)
            assert expect_errno is not None, f"refused unexpectedly: {e} ({errno.errorcode.get(e.errno)})"
            assert e.errno == expect_errno, f"{e}: errno {e.errno}, expected {expect_errno}"
            after = kernel_state(self.system)
            if not idle:  # the guest ran (an init): other tasks may have switched meanwhile
                for key in ("transition", "livepatch patches", "func stacks", "fentry sites", "ftrace records"):
                    before.pop(key), after.pop(key)
                before.pop("enabled_functions"), after.pop("enabled_functions")
            assert state_diff(before, after) == [], f"refused ({e}), but changed: {state_diff(before, after)}"
            return False
        assert expect_errno is None, f"succeeded, but the model expected errno {expect_errno}"
        return True

    # --- rules ----------------------------------------------------------------------------------

    @rule(name=st.sampled_from(sorted(LIVEPATCHES)), replace=st.booleans())
    def insmod_livepatch(self, name, replace):
        file, params, funcs = LIVEPATCHES[name]
        replace = replace if params is None else False
        args = [f"replace={int(replace)}"] if params is None else params
        expect = None
        if name in self.loaded:
            expect = errno.EEXIST
        elif self.transition is not None:
            expect = errno.EBUSY  # klp_enable_patch: another transition is under way
        elif self.conflicts(funcs, False):
            expect = errno.EBUSY
        if self.attempt(lambda: self.m.kernel.modules.load(shipped_module(file), args), expect):
            self.loaded[name] = {}
            patch = Patch(name, funcs, replace)
            self.patches.append(patch)
            self.transition = (patch, True)
            self.sync()

    @rule(post=st.booleans())
    def insmod_kprobe(self, post):
        name = "test_klp_kprobe"
        expect = None
        if name in self.loaded:
            expect = errno.EEXIST
        elif self.conflicts(set(), post) or (post and self.transition and self._in_any("cmdline_proc_show")):
            expect = errno.EBUSY
        load = lambda: self.m.kernel.modules.load(shipped_module(name), [f"has_post_handler={int(post)}"])  # noqa: E731
        if self.attempt(load, expect):
            self.loaded[name] = {"kprobe_post": post}

    def _in_any(self, func: str) -> bool:
        return any(func in p.funcs for p in self.patches)

    @rule(data=st.data())
    def rmmod(self, data):
        names = sorted(set(self.loaded) | set(LIVEPATCHES) | {"test_klp_kprobe"})
        name = data.draw(st.sampled_from(names))
        patch = self.patch_named(name)
        expect = None
        if name not in self.loaded:
            expect = errno.ENOENT
        elif patch is not None:
            expect = errno.EBUSY  # the patch holds its module until it is freed
        elif name in self.pinned:
            expect = errno.EBUSY  # a forced patch keeps its module for good
        if self.attempt(lambda: self.m.kernel.modules.unload(name), expect):
            del self.loaded[name]

    @rule(data=st.data(), value=st.booleans())
    def write_enabled(self, data, value):
        if not self.patches:
            return
        patch = data.draw(st.sampled_from(self.patches))
        path = f"{LP}/{patch.name}/enabled"
        expect = None
        tr = self.transition
        current = tr[1] if tr is not None and tr[0] is patch else patch.enabled
        if value == current:
            expect = errno.EINVAL
        elif tr is not None and tr[0] is not patch:
            expect = errno.EBUSY if not value else errno.EINVAL
        elif tr is None and value:
            expect = errno.EINVAL  # a disabled patch is freed, never re-enabled
        if self.attempt(lambda: self.vfs.write(path, "1" if value else "0"), expect):
            if tr is not None:
                self.transition = (patch, value)  # reversed
            else:
                self.transition = (patch, False)
            self.sync()

    @precondition(lambda self: self.transition is not None)
    @rule()
    def force(self):
        patch, target = self.transition
        self.attempt(lambda: self.vfs.write(f"{LP}/{patch.name}/force", "1"), None)
        # klp_force_transition: the patches it removes keep their modules for good.
        if not target:
            self.pinned.add(patch.name)
        elif patch.replace:
            self.pinned.update(p.name for p in self.patches if p is not patch)

    @rule(ms=st.integers(1, 2500))
    def sleep(self, ms):
        self.m.run(ms * MS)
        self.sync()

    @rule(on=st.booleans(), filtered=st.booleans())
    def function_tracer(self, on, filtered):
        self.vfs.write(f"{TRACING}/set_ftrace_filter", "cmdline_proc_show\n" if filtered else "\n")
        self.vfs.write(f"{TRACING}/current_tracer", "function" if on else "nop")
        self.tracer = "function" if on else "nop"
        assert self.vfs.read(f"{TRACING}/current_tracer") == self.tracer + "\n"

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def cmdline_shows_the_topmost_patch(self):
        self.sync()
        text = self.vfs.read("/proc/cmdline")
        if self.transition is None:
            assert text == self.cmdline_for(self.patches)
        else:
            assert text in {self.cmdline_for(self.patches), self.cmdline_for(self.after_transition())}, text

    @invariant()
    def model_matches_the_kernel(self):
        self.sync()
        assert self.m.oops is None, str(self.m.oops)
        lp = self.m.kernel.livepatch
        assert [lp.name(p) for p in lp.patches] == [p.name for p in self.patches]
        assert sorted(mod.name for mod in self.m.kernel.modules.list()) == sorted(self.loaded)
        for p in self.patches:
            in_transition = self.transition is not None and self.transition[0] is p
            assert self.vfs.read(f"{LP}/{p.name}/transition") == f"{int(in_transition)}\n"
            enabled = self.transition[1] if in_transition else p.enabled
            assert self.vfs.read(f"{LP}/{p.name}/enabled") == f"{int(enabled)}\n"

    @invariant()
    def a_transition_is_finished_or_blocked_for_a_reason(self):
        tr = self.m.kernel.livepatch.transition
        if tr.patch is None:
            return
        blockers = tr.blockers()
        for task, reason in blockers:
            assert reason, task.comm
        if not blockers:  # everyone switched: completion waits for the next attempt only
            assert all(t.patch_state == tr.target for t in all_tasks(self.m) if not t.is_idle)

    @invariant()
    def host_caches_agree_with_guest_memory(self):
        assert self.m.kernel.check_consistency() == []

    def teardown(self):
        """Everything removed: every fentry site a NOP5 again, nothing in enabled_functions."""
        if self.m.oops is not None:
            return
        self.vfs.write(f"{TRACING}/current_tracer", "nop")
        self.vfs.write(f"{TRACING}/set_ftrace_filter", "\n")
        for _ in range(8):
            self.sync()
            if self.transition is not None:
                self.force()
                self.m.run(1100 * MS)
                continue
            if not self.patches:
                break
            self.vfs.write(f"{LP}/{self.patches[-1].name}/enabled", "0")
            self.transition = (self.patches[-1], False)
            self.m.run(1100 * MS)
        self.sync()
        assert self.patches == [] and self.transition is None
        for name in list(self.loaded):
            if name not in self.pinned:
                self.m.kernel.modules.unload(name)
                del self.loaded[name]
        ft = self.m.kernel.ftrace
        assert ft.enabled_functions() == ""
        bad = [ft.symbol_of(ip) for ip in ft.records.ips() if self.m.mem.read(ip, 5) != NOP5]
        assert bad == []
        assert self.m.kernel.check_consistency() == []


LivepatchMachine.TestCase.settings = settings.get_profile(PROFILE)
TestLivepatchMachine = LivepatchMachine.TestCase
