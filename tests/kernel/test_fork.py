"""fork: copy_page_range, COW in both directions, fork-time VMA flags."""

from __future__ import annotations

from tests.ptes import pte_of
from vmsim import Machine
from vmsim.arch.x86 import _PAGE_ACCESSED, _PAGE_RW
from vmsim.mm import mman as m

PS = 4096



def test_fork_write_protects_both_and_counts(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 3 * PS, "rw-", "private|anonymous")
    for i in range(3):
        p.store(a + i * PS, bytes([65 + i]))
    c = p.fork()
    assert not isinstance(c, int)
    mem_map = machine.kmem.mem_map
    for i in range(3):
        pe, ce = pte_of(p, a + i * PS), pte_of(c, a + i * PS)
        assert not pe & _PAGE_RW and not ce & _PAGE_RW
        assert not ce & _PAGE_ACCESSED  # the child's entries start old
        pfn = machine.kmem.mode.entry_pfn(pe)
        assert pfn == machine.kmem.mode.entry_pfn(ce)
        assert (mem_map.mapcount[pfn], mem_map.refcount[pfn]) == (2, 2)
    assert c.mm.get_mm_rss() == 3
    machine.check()
    assert c.store(a, b"c")
    assert p.load(a) == b"A" and c.load(a) == b"c"
    assert c.mm.fault_kinds == {"wp-copy": 1}
    # the parent's page now has one mapper: its write reuses the frame in place
    frame = p.translate(a)
    assert p.store(a, b"p") and p.translate(a) == frame
    assert p.mm.fault_kinds["wp-reuse"] == 1
    machine.check()


def test_dontfork_wipeonfork_and_locks(machine: Machine) -> None:
    p = machine.spawn()
    p.mm.rlimits.cap_ipc_lock = True
    a = p.mmap(None, PS, "rw-", "private|anonymous")
    b = p.mmap(None, PS, "rw-", "private|anonymous")
    c_ = p.mmap(None, PS, "rw-", "private|anonymous")
    for x in (a, b, c_):
        p.store(x, b"secret")
    assert p.madvise(a, PS, m.MADV_DONTFORK) == 0
    assert p.madvise(b, PS, m.MADV_WIPEONFORK) == 0
    assert p.mlock(c_, PS) == 0
    child = p.fork()
    assert not isinstance(child, int)
    assert child.mm.mm_rb.find_vma_intersection(a, a + PS) is None
    assert child.load(b, 6) == bytes(6)  # wiped: fresh zero page
    assert child.load(c_, 6) == b"secret"
    assert child.mm.locked_vm == 0 and p.mm.locked_vm == 1
    assert child.mm.total_vm == p.mm.total_vm - 1
    assert child.load(a) is None  # not inherited at all
    machine.check()


def test_fork_skips_file_vmas_without_anon_pages(machine: Machine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "f").write_bytes(b"x" * PS * 4)
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "r--", "private", p.open("/f", 0), 0)
    p.load(a)
    # one major fault: read-around filled the cache, the retried fault mapped the window
    assert (p.maj_flt, p.min_flt, p.mm.get_mm_rss()) == (1, 0, 4)
    p.load(a + 3 * PS)
    assert (p.maj_flt, p.min_flt) == (1, 0)
    c = p.fork()
    assert not isinstance(c, int)
    assert p.mm.get_mm_rss() == 4 and c.mm.get_mm_rss() == 0  # refaulted on demand (vma_needs_copy)
    assert c.load(a) == b"x" and c.maj_flt == 0
    machine.check()


def test_fork_cost_follows_page_tables_not_mapping_size(machine: Machine) -> None:
    p = machine.spawn()
    big = p.mmap(None, 1 << 30, "rw-", m.MAP_PRIVATE | m.MAP_ANONYMOUS | m.MAP_NORESERVE)
    p.store(big, b"one page")
    c = p.fork()
    assert not isinstance(c, int)
    assert c.mm.pgtables_bytes == p.mm.pgtables_bytes == 4 * PS  # pgd+pud+pmd+pte only
    assert c.load(big, 8) == b"one page"


def test_exit_frees_everything(machine: Machine) -> None:
    start = machine.kmem.buddy.nr_free
    p = machine.spawn()
    a = p.mmap(None, 64 * PS, "rw-", "private|anonymous")
    for i in range(64):
        p.store(a + i * PS, b"z")
    c = p.fork()
    assert not isinstance(c, int)
    c.store(a, b"y")
    c.exit(3)
    p.exit()
    assert c.exit_code == 3
    machine.check()
    assert machine.kmem.buddy.nr_free == start
