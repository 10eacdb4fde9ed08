"""The machine: a kernel image running on N emulated CPUs in one Unicorn instance.

CPUs are interleaved in rounds; each round gives every CPU a slice of instructions whose
length, like the order of the CPUs, comes from a seeded generator, so a seed fixes the whole
execution. Emulated time advances one nanosecond per instruction slot (a 1 GHz, one
instruction per cycle clock) and jumps to the next timer tick when every CPU is halted.

Slices are counted by Unicorn (emu_start's count) unless the machine is configured `uncounted`:
then a block counter (block_counter.py) budgets them at translation-block boundaries, two to
three times faster, and a CPU that runs alone (the others halted with nothing pending) runs in
long slices up to the next timer tick. Both are deterministic for a seed; they interleave the
CPUs differently, so their transcripts differ.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from errno import EAGAIN, EEXIST, EINVAL, EIO, ENODEV, ETIMEDOUT
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_HOOK_INTR, UC_MODE_64, Uc, UcError
from unicorn import x86_const as x

from ..abi import HYPERCALL_PORT
from ..errors import Interrupted, KlpemuError
from . import abi_gen
from .cpu import CPU, EFLAGS_IF, InterruptError, deliver_interrupt, live_regs
from .heap import GuestHeap
from .hypercall import HypercallTable
from .image import KernelImage
from .kstr import kstr
from .memory import PTE_RW, PTE_USER, GuestMemory
from .oops import Oops
from .type_cache import cached_types
from .types import Pointer, TypeInfo, View, container_of, list_for_each_entry

if TYPE_CHECKING:
    from ..kernel.core import Kernel
    from ..timeline.recorder import Recorder
    from .block_counter import BlockCounter

DEFAULT_CMDLINE = "console=ttyS0 root=/dev/vda ro quiet"
NS_PER_SEC = 1_000_000_000
FOREVER = 1 << 62
# Livepatch's consistency models (klpemu/kernel/livepatch/models.py), Linux's first.
CONSISTENCY_MODELS = ("linux", "stop_machine", "lazy", "immediate")


def shipped_image() -> Path:
    return Path(str(resources.files("klpemu") / "images" / "vmlinux"))


def load_image(path: str | Path) -> tuple[KernelImage, TypeInfo]:
    """The image at path and its DWARF types, parsed once per version of the file in this
    process, since parsing takes longer than booting: machines share the parse, which nothing
    changes, each with its own copy of the one per-machine part (the module kallsyms)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return _parse(p)  # the loader reports it in its own words
    image, types = _parse_cached(p, st.st_mtime_ns, st.st_size)
    return copy.deepcopy(image), types


def _parse(path: Path) -> tuple[KernelImage, TypeInfo]:
    image = KernelImage(path)
    return image, cached_types(image.raw, lambda: TypeInfo(image.dwarf))


@functools.lru_cache(maxsize=4)
def _parse_cached(path: Path, _mtime_ns: int, _size: int) -> tuple[KernelImage, TypeInfo]:
    return _parse(path)


@dataclass
class MachineConfig:
    image: str | Path | None = None
    cpus: int = 2
    seed: int = 0
    cmdline: str = DEFAULT_CMDLINE
    mem_mb: int = 64
    slice_insns: int = 2000  # mean slice; each slice is drawn from [slice/2, 3*slice/2]
    insn_ns: int = 1
    watchdog_thresh_ns: int = 10 * NS_PER_SEC  # hard lockup after this, soft lockup after twice
    consistency_model: str = "linux"  # livepatch's: linux, stop_machine, lazy or immediate
    klp_stack_check: bool = True  # a debug switch: False lets linux's model switch any task
    uncounted: bool = False  # slices budgeted by the block counter instead of Unicorn's count


# A CPU running alone, uncounted, takes slices up to this many times the mean. Each emu_start
# costs Unicorn some 70 us; the guest's clock moves once a slice, so this also bounds its
# resolution (500 us at 1 GHz, the tick's 4 ms at 100 MHz) and how late `until` is noticed.
ALONE_SLICE_FACTOR = 250


class GuestStopped(KlpemuError):
    """Raised by operations that need a running machine after an oops stopped it."""


