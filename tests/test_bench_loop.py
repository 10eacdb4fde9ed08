"""The benchmark's call loop (firmware/kernel/bench.c): exact instruction and call counts, no timing."""

import pytest
from machine_util import make_machine
from unicorn import UC_HOOK_CODE

from klpemu.errors import KlpemuError
from klpemu.machine.console import Console

CALL_LOOP_FILE = "/sys/kernel/debug/klpemu/call_loop"
# bench_call_loop 5 (call, mov, add, cmp, jne) + bench_leaf 6 (call __fentry__, push, lea, mov,
# pop, ret) + __fentry__ 1 (ret). benchmarks/machine_speed.py relies on it.
INSNS_PER_ITER = 11  # 5 in the loop, 6 in bench_leaf (its fentry site is a NOP5 after boot)


@pytest.fixture
def machine():
    m = make_machine()
    return m


def _count_hook(m, begin=1, end=0):
    hits = [0]

    def hook(_uc, _addr, _size, _ud):
        hits[0] += 1

    h = m.uc.hook_add(UC_HOOK_CODE, hook, None, begin, end)
    m.uc.ctl_flush_tb()  # a hook applies only to blocks translated after it was added
    return hits, h


def test_leaf_site_is_a_nop_after_boot(machine):
    # The image holds `call __fentry__`; ftrace_init at boot made the live site a NOP5.
    leaf = machine.image.addr("bench_leaf")
    fentry = machine.image.addr("__fentry__")
    built = machine.image.read_static(leaf, 5)
    assert built[0] == 0xE8
    assert leaf + 5 + int.from_bytes(built[1:], "little", signed=True) == fentry
    assert machine.mem.read(leaf, 5) == bytes.fromhex("0f1f440000")


def test_instructions_per_iteration(machine):
    hits, h = _count_hook(machine)
    counts = {}
    for n in (100, 200, 300):
        hits[0] = 0
        assert machine.call("bench_call_loop", n) == n
        counts[n] = hits[0]
    machine.uc.hook_del(h)
    assert counts[200] - counts[100] == 100 * INSNS_PER_ITER
    assert counts[300] - counts[200] == 100 * INSNS_PER_ITER


def test_write_runs_exactly_n_calls(machine):
    leaf = machine.image.addr("bench_leaf")
    calls, h = _count_hook(machine, leaf, leaf)
    con = Console(machine)
    # 12345 calls span many slices; 400000 (4.8 M instructions) also a timer tick or more.
    for n in (0, 1, 12345, 400_000):
        calls[0] = 0
        t0 = machine.now
        con.write_file(CALL_LOOP_FILE, f"{n}\n")
        assert calls[0] == n
        if n == 400_000:
            assert machine.now - t0 > machine.tick_ns
        assert machine.read_var_int("bench_result") == n
    machine.uc.hook_del(h)
    assert machine.oops is None


def test_write_rejects_garbage(machine):
    con = Console(machine)
    for bad in ("", "abc", "-5"):
        with pytest.raises(KlpemuError) as e:
            con.write_file(CALL_LOOP_FILE, bad)
        assert e.value.errno == 22  # EINVAL
