"""The TLB in front of the walker: fills, hits, stale entries until a flush."""

from __future__ import annotations

from vmsim import Machine
from vmsim.arch.tlb import Tlb
from vmsim.arch.x86 import _PAGE_RW
from vmsim.mm.pgtable import pte_offset

PS = 4096


def test_fills_then_hits(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private|anonymous")
    p.store(a, b"x")
    assert p.tlb is not None
    fills = p.tlb.fills
    for _ in range(5):
        assert p.load(a) == b"x"
    assert p.tlb.fills == fills and p.tlb.hits >= 5
    assert machine.stats["tlb_hits"] >= 5


def test_stale_entry_is_served_until_flushed(machine: Machine) -> None:
    """What a missing flush would do on real hardware: the old rights stay in force."""
    p = machine.spawn()
    a = p.mmap(None, PS, "rw-", "private|anonymous")
    p.store(a, b"x")
    kmem = machine.kmem
    slot = pte_offset(kmem, p.mm.pgd, a)
    kmem.phys.write_entry(slot, 8, kmem.phys.read_entry(slot, 8) & ~_PAGE_RW)  # no flush
    assert p.store(a, b"y")  # still allowed: the TLB remembers a writable translation
    assert p.tlb is not None
    p.tlb.flush_range(a, a + PS)
    faults = p.min_flt
    assert p.store(a, b"z")  # now the walk sees the read-only entry; the fault handler fixes it
    assert p.min_flt == faults + 1 and p.mm.fault_kinds["wp-reuse"] == 1


def test_large_ranges_flush_everything() -> None:
    m = Machine(memory="16M")
    tlb = Tlb(m.mode, m.kmem.phys)
    tlb.entries = {vpn: (vpn << 12, 1) for vpn in range(100)}
    tlb.flush_range(0, 10 * PS)
    assert len(tlb.entries) == 90
    tlb.flush_range(50 * PS, 90 * PS)  # 40 pages > tlb_single_page_flush_ceiling
    assert tlb.entries == {}


def test_kernel_flushes_where_linux_does(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private|anonymous")
    p.store(a, b"parent")
    p.store(a + PS, b"keep")
    c = p.fork()  # write-protects the parent's entries: its TLB must not keep them writable
    assert not isinstance(c, int)
    p.store(a, b"PARENT")
    assert c.load(a, 6) == b"parent"
    assert p.mprotect(a + PS, PS, "r--") == 0  # downgrade: flushed, so the write faults
    assert not p.store(a + PS, b"no")
    assert p.siginfo is not None and p.siginfo.code == 2
    assert c.munmap(a, PS) == 0 and c.load(a) is None  # unmap: flushed