class Machine:
    def __init__(self, config: MachineConfig | None = None, **overrides):
        self.config = config = config or MachineConfig(**overrides)
        if config.cpus < 1 or config.cpus > 8:
            raise KlpemuError(f"cpus must be between 1 and 8, not {config.cpus}", EINVAL)
        if config.consistency_model not in CONSISTENCY_MODELS:
            raise KlpemuError(
                f"unknown consistency model '{config.consistency_model}' (one of {', '.join(CONSISTENCY_MODELS)})",
                EINVAL,
            )
        self.image, self.types = load_image(config.image or shipped_image())
        if config.image is not None and Path(config.image).resolve() != shipped_image().resolve():
            abi_gen.check(self.types)  # the shipped image's are checked by the tests
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.mem = GuestMemory(self.uc, config.mem_mb << 20)
        self.heap = GuestHeap(self.mem)
        self.rng = random.Random(config.seed)
        self.now = 0  # emulated nanoseconds
        self.insns = 0  # instruction slots handed out
        self.booted = False
        self.oops: Oops | None = None
        self.cpus = [CPU(i) for i in range(config.cpus)]
        self._host_work: list[tuple[int, int, Callable[[], None]]] = []  # (due ns, seq, fn)
        self._host_work_seq = 0
        self._running: CPU | None = None
        self._fault: tuple[int, int] | None = None  # (vector, rip) of an exception in the last slice
        self._soft_trap: int | None = None
        self._hypercall_stop: str | None = None
        self._sym = self.image.addr
        self._stop_requested = False
        # Called when a run reaches a requested stop (a debugger's breakpoint, say): True when it
        # dealt with the stop and the run goes on; otherwise the run raises Interrupted.
        self.stop_handler: Callable[[], bool] | None = None
        self._run_depth = 0  # runs nest (a condition that reads a file runs the console)
        self._load()
        self.block_counter: BlockCounter | None = None
        self._counting = True  # whether the last emu_start counted with Unicorn's hook
        self._make_block_counter()
        self.tick_ns = self.read_var_int("tick_nsec")
        # Software interrupts with gates in the guest's IDT: the system call gate and int3.
        self.software_vectors = (self.types.enum("IA32_SYSCALL_VECTOR"), self.types.enum("X86_TRAP_BP"))
        # Written or read around every slice: keep their addresses rather than walk the types.
        self._clock_phys = [self.mem.phys(self.pcpu(i).addr_of("clock_ns")) for i in range(config.cpus)]
        self._halting_addr = [self.pcpu(i).addr_of("halting") for i in range(config.cpus)]
        self._current_task_addr = [self.pcpu(i).addr_of("current_task") for i in range(config.cpus)]
        self.next_tick = self.tick_ns
        self.hypercalls = HypercallTable({k: v for k, v in self.types.enums.items() if k.startswith("HC_")})
        self.hypercalls.register("HC_SEND_IPI", self._hc_send_ipi)
        self.hypercalls.register("HC_START_CPU", self._hc_start_cpu)
        self.hypercalls.register("HC_BOOT_DONE", self._hc_boot_done)
        self.hypercalls.register("HC_PANIC", self._hc_panic)
        self._install_hooks()
        self._start_boot_cpu()
        self._kernel: Kernel | None = None
        # The timeline recorder while one records (klpemu.timeline); None costs nothing.
        self.timeline: Recorder | None = None

    @property
    def kernel(self) -> Kernel:
        """The control plane the firmware calls into (built by System, which attaches it)."""
        if self._kernel is None:
            raise KlpemuError("this machine has no kernel control plane: build it through System", ENODEV)
        return self._kernel

    def attach_kernel(self, kernel: Kernel) -> None:
        if self._kernel is not None:
            raise KlpemuError("this machine has a kernel control plane already", EEXIST)
        self._kernel = kernel

    # --- setting up ----------------------------------------------------------------------------

    def _load(self) -> None:
        for seg in self.image.segments:
            flags = 0
            if seg.writable:
                flags |= PTE_RW
            if seg.user:
                flags |= PTE_USER
            self.mem.map_range(seg.vaddr, seg.memsz, flags, seg.data)
        uc = self.uc
        uc.reg_write(x.UC_X86_REG_CR3, self.mem.pml4)
        uc.reg_write(x.UC_X86_REG_CR4, uc.reg_read(x.UC_X86_REG_CR4) | (1 << 5))  # PAE
        uc.reg_write(x.UC_X86_REG_CR0, uc.reg_read(x.UC_X86_REG_CR0) | (1 << 31) | (1 << 16))  # PG, WP
        uc.reg_write(x.UC_X86_REG_EFLAGS, 0x2)
        params = self.var("boot_params")
        cmd = self.config.cmdline.encode()
        limit = params.type.member("cmdline")[1].size - 1
        if len(cmd) > limit:
            raise KlpemuError(f"command line longer than {limit} bytes", EINVAL)
        self.mem.write(params.addr_of("cmdline"), cmd + b"\0")
        params.mem_size = self.config.mem_mb << 20
        params.nr_cpus = self.config.cpus
        self.hlt_resume = self._sym("arch_cpu_idle_hlt") + 1

    def _install_hooks(self) -> None:
        uc = self.uc
        uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, x.UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        uc.ctl_remove_cache = self._remove_cache_in_ring0(uc.ctl_remove_cache)  # type: ignore[method-assign]

    def _remove_cache_in_ring0(self, drop: Callable[[int, int], None]) -> Callable[[int, int], None]:
        """Unicorn finds the blocks to drop by translating the address through the live CPU's
        MMU; when the live state is in user mode, kernel text is not mapped for it and the
        blocks silently stay. Every writer of code drops them through this, in a ring-0 state."""
        uc = self.uc

        def remove_cache(begin: int, end: int) -> None:
            ring0 = None
            if uc.reg_read(x.UC_X86_REG_CS) & 3:
                ring0 = next((c.kernel_ctx for c in self.cpus if c.kernel_ctx is not None), None)
            if ring0 is None:
                drop(begin, end)
                return
            live = uc.context_save()
            uc.context_restore(ring0)
            try:
                drop(begin, end)
            finally:
                uc.context_restore(live)

        return remove_cache

    def after_restore(self) -> None:
        """On a copy of this machine put onto a new Unicorn instance (klpemu/snapshot.py), with
        RAM and the live registers already there: what else the instance must hold."""
        self._install_hooks()
        # Its translation cache is empty, so counting starts as on a new machine (see below).
        self._count_armed = False
        self._make_block_counter()

    def _make_block_counter(self) -> None:
        if self.config.uncounted:
            from .block_counter import BlockCounter

            self.block_counter = BlockCounter(self.uc, self.mem.read)

    def _start_boot_cpu(self) -> None:
        cpu0 = self.cpus[0]
        stack_top = self.var_addr("task_stacks") + self.thread_size
        ctx = self.uc.context_save()
        ctx.reg_write(x.UC_X86_REG_RIP, self._sym("startup_64"))
        ctx.reg_write(x.UC_X86_REG_RSP, stack_top - self.types.sizeof("pt_regs"))
        ctx.reg_write(x.UC_X86_REG_RDI, 0)
        cpu0.ctx = ctx
        cpu0.online = True
        # Unicorn installs its instruction-count hook lazily at the first counted run and keeps
        # blocks translated before that uncounted (Unicorn 2.1: a count= given later is ignored in
        # them): flush once after it.
        self._count_armed = False

    # --- guest data ----------------------------------------------------------------------------

    def var_addr(self, name: str) -> int:
        return self._sym(name)

    def var(self, name: str) -> View:
        """A typed view of a global variable."""
        try:
            t = self.types.variables[name]
        except KeyError:
            raise KlpemuError(f"no variable {name} in the image's debug info", EINVAL) from None
        return View(self.mem, t, self._sym(name))

    def struct(self, name: str, addr: int) -> View:
        return View(self.mem, self.types.struct(name), addr)

    def ptr(self, name: str, addr: int) -> Pointer:
        """A `struct name *` holding addr: the typed handle the control plane passes around."""
        return Pointer(self.mem, self.types.struct(name), addr)

    def container_of(self, addr: int, name: str, member: str) -> Pointer:
        return container_of(addr, self.mem, self.types.struct(name), member)

    def list_for_each_entry(self, name: str, head: int, member: str) -> Iterator[Pointer]:
        """The `struct name` entries of the list at head, linked through `member`."""
        return list_for_each_entry(self.mem, self.types.struct(name), head, member)

    def read_var_int(self, name: str) -> int:
        t = self.types.variables[name]
        return int.from_bytes(self.mem.read(self._sym(name), t.size), "little", signed=t.signed)

    @property
    def thread_size(self) -> int:
        """THREAD_SIZE, from the type of the kernel's stack array."""
        stack = self.types.variables["task_stacks"].target
        assert stack is not None, "task_stacks is an array of stacks"
        return stack.size

    def current_task(self, cpu: int) -> int:
        """pcpu_hot[cpu].current_task, read without a view: asked for every task by each pass
        of the livepatch transition."""
        return self.mem.read_u64(self._current_task_addr[cpu])

    def pcpu(self, cpu: int) -> View:
        return self.var("pcpu_hot")[cpu]

    # --- hooks (run inside emu_start) ------------------------------------------------------------

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _ud) -> None:
        if port != HYPERCALL_PORT:
            return
        nr = uc.reg_read(x.UC_X86_REG_RAX)
        if nr not in self.hypercalls:
            self._hypercall_stop = f"bad hypercall {nr}"
            uc.emu_stop()
            return
        args = [uc.reg_read(r) for r in (x.UC_X86_REG_RDI, x.UC_X86_REG_RSI, x.UC_X86_REG_RDX, x.UC_X86_REG_RCX)]
        cpu = self._running
        if cpu is not None and cpu.kernel_ctx is None:
            # A slice may go from cpu_init to user mode without ending in between (uncounted, a
            # CPU running alone does): the kernel's hypercalls on the way are a ring-0 state too.
            self._note_kernel_ctx(cpu)
        try:
            ret = self.hypercalls.dispatch(nr, args)
        except Exception as e:  # a host handler's bug (a user's Python ops, say) stops the machine
            self._hypercall_stop = f"hypercall {nr} failed in the host: {type(e).__name__}: {e}"
            uc.emu_stop()
            return
        uc.reg_write(x.UC_X86_REG_RAX, (ret or 0) & (2**64 - 1))

    def _on_interrupt(self, uc: Uc, intno: int, _ud) -> None:
        if intno in self.software_vectors:
            if uc.reg_read(x.UC_X86_REG_CS) & 3 == 0:
                # From kernel mode the gate is entered right here, without stopping.
                try:
                    deliver_interrupt(uc, self.mem, intno, software=True)
                    return
                except InterruptError:
                    pass
            else:
                # From user mode it is entered after the slice stops, since leaving user mode
                # needs a context switch of the CPU state (see deliver_interrupt).
                self._soft_trap = intno
                uc.emu_stop()
                return
        self._fault = (intno, uc.reg_read(x.UC_X86_REG_RIP))
        uc.emu_stop()

    def _hc_send_ipi(self, cpu: int, vector: int, *_unused: int) -> int:
        if cpu >= len(self.cpus) or not self.cpus[cpu].online:
            return -EINVAL
        self.cpus[cpu].pending.add(vector)
        return 0

    def _hc_start_cpu(self, cpu: int, entry: int, stack: int, *_unused: int) -> int:
        if not 0 < cpu < len(self.cpus) or self.cpus[cpu].online:
            return -EINVAL
        ctx = self.uc.context_save()  # a copy of the caller's paging state...
        ctx.reg_write(x.UC_X86_REG_EFLAGS, 0x2)
        for reg in (x.UC_X86_REG_RAX, x.UC_X86_REG_RBX, x.UC_X86_REG_RBP, x.UC_X86_REG_RSI, x.UC_X86_REG_RDX):
            ctx.reg_write(reg, 0)
        ctx.reg_write(x.UC_X86_REG_RIP, entry)  # ...started where CPU 0 asked, as INIT/SIPI would
        ctx.reg_write(x.UC_X86_REG_RSP, stack)
        ctx.reg_write(x.UC_X86_REG_RDI, cpu)
        c = self.cpus[cpu]
        c.ctx = ctx
        c.online = True
        c.last_progress_ns = self.now
        return 0

    def _hc_boot_done(self, *_args) -> int:
        self.booted = True
        return 0

    def _hc_panic(self, msg: int, *_args) -> int:
        self.stop_in_hypercall("Kernel panic - not syncing: " + self.mem.read_cstr(msg, 256))
        return 0

    def stop_in_hypercall(self, reason: str) -> None:
        """From a hypercall handler: the guest hit a bug; stop with an oops headed by reason."""
        self._hypercall_stop = reason
        self.uc.emu_stop()

    # --- running -------------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self.oops is not None

    @property
    def running_cpu(self) -> CPU | None:
        """The CPU whose slice is executing (a hypercall's caller), or None between slices."""
        return self._running

    def check_running(self) -> None:
        if self.oops is not None:
            raise GuestStopped("the machine stopped after an oops; it can be inspected but not run", EIO)

    def request_stop(self) -> None:
        """Ask a run or step in progress to stop, raising Interrupted unless stop_handler takes
        the stop. A slice being emulated ends at the next instruction boundary (from a hook,
        before the hooked instruction runs); a host call (Machine.call) is never cut short, the
        stop waits for its end. Safe from a signal handler or a hook. An interrupt holds until
        the outermost run has stopped, so that a nested run whose caller swallows the error (a
        condition reading a file) does not leave the outer one going; made between runs, it
        stops the next one."""
        self._stop_requested = True
        if self._running is not None:
            self.uc.emu_stop()

    def clear_stop(self) -> None:
        self._stop_requested = False

    def _check_stop(self) -> None:
        if not self._stop_requested:
            return
        self._stop_requested = False
        try:
            if self.stop_handler is not None and self.stop_handler():
                return  # a debugger took the stop; the run goes on
        except Interrupted:
            pass
        if self._run_depth > 1:
            self._stop_requested = True  # until the outermost run has stopped
        raise Interrupted()

    def run(self, ns: int | None = None, *, insns: int | None = None, until: Callable[[], bool] | None = None) -> bool:
        """Run for ns of emulated time, or for insns instruction slots (summed over the CPUs
        that ran), or until `until()` holds, whichever comes first. Returns whether `until`
        held (True when there is no `until` and the run was not cut short by an oops).
        Raises Interrupted, between rounds, after request_stop."""
        self.check_running()
        if ns is None and insns is None and until is None:
            raise KlpemuError("run needs a duration, an instruction count or a condition", EINVAL)
        deadline = self.now + ns if ns is not None else None
        insn_limit = self.insns + insns if insns is not None else None
        self._run_depth += 1
        try:
            while (deadline is None or self.now < deadline) and (insn_limit is None or self.insns < insn_limit):
                self._check_stop()
                self._run_host_work()
                if until is not None and until():
                    return True
                self._round(deadline, insn_limit)
                if self.oops is not None:
                    return False
            return until() if until is not None else True
        finally:
            self._run_depth -= 1

    def run_until(self, predicate: Callable[[], bool], timeout_ns: int) -> bool:
        return self.run(timeout_ns, until=predicate)

    def boot(self, timeout_ns: int = NS_PER_SEC) -> None:
        """Run until the kernel reaches user space."""
        if not self.run_until(lambda: self.booted, timeout_ns) and self.oops is None:
            raise KlpemuError("the kernel did not finish booting", ETIMEDOUT)  # ETIMEDOUT

    def schedule_host_work(self, delay_ns: int, fn: Callable[[], None]) -> None:
        """Run fn on the host once emulated time reaches now + delay_ns, between rounds (the
        machine's delayed work, e.g. livepatch's once-a-second transition retry)."""
        import heapq

        self._host_work_seq += 1
        heapq.heappush(self._host_work, (self.now + delay_ns, self._host_work_seq, fn))

    def _run_host_work(self) -> None:
        import heapq

        while self._host_work and self._host_work[0][0] <= self.now and self.oops is None:
            _, _, fn = heapq.heappop(self._host_work)
            fn()

    def _round(self, deadline: int | None, insn_limit: int | None = None) -> None:
        online = [c for c in self.cpus if c.online]
        runnable = [c for c in online if not c.halted or c.pending]
        if not runnable:
            # Nothing to run until the next tick: jump there, as a tickless idle machine would.
            self.now = max(self.now, self._horizon(deadline))
        elif self.block_counter is not None and len(runnable) == 1:
            self._run_alone(runnable[0], deadline, insn_limit)
        else:
            order = online[:]
            self.rng.shuffle(order)
            quantum = self.config.slice_insns
            for cpu in order:
                budget = self.rng.randint(quantum // 2, quantum + quantum // 2)
                self._execute(cpu, budget)
                if self.oops is not None or self._stop_requested:
                    return
            self.now += quantum * self.config.insn_ns
            self.insns += quantum * len(online)
        if self.now >= self.next_tick:
            # Queued here, delivered at each CPU's next slice: callers of run_until can see it.
            for cpu in online:
                cpu.pending.add(self.timer_vector)
            self.next_tick += self.tick_ns
            self._watchdog()

    def _horizon(self, deadline: int | None) -> int:
        """The next event of the round loop: a tick, the run's deadline or due host work."""
        target = self.next_tick if deadline is None else min(self.next_tick, deadline)
        if self._host_work:
            target = min(target, max(self.now, self._host_work[0][0]))
        return target

    def _run_alone(self, cpu: CPU, deadline: int | None, insn_limit: int | None) -> None:
        """Uncounted, with one CPU runnable: nothing interleaves, so its slice lasts up to the
        next event, and time advances by the instructions it ran."""
        assert self.block_counter is not None
        budget = max(1, (self._horizon(deadline) - self.now) // self.config.insn_ns)
        budget = min(budget, ALONE_SLICE_FACTOR * self.config.slice_insns)
        if insn_limit is not None:
            budget = max(1, min(budget, insn_limit - self.insns))
        before = self.block_counter.counted
        self._execute(cpu, budget)
        ran = self.block_counter.counted - before
        if ran == 0:
            # Halted with an interrupt it cannot take (IF=0): nothing happens before the next event.
            self.now = max(self.now + self.config.insn_ns, self._horizon(deadline))
        self.now += ran * self.config.insn_ns
        self.insns += ran

    @property
    def timer_vector(self) -> int:
        return self.types.enum("LOCAL_TIMER_VECTOR")

    def _execute(self, cpu: CPU, budget: int, *, exact: bool = False) -> list[str]:
        """Run cpu for up to budget instructions (exactly, or uncounted to a block boundary past
        them); returns what happened besides execution (interrupts delivered, the system call
        gate, halting, a crash)."""
        uc = self.uc
        uc.context_restore(cpu.ctx)
        events = self._deliver_pending(cpu)
        if "oops" in events:
            return events
        if cpu.halted:
            return events + ["halted"]
        uc.mem_write(self._clock_phys[cpu.index], self.now.to_bytes(8, "little"))
        self._running = cpu
        error = self._emulate(uc.reg_read(x.UC_X86_REG_RIP), 0, budget, exact=exact)
        self._running = None
        if self._crashed(error):
            uc.context_update(cpu.ctx)
            self._report_crash(cpu, error)
            return events + ["oops"]
        if self._soft_trap is not None:
            if not self._deliver(cpu, self._soft_trap, software=True):
                return events + ["oops"]
            events.append("system call gate" if self._soft_trap == 0x80 else f"trap 0x{self._soft_trap:x}")
        uc.context_update(cpu.ctx)
        if cpu.kernel_ctx is None:
            self._note_kernel_ctx(cpu)
        if cpu.reg("rip") == self.hlt_resume and self.mem.read_u32(self._halting_addr[cpu.index]):
            cpu.halted = True
            events.append("halted")
        return events

    def _note_kernel_ctx(self, cpu: CPU) -> None:
        """Keep the live state as cpu's ring-0 context once cpu_init has loaded its GDT, TSS and %gs."""
        uc = self.uc
        if (
            uc.reg_read(x.UC_X86_REG_CS) & 3 == 0
            and uc.reg_read(x.UC_X86_REG_GS_BASE) == self.pcpu(cpu.index).addr_of()
        ):
            cpu.kernel_ctx = uc.context_save()

    def _emulate(self, begin: int, until: int, count: int, *, exact: bool = False) -> UcError | None:
        """One emu_start of count instructions, or, uncounted and not exact, of count rounded up
        to a block boundary; the hooks record faults, traps and hypercall stops meanwhile."""
        self._soft_trap = None
        self._fault = None
        self._hypercall_stop = None
        counter = self.block_counter
        counting = counter is None or exact
        if counter is not None:
            counter.arm(count)  # counting, it stops nothing: Unicorn's count stops first
            if counting and not self._counting:
                # Unicorn dropped its count hook when the last run went without, and a block
                # translated without it would run uncounted: start from an empty cache.
                self.uc.ctl_flush_tb()  # type: ignore[attr-defined]  # in unicorn 2.1, not in its stubs
                self._count_armed = False
        self._counting = counting
        try:
            self.uc.emu_start(begin, until, count=count if counting else 0)
            error = None
        except UcError as e:
            error = e
        if counting and not self._count_armed:
            self.uc.ctl_flush_tb()  # type: ignore[attr-defined]  # in unicorn 2.1, not in its stubs
            self._count_armed = True
        return error

    def _crashed(self, error: UcError | None) -> bool:
        return error is not None or self._fault is not None or self._hypercall_stop is not None

    def _deliver_pending(self, cpu: CPU) -> list[str]:
        """Deliver the highest pending interrupt to cpu (whose context is live) if IF allows."""
        if not cpu.pending:
            return []
        if not self.uc.reg_read(x.UC_X86_REG_EFLAGS) & EFLAGS_IF:
            if cpu.undelivered_since is None:
                cpu.undelivered_since = self.now
            return []
        vector = max(cpu.pending)  # the APIC serves the highest vector first
        cpu.pending.discard(vector)
        cpu.undelivered_since = None
        if cpu.halted:
            self.mem.write(self._halting_addr[cpu.index], b"\0\0\0\0")
            cpu.halted = False
        if not self._deliver(cpu, vector):
            return ["oops"]
        return [f"interrupt 0x{vector:x}"]

    def step(self, cpu_index: int, count: int = 1, *, wake_timeout_ns: int = NS_PER_SEC):
        """Execute count instructions on one CPU, yielding (addr, regs_before, regs_after, events)
        for each, and (None, None, None, events) when an interrupt is delivered; the other CPUs
        wait. A halted CPU is first run to its next interrupt."""
        self.check_running()
        if not 0 <= cpu_index < len(self.cpus) or not self.cpus[cpu_index].online:
            raise KlpemuError(f"no CPU {cpu_index} online", EINVAL)
        cpu = self.cpus[cpu_index]
        for _ in range(count):
            self._check_stop()
            if cpu.halted and not cpu.pending:
                if not self.run_until(lambda: bool(cpu.pending), wake_timeout_ns):
                    raise KlpemuError(f"cpu{cpu_index} stays halted", EAGAIN)
            self.uc.context_restore(cpu.ctx)
            delivered = self._deliver_pending(cpu)
            self.uc.context_update(cpu.ctx)
            if delivered:
                yield None, None, None, delivered
                if self.oops is not None:
                    return
            before = cpu.regs()
            events = self._execute(cpu, 1, exact=True)
            after = cpu.regs()
            self.now += self.config.insn_ns
            yield before["rip"], before, after, events
            if self.oops is not None:
                return

    def _deliver(self, cpu: CPU, vector: int, software: bool = False) -> bool:
        """Deliver an interrupt on the live state of cpu; on failure stop with an oops."""
        try:
            deliver_interrupt(self.uc, self.mem, vector, software=software, kernel_ctx=cpu.kernel_ctx)
            return True
        except InterruptError as e:
            self.uc.context_update(cpu.ctx)
            self._stop_with_oops(cpu, f"unexpected trap: {e}")
            return False

    # --- watchdogs and crashes ------------------------------------------------------------------

    def _watchdog(self) -> None:
        thresh = self.config.watchdog_thresh_ns
        for cpu in self.cpus:
            if not cpu.online:
                continue
            if cpu.undelivered_since is not None and self.now - cpu.undelivered_since > thresh:
                self._stop_with_oops(cpu, f"watchdog: Watchdog detected hard LOCKUP on cpu {cpu.index}")
                return
            switches = self.pcpu(cpu.index).nr_switches
            if cpu.halted or cpu.user_mode or switches != cpu.last_switches:
                cpu.last_switches = switches
                cpu.last_progress_ns = self.now
            elif self.now - cpu.last_progress_ns > 2 * thresh:
                task = self.task_on(cpu.index)
                secs = (self.now - cpu.last_progress_ns) // NS_PER_SEC
                self._stop_with_oops(
                    cpu,
                    f"watchdog: BUG: soft lockup - CPU#{cpu.index} stuck for {secs}s! [{task[1]}:{task[0]}]",
                )
                return

    def task_on(self, cpu: int) -> tuple[int, str]:
        t = self.struct("task_struct", self.pcpu(cpu).current_task)
        return t.pid, kstr(t.comm)

    def _report_crash(self, cpu: CPU, error: UcError | None) -> None:
        from . import crash

        self.oops = crash.build_oops(self, cpu, error, self._fault, self._hypercall_stop)

    def _stop_with_oops(self, cpu: CPU, reason: str) -> None:
        from . import crash

        self.oops = crash.build_oops(self, cpu, None, None, reason)

    # --- host calls ----------------------------------------------------------------------------

    def call(self, func: int | str, *args: int, cpu: int = 0, budget: int = 50_000_000) -> int:
        """Run a guest function to completion with interrupts off, as CPU `cpu` would; returns rax.

        The function runs on the host-call stack in the context of the task current on that CPU.
        Other CPUs do not run meanwhile. A function that does not return within `budget`
        instructions is a runaway: the machine stops with an oops.
        """
        self.check_running()
        if isinstance(func, str):
            func = self._sym(func)
        if len(args) > 6:
            raise KlpemuError("at most six arguments", EINVAL)
        uc = self.uc
        uc.context_restore(self._hostcall_ctx(cpu))
        sp = self._sym("hostcall_stack_top") - 8
        ret = self._sym("hostcall_return")
        self.mem.write_u64(sp, ret)
        uc.reg_write(x.UC_X86_REG_RSP, sp)
        uc.reg_write(x.UC_X86_REG_RBP, 0)
        uc.reg_write(x.UC_X86_REG_RAX, 0)  # not what the CPU's task last left there: calls repeat exactly
        for reg, value in zip(
            (x.UC_X86_REG_RDI, x.UC_X86_REG_RSI, x.UC_X86_REG_RDX, x.UC_X86_REG_RCX, x.UC_X86_REG_R8, x.UC_X86_REG_R9),
            args,
            strict=False,
        ):
            uc.reg_write(reg, value & (2**64 - 1))
        fake = self.cpus[cpu]
        uc.mem_write(self._clock_phys[cpu], self.now.to_bytes(8, "little"))  # its printk stamps read now
        error = self._emulate(func, ret, budget)
        if not self._crashed(error):
            if uc.reg_read(x.UC_X86_REG_RIP) == ret:
                return uc.reg_read(x.UC_X86_REG_RAX)
            self._hypercall_stop = f"host call of {self.image.symbolize(func)} ran away ({budget} instructions)"
        saved = fake.ctx
        fake.ctx = uc.context_save()
        try:
            self._report_crash(fake, error)
        finally:
            fake.ctx = saved
        assert self.oops is not None
        raise GuestStopped(str(self.oops.lines[0]), EIO)

    def _hostcall_ctx(self, cpu: int):
        """A ring-0 state of that CPU (its GDT, TSS and %gs), whatever mode the CPU is in now."""
        c = self.cpus[cpu]
        self.uc.context_restore(c.kernel_ctx if c.kernel_ctx is not None else c.ctx)
        ctx = self.uc.context_save()
        ctx.reg_write(x.UC_X86_REG_EFLAGS, 0x2)
        return ctx

    # --- interrupts from devices ---------------------------------------------------------------

    def raise_irq(self, cpu: int, vector: int) -> None:
        self.cpus[cpu].pending.add(vector)

    def is_kernel_text(self, addr: int) -> bool:
        """vmlinux's text or a loaded module's (__kernel_text_address)."""
        if self.image.is_kernel_text(addr):
            return True
        for k in self.image.module_kallsyms:  # a loop, not any(): asked for every frame of every task
            if k.contains(addr):
                return True
        return False

    def live_regs(self) -> dict[str, int]:
        return live_regs(self.uc)
