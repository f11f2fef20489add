"""The fault handler's decisions, seen through CPU-like accesses."""

from __future__ import annotations

from tests.ptes import pte_of
from vmsim import Machine
from vmsim.arch.x86 import _PAGE_DIRTY, _PAGE_RW, _PAGE_SPECIAL
from vmsim.mm import mman as m

PS = 4096



def test_read_maps_zero_page_then_write_copies(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private|anonymous")
    assert p.load(a, 8) == bytes(8)
    entry = pte_of(p, a)
    assert entry & _PAGE_SPECIAL and not entry & _PAGE_RW
    assert machine.kmem.mode.entry_pfn(entry) == machine.kmem.zero_pfn
    assert p.mm.get_mm_rss() == 0  # the zero page is not charged
    assert p.store(a, b"x")
    entry = pte_of(p, a)
    assert entry & _PAGE_RW and entry & _PAGE_DIRTY and not entry & _PAGE_SPECIAL
    assert p.mm.fault_kinds == {"zero": 1, "wp-copy": 1}
    assert p.min_flt == 2 and p.maj_flt == 0
    machine.check()


def test_write_first_gets_fresh_page_one_fault(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "rw-", "private|anonymous")
    for i in range(4):
        assert p.store(a + i * PS + 5, b"abc")
    assert p.mm.fault_kinds == {"anon": 4}
    assert p.min_flt == 4
    assert p.load(a + 5, 3) == b"abc"
    assert p.min_flt == 4  # no fault for a mapped page
    machine.check()


def test_unmapped_access_is_segv_maperr(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, PS, "rw-", "private|anonymous")
    p.munmap(a, PS)
    assert p.load(a) is None
    assert p.state == "killed" and p.exit_code == 128 + 11
    assert p.siginfo is not None and (p.siginfo.signo, p.siginfo.code, p.siginfo.addr) == (11, 1, a)
    assert machine.kernel_log[-1].startswith(f"scripted[{p.pid}]: segfault at {a:x} ")
    machine.check()


def test_write_to_readonly_is_segv_accerr(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, PS, "r--", "private|anonymous")
    assert p.load(a) == b"\0"
    assert not p.store(a, b"x")
    assert p.siginfo is not None and (p.siginfo.signo, p.siginfo.code) == (11, 2)
    assert machine.kernel_log[-1].endswith("error 7")  # PROT|WRITE|USER


def test_prot_none_and_exec(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private|anonymous")
    p.store(a, b"\x90")
    assert p.mprotect(a, PS, "---") == 0
    q = p.fork()
    assert not isinstance(q, int)
    assert q.load(a) is None and q.siginfo is not None and q.siginfo.code == 2
    assert p.fetch(a + PS) is None  # no VM_EXEC: SEGV_ACCERR
    assert p.siginfo is not None and p.siginfo.code == 2
    machine.check()


def test_stack_grows_down_within_guard_rules(machine: Machine) -> None:
    p = machine.spawn()
    top = 0x7FF0_0000_0000
    s = p.mmap(top - 4 * PS, 4 * PS, "rw-", "private|anonymous|growsdown|fixed")
    assert s == top - 4 * PS
    assert p.store(s - 10 * PS, b"grow")  # below the area: expand_stack
    vma = p.mm.mm_rb.find_vma(s)
    assert vma is not None and vma.vm_start == s - 10 * PS
    assert p.mm.stack_vm == 14
    # a mapping just below blocks growth into its guard gap
    guard = machine.kmem.sysctl.stack_guard_gap
    low = p.mmap(vma.vm_start - guard - PS, PS, "rw-", "private|anonymous|fixed")
    assert low > 0
    assert p.load(vma.vm_start - PS) is None
    assert p.siginfo is not None and p.siginfo.code == 1
    machine.check()


def test_out_of_memory_kills_cleanly() -> None:
    mach = Machine(memory="1M")
    p = mach.spawn()
    a = p.mmap(None, 512 * PS, "rw-", "private|anonymous")
    ok = all(p.store(a + i * PS, b"x") for i in range(512))
    assert not ok and p.state == "killed" and p.exit_code == 128 + 9
    assert "Out of memory" in mach.kernel_log[-1]
    mach.check()
    assert mach.kmem.buddy.nr_free == mach.kmem.nr_frames - 2


def test_populate_and_locked(machine: Machine) -> None:
    p = machine.spawn()
    p.mm.rlimits.cap_ipc_lock = True
    a = p.mmap(None, 8 * PS, "rw-", m.MAP_PRIVATE | m.MAP_ANONYMOUS | m.MAP_POPULATE)
    assert p.mm.get_mm_rss() == 8 and p.min_flt == 8
    b = p.mmap(None, 3 * PS, "r--", m.MAP_PRIVATE | m.MAP_ANONYMOUS | m.MAP_LOCKED)
    assert p.mm.locked_vm == 3
    assert p.mm.fault_kinds["zero"] == 3  # read-only locked: the zero page, not fresh pages
    assert a != b
    machine.check()


def test_madvise_dontneed_drops_pages(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "rw-", "private|anonymous")
    for i in range(4):
        p.store(a + i * PS, b"data")
    assert p.madvise(a + PS, 2 * PS, m.MADV_DONTNEED) == 0
    assert p.mm.get_mm_rss() == 2
    assert p.load(a + PS, 4) == bytes(4)
    assert p.load(a, 4) == b"data"
    machine.check()


def test_mincore_reports_resident_pages(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "rw-", "private|anonymous")
    p.store(a + 2 * PS, b"x")
    assert p.mincore(a, 4 * PS) == b"\0\0\1\0"
    assert p.mincore(a + 1, PS) == -m.EINVAL
    p.munmap(a + 3 * PS, PS)
    assert p.mincore(a, 4 * PS) == -m.ENOMEM


def test_non_canonical_address_is_general_protection(machine: Machine) -> None:
    p = machine.spawn()
    assert p.load(0x8000_0000_0000) is None
    assert p.siginfo is not None and (p.siginfo.signo, p.siginfo.code, p.siginfo.addr) == (11, 0x80, 0)
    assert "general protection fault" in machine.kernel_log[-1]
    q = machine.spawn()
    assert q.mmap(None, PS, "rw-", "private|anonymous", offset=-1) == -m.EINVAL
    assert q.munmap(-PS, PS) == -m.EINVAL  # arguments are unsigned longs, as in the kernel
