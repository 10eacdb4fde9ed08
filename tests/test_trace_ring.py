"""The trace ring buffer: typed records of varying length written through the guest API
(trace_buffer_lock_reserve / trace_buffer_unlock_commit), per-CPU pages, overrun when full,
sizes, and the host's decoders keyed by record type."""

from __future__ import annotations

import pytest
from machine_util import booted_system

from klpemu.kernel.ftrace.ring_buffer import BUF_PAGE_SIZE, pages_for

T = "/sys/kernel/tracing"


@pytest.fixture
def system():
    s = booted_system()
    s.machine.kernel.function_tracer.buffer.reset()
    return s


def write(m, type_id: int, length: int, seed: int = 0) -> int:
    """One record from the guest, on CPU 0, through the ring buffer API."""
    return m.call("trace_selftest_write", type_id, length, seed)


def test_records_of_varying_length_and_type_come_back_in_order(system):
    m = system.machine
    buf = m.kernel.function_tracer.buffer
    lengths = [8, 9, 24, 100, 8, 333]
    for i, n in enumerate(lengths):
        assert write(m, 40 + i, n, seed=i * 16) == 1
    records = buf.cpu_records(0)
    assert [len(r.entry) for r in records] == [(16 + n + 7) // 8 * 8 - 16 for n in lengths]
    out = m.kernel.trace_output
    recs = [out.record(r) for r in records]
    assert [r.type for r in recs] == [40 + i for i in range(len(lengths))]
    for i, (r, n) in enumerate(zip(recs, lengths, strict=True)):
        assert r.raw[8:n] == bytes((i * 16 + k) & 0xFF for k in range(n - 8))
        assert r.pid == m.struct("task_struct", m.pcpu(0).current_task).pid
        assert r.flags == m.types.enum("TRACE_FLAG_IRQS_OFF")  # a host call runs with interrupts off
    assert [r.ts for r in records] == sorted(r.ts for r in records)


def test_a_record_larger_than_a_page_is_refused(system):
    m = system.machine
    assert write(m, 40, BUF_PAGE_SIZE - 16 + 1) == 0
    assert write(m, 40, BUF_PAGE_SIZE - 16) == 1
    assert len(m.kernel.function_tracer.buffer.cpu_records(0)) == 1


def test_a_full_ring_loses_its_oldest_page_and_counts_overrun(system):
    m = system.machine
    buf = m.kernel.function_tracer.buffer
    per_page = BUF_PAGE_SIZE // 64  # 48-byte records + the 16-byte ring header
    for i in range(3 * per_page):
        write(m, 40, 48, seed=i)
    rb = buf.cpu_buffers()[0]
    assert (rb.nr_pages, rb.tail, rb.entries, rb.overrun) == (2, 3, 3 * per_page, per_page)
    records = buf.cpu_records(0)
    assert len(records) == 2 * per_page
    assert records[0].entry[8] == per_page & 0xFF  # the oldest left is the first of page 2


def test_decoders_by_type_and_unknown_types(system):
    m = system.machine
    out = m.kernel.trace_output
    buf = m.kernel.function_tracer.buffer
    write(m, 41, 16, seed=7)
    write(m, 42, 16, seed=1)
    out.register(41, "trace_entry", lambda rec: f"mine pid={rec.pid} byte={rec.raw[8]}")
    text = out.text("nop", buf)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    pid = m.struct("task_struct", m.pcpu(0).current_task).pid
    assert [line.split(": ", 1)[1] for line in lines] == [f"mine pid={pid} byte=7", "Unknown type 42"]
    assert "# entries-in-buffer/entries-written: 2/2   #P:2" in text


def test_size_is_counted_in_whole_pages(system):
    m = system.machine
    buf = m.kernel.function_tracer.buffer
    assert buf.size_kb() == 7 and not buf.expanded  # 2 pages of 4080 bytes, as Linux's minimum
    buf.expand()
    assert buf.nr_pages == pages_for(1408) == 354 and buf.size_kb() == 1410
    buf.resize(1)
    assert buf.nr_pages == 2


def test_function_records_go_through_the_same_ring(system):
    m = system.machine
    system.vfs.write(f"{T}/set_ftrace_filter", "cmdline_proc_show\n")
    system.vfs.write(f"{T}/current_tracer", "function\n")
    write(m, 43, 8)
    system.vfs.read("/proc/cmdline")
    text = system.vfs.read(f"{T}/trace")
    events = [line.split(": ", 1)[1] for line in text.splitlines() if not line.startswith("#")]
    assert events == ["Unknown type 43", "cmdline_proc_show <-seq_read_iter"]
