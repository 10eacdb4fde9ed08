"""text_poke's int3 protocol: the byte states, and a second CPU running through the site at every step."""

from __future__ import annotations

import pytest
from machine_util import make_machine
from unicorn import UC_HOOK_CODE

from klpemu.kernel.text_poke import NOP5, call_insn

SITE_FUNC = "bench_leaf"  # traceable, takes an int, returns it transformed, touches nothing else


@pytest.fixture
def m():
    machine = make_machine()
    return machine


def run_through_site(m, cpu=1):
    """Call SITE_FUNC on another CPU, recording every executed address."""
    executed = []
    h = m.uc.hook_add(UC_HOOK_CODE, lambda uc, addr, size, ud: executed.append(addr))
    m.uc.ctl_flush_tb()  # hooks apply to blocks translated after them
    try:
        result = m.call(SITE_FUNC, 20, cpu=cpu)
    finally:
        m.uc.hook_del(h)
        m.uc.ctl_flush_tb()
    return result, executed


def test_byte_states_and_syncs(m):
    tp = m.kernel.text_poke
    site = m.image.addr(SITE_FUNC)
    new = call_insn(site, m.image.addr("__fentry__"))
    seen = []
    tp.between_steps = lambda step: seen.append((step, m.mem.read(site, 5)))
    syncs = tp.syncs
    tp.batch([(site, new)])
    assert seen == [
        ("int3", b"\xcc" + NOP5[1:]),
        ("tail", b"\xcc" + new[1:]),
        ("first byte", new),
    ]
    assert tp.syncs - syncs == 3
    assert m.var("text_poke_array").nr_entries == 0
    # And back: a call becomes a NOP again through the same three states.
    seen.clear()
    tp.batch([(site, NOP5)])
    assert [s for s, _ in seen] == ["int3", "tail", "first byte"]
    assert m.mem.read(site, 5) == NOP5


@pytest.mark.parametrize("direction", ["nop->call", "call->nop"])
def test_second_cpu_never_runs_a_torn_instruction(m, direction):
    tp = m.kernel.text_poke
    site = m.image.addr(SITE_FUNC)
    target = m.image.addr("__fentry__")
    call = call_insn(site, target)
    old, new = (NOP5, call) if direction == "nop->call" else (call, NOP5)
    tp.write_early(site, old)
    expected_result, _ = run_through_site(m)
    outcomes = {}

    def probe(step):
        result, executed = run_through_site(m)
        assert result == expected_result
        # Never an instruction fetched from inside the 5-byte site.
        assert not any(site < a < site + 5 for a in executed), step
        i = executed.index(site)
        via_int3 = executed[i + 1] == m.image.addr("asm_exc_int3")
        took_call = target in executed
        # Either the old instruction or the new one, never anything else.
        assert took_call in (old == call, new == call)
        outcomes[step] = ("int3" if via_int3 else "direct", "call" if took_call else "nop")

    tp.between_steps = probe
    tp.batch([(site, new)])
    new_kind = "call" if new == call else "nop"
    # While the int3 is in place the handler emulates the NEW instruction.
    assert outcomes["int3"] == ("int3", new_kind)
    assert outcomes["tail"] == ("int3", new_kind)
    assert outcomes["first byte"] == ("direct", new_kind)
    assert m.var("text_poke_array").refs == 0
    assert m.oops is None


def test_batch_of_sites_is_sorted_and_all_emulated(m):
    tp = m.kernel.text_poke
    fentry = m.image.addr("__fentry__")
    sites = [m.image.addr(f) for f in ("meminfo_proc_show", "cmdline_proc_show", "version_proc_show")]
    descriptors = []

    def capture(step):
        if step == "int3":
            arr = m.var("text_poke_array")
            descriptors.extend((arr.vec[i].addr, arr.vec[i].opcode) for i in range(arr.nr_entries))

    tp.between_steps = capture
    tp.batch([(s, call_insn(s, fentry)) for s in sites])
    assert descriptors == [(s, 0xE8) for s in sorted(sites)]
    assert all(m.mem.read(s, 5) == call_insn(s, fentry) for s in sites)


def test_kernel_text_is_read_only_to_the_guest(m):
    # A guest store into kernel text faults; only the host's poke path writes it.
    site = m.image.addr(SITE_FUNC)
    code_page = m.mem.page_flags(site)
    assert code_page & 0x1 and not code_page & 0x2
