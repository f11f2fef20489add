"""mmap/munmap/mremap/brk behaviour beyond errno tables: layout, accounting, limits."""

from __future__ import annotations

from vmsim import Machine
from vmsim.mm import mman as m

PS = 4096


def test_topdown_layout_below_mmap_base(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, PS, "rw-", "private|anonymous")
    b = p.mmap(None, 2 * PS, "r--", "private|anonymous")
    assert a == p.mm.mmap_base - PS
    assert b == a - 2 * PS
    c = p.mmap(None, PS, "rw-", "private|anonymous")
    assert c == b - PS


def test_hint_is_used_when_free_and_rounded_to_min_addr(machine: Machine) -> None:
    p = machine.spawn()
    assert p.mmap(0x5000_0000, PS, "rw-", "private|anonymous") == 0x5000_0000
    assert p.mmap(0x5000_0000, PS, "rw-", "private|anonymous") != 0x5000_0000
    assert p.mmap(0x5000_1801, PS, "rw-", "private|anonymous") == 0x5000_1000  # rounded down
    assert p.mmap(0x10, PS, "rw-", "private|anonymous") > 0x5000_0000  # rounds to NULL: no hint
    machine.kmem.sysctl.mmap_min_addr = 0x10000
    assert p.mmap(0x3000, PS, "rw-", "private|anonymous") == 0x10000  # raised to the minimum
    assert p.mmap(0, PS, "rw-", "private|anonymous|fixed") == -m.EPERM  # cap_mmap_addr()
    p.mm.rlimits.cap_sys_rawio = True
    assert p.mmap(0, PS, "rw-", "private|anonymous|fixed") == 0


def test_guard_gap_respected_by_search_and_hint(machine: Machine) -> None:
    p = machine.spawn()
    guard = machine.kmem.sysctl.stack_guard_gap
    stack = p.mmap(0x7000_0000_0000, 4 * PS, "rw-", "private|anonymous|growsdown|fixed")
    hint = stack - PS
    got = p.mmap(hint, PS, "rw-", "private|anonymous")
    assert got != hint
    assert not (stack - guard <= got < stack)


def test_vm_counters_and_rlimits(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "rw-", "private|anonymous")
    x = p.mmap(None, 2 * PS, "r-x", "private|anonymous")
    assert (p.mm.total_vm, p.mm.data_vm, p.mm.exec_vm) == (6, 4, 2)
    p.mprotect(a, PS, "r--")
    assert p.mm.data_vm == 3
    p.munmap(x, 2 * PS)
    assert (p.mm.total_vm, p.mm.exec_vm) == (4, 0)
    p.mm.rlimits.as_ = 8 * PS
    assert p.mmap(None, 8 * PS, "rw-", "private|anonymous") == -m.ENOMEM
    p.mm.rlimits.as_ = 1 << 64
    p.mm.rlimits.data = 5 * PS
    assert p.mmap(None, 4 * PS, "rw-", "private|anonymous") == -m.ENOMEM
    assert p.mmap(None, 4 * PS, "r--", "private|anonymous") > 0  # read-only is not "data"


def test_max_map_count(machine: Machine) -> None:
    p = machine.spawn()
    machine.kmem.sysctl.max_map_count = 5
    base = 0x6000_0000
    results = [p.mmap(base + 2 * i * PS, PS, "rw-", "private|anonymous|fixed") for i in range(8)]
    assert results[:6] == [base + 2 * i * PS for i in range(6)]
    assert results[6:] == [-m.ENOMEM, -m.ENOMEM]
    assert p.munmap(base + 2 * PS + 0, PS) == 0
    machine.check()


def test_mremap_grow_in_place_and_move(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(0x6000_0000, 2 * PS, "rw-", "private|anonymous|fixed")
    p.store(a, b"keep me")
    assert p.mremap(a, 2 * PS, 4 * PS) == a
    blocker = p.mmap(a + 4 * PS, PS, "r--", "private|anonymous|fixed")
    assert blocker == a + 4 * PS
    assert p.mremap(a, 4 * PS, 8 * PS) == -m.ENOMEM
    frame = p.translate(a)
    b = p.mremap(a, 4 * PS, 8 * PS, m.MREMAP_MAYMOVE)
    assert b > 0 and b != a
    assert p.load(b, 7) == b"keep me" and p.translate(b) == frame  # the page moved, not copied
    assert p.mm.mm_rb.find_vma_intersection(a, a + 4 * PS) is None
    c = p.mremap(b, 8 * PS, 8 * PS, m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP)
    assert c > 0 and p.load(c, 7) == b"keep me" and p.load(b, 7) == bytes(7)
    d = p.mremap(c, 8 * PS, 2 * PS)
    assert d == c and p.mm.mm_rb.find_vma(c).vm_end == c + 2 * PS
    machine.check()


def test_brk_grow_shrink_and_collision(machine: Machine) -> None:
    p = machine.spawn()
    p.mm.start_brk = p.mm.brk = 0x55_0000_0000
    assert p.brk(0) == 0x55_0000_0000
    assert p.brk(0x55_0000_3001) == 0x55_0000_3001
    assert p.store(0x55_0000_3000, b"heap")
    assert "[heap]" in p.maps()
    assert p.brk(0x55_0000_1000) == 0x55_0000_1000
    assert p.load(0x55_0000_3000) is None
    q = machine.spawn()
    q.mm.start_brk = q.mm.brk = 0x55_0000_0000
    q.mmap(0x55_0001_0000, PS, "rw-", "private|anonymous|fixed")
    assert q.brk(0x55_0001_0000) == 0x55_0000_0000  # would collide: unchanged
    assert q.brk(0x55_0000_f000) == 0x55_0000_f000
    machine.check()


def test_mlock_accounting_and_limit(machine: Machine) -> None:
    p = machine.spawn()
    p.mm.rlimits.memlock = 4 * PS
    a = p.mmap(None, 8 * PS, "rw-", "private|anonymous")
    assert p.mlock(a, 4 * PS) == 0 and p.mm.locked_vm == 4
    assert p.mm.get_mm_rss() == 4  # mlock faults the pages in (written: private writable)
    assert p.mlock(a, 4 * PS) == 0  # already locked pages are not charged twice
    assert p.mlock(a + 4 * PS, PS) == -m.ENOMEM
    assert p.munlock(a, 2 * PS) == 0 and p.mm.locked_vm == 2
    assert p.mlock2(a, PS, 0x4) == -m.EINVAL
    assert p.mlock2(a + 4 * PS, 2 * PS, m.MLOCK_ONFAULT) == 0
    assert p.mm.get_mm_rss() == 4  # on-fault locking does not populate
    p.mm.rlimits.memlock = 0
    assert p.mlock(a, PS) == -m.EPERM
    machine.check()


def test_map_droppable_flags_and_fork(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", m.MAP_DROPPABLE | m.MAP_ANONYMOUS)
    assert a > 0 and p.store(a, b"cache")
    assert "VmFlags: rd wr mr mw me nr wf dd sd dp \n" in p.smaps()
    assert p.mlock(a, PS) == 0 and p.mm.locked_vm == 0  # droppable memory is never locked
    c = p.fork()
    assert not isinstance(c, int)
    assert c.load(a, 5) == bytes(5)  # wiped on fork
    machine.check()
