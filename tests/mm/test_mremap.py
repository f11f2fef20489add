"""mremap(2) as Linux 6.18 does it (mm/mremap.c), each behaviour first checked on the host.

The comments give what the host kernel (6.18) printed for the same calls
(through vmsim conform's vmops runner, or a small C program for the
map-count and locked_vm cases).  The corpus scripts in
vmsim/conform/corpus/handwritten.py and errno_cases.py replay the
observable ones against the host on every run.
"""

from __future__ import annotations

import pytest

from vmsim import Machine
from vmsim.kernel.task import Process
from vmsim.mm import mman as m
from vmsim.mm import mremap as mr
from vmsim.mm.vma import VM_LOCKED, VM_UFFD_MISSING

PS = 4096
BASE = 0x6000_0000
MOVE = m.MREMAP_MAYMOVE | m.MREMAP_FIXED
DONTUNMAP = MOVE | m.MREMAP_DONTUNMAP
PAF = "private|anonymous|fixed"


def layout(p: Process) -> list[tuple[int, int, str]]:
    """(start - BASE, end - BASE, the four permission letters) of every VMA near BASE."""
    out = []
    for vma in p.mm.mm_rb.range(BASE, BASE + (64 << 20)):
        perms = ("r" if vma.vm_flags & 1 else "-") + ("w" if vma.vm_flags & 2 else "-") + (
            "x" if vma.vm_flags & 4 else "-") + ("s" if vma.vm_flags & 8 else "p")
        out.append((vma.vm_start - BASE, vma.vm_end - BASE, perms))
    return out


def at(p: Process, off: int, pages: int, prot: str, flags: str = PAF) -> int:
    got = p.mmap(BASE + off, pages * PS, prot, flags)
    assert got == BASE + off
    return got


@pytest.fixture
def p(machine: Machine) -> Process:
    return machine.spawn()


# ---------------------------------------------------------------- check_mremap_params()
def test_overlap_is_checked_before_the_vma(machine: Machine, p: Process) -> None:
    # host: nothing mapped, overlapping ranges -> -EINVAL (not -EFAULT)
    assert p.mremap(BASE, 2 * PS, 2 * PS, MOVE, BASE + PS) == -m.EINVAL
    assert p.mremap(BASE, 2 * PS, 3 * PS, MOVE, BASE + PS) == -m.EINVAL
    assert p.mremap(BASE + PS, 2 * PS, PS, MOVE, BASE) == -m.EFAULT  # [1, 3) and [0, 1)
    # MREMAP_DONTUNMAP's address is only a hint, but it must not overlap either
    assert p.mremap(BASE, 2 * PS, 2 * PS, m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP,
                    BASE + PS) == -m.EINVAL
    at(p, 0, 2, "rw-")
    assert p.mremap(BASE, 2 * PS, 2 * PS, m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP,
                    BASE + PS) == -m.EINVAL
    got = p.mremap(BASE, 2 * PS, 2 * PS, m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP, BASE + 0x300000)
    assert got == BASE + 0x300000
    machine.check()


def test_overlap_end_wraps_like_unsigned_long(machine: Machine, p: Process) -> None:
    # host: old_len = -0x1000 wraps the old range's end below new_addr, so no overlap:
    # the destination is unmapped, then unmapping the "shrunk" tail fails with -EINVAL.
    at(p, 0, 4, "rw-")
    assert p.mremap(BASE, (1 << 64) - PS, PS, MOVE, BASE + 3 * PS) == -m.EINVAL
    assert layout(p) == [(0, 3 * PS, "rw-p")]
    machine.check()


def test_lengths_are_aligned_before_the_checks(machine: Machine, p: Process) -> None:
    # host: DONTUNMAP with 0x1000 / 0xfff is not a resize; 0x74ef / 0x7000 is a pure move
    at(p, 0, 8, "rw-")
    assert p.mremap(BASE, 0x1000, 0xFFF, DONTUNMAP, BASE + 0x100000) == BASE + 0x100000
    assert p.mremap(BASE + PS, 0x74EF, 0x7000, MOVE, BASE + 0x200000) == BASE + 0x200000
    assert layout(p) == [(0, PS, "rw-p"), (0x100000, 0x101000, "rw-p"),
                         (0x200000, 0x207000, "rw-p")]
    machine.check()


def test_map_count_margin(machine: Machine, p: Process) -> None:
    # host (max_map_count - map_count = 5, i.e. map_count + 2 >= max - 3): overlap -EINVAL,
    # a move with no VMA at addr -ENOMEM (checked before the lookup), a plain resize
    # with no VMA -EFAULT and a plain resize or shrink works: only a move needs the margin.
    at(p, 0, 2, "rw-")
    machine.kmem.sysctl.max_map_count = p.mm.map_count + 5
    assert p.mremap(BASE + 8 * PS, PS, PS, MOVE, BASE + 8 * PS) == -m.EINVAL
    assert p.mremap(BASE + 8 * PS, PS, 2 * PS, MOVE, BASE + 0x200000) == -m.ENOMEM
    assert p.mremap(BASE + 8 * PS, PS, PS, MOVE, BASE + 0x200000) == -m.ENOMEM
    assert p.mremap(BASE + 8 * PS, PS, 2 * PS, m.MREMAP_MAYMOVE) == -m.EFAULT
    assert p.mremap(BASE, 2 * PS, 3 * PS) == BASE
    assert p.mremap(BASE, 3 * PS, PS) == BASE
    assert p.mremap(BASE, PS, PS, MOVE, BASE + 0x200000) == -m.ENOMEM
    machine.kmem.sysctl.max_map_count = p.mm.map_count + 6
    assert p.mremap(BASE, PS, PS, MOVE, BASE + 0x200000) == BASE + 0x200000
    machine.check()


# ---------------------------------------------------------------- check_prep_vma()
def test_efault_before_anything_is_unmapped(machine: Machine, p: Process) -> None:
    at(p, 0, 1, "rw-")
    at(p, 0x100000, 2, "r--")
    # host: growing to a fixed address across the VMA's end -> -EFAULT, destination kept
    assert p.mremap(BASE, 2 * PS, 3 * PS, MOVE, BASE + 0x100000) == -m.EFAULT
    # host: no VMA at addr -> -EFAULT, destination kept
    assert p.mremap(BASE + 8 * PS, PS, 2 * PS, MOVE, BASE + 0x100000) == -m.EFAULT
    assert p.mremap(BASE + 8 * PS, 2 * PS, PS, MOVE, BASE + 0x100000) == -m.EFAULT
    at(p, PS, 2, "r--")
    # host: shrinking to a fixed address when the kept part crosses the VMA -> -EFAULT,
    # neither the destination nor the tail unmapped
    assert p.mremap(BASE, 3 * PS, 2 * PS, MOVE, BASE + 0x100000) == -m.EFAULT
    assert layout(p) == [(0, PS, "rw-p"), (PS, 3 * PS, "r--p"), (0x100000, 0x102000, "r--p")]
    # host: only the unmapped tail may cross: it goes, then the rest moves
    assert p.mremap(BASE, 2 * PS, PS, MOVE, BASE + 0x100000) == BASE + 0x100000
    assert layout(p) == [(2 * PS, 3 * PS, "r--p"), (0x100000, 0x101000, "rw-p"),
                         (0x101000, 0x102000, "r--p")]
    machine.check()


# ---------------------------------------------------------------- remap_move()
def test_move_of_adjacent_vmas_keeps_their_pages(machine: Machine, p: Process) -> None:
    a = at(p, 0, 1, "rw-")
    at(p, PS, 1, "r--")
    p.store(a, b"\xaa")
    frame = p.translate(a)
    # host: ret +0x100000; rw-p then r--p there; the data moved with the page
    assert p.mremap(BASE, 2 * PS, 2 * PS, MOVE, BASE + 0x100000) == BASE + 0x100000
    assert layout(p) == [(0x100000, 0x101000, "rw-p"), (0x101000, 0x102000, "r--p")]
    assert p.load(BASE + 0x100000) == b"\xaa" and p.translate(BASE + 0x100000) == frame
    machine.check()


def test_gaps_are_kept_and_what_is_in_them_stays(machine: Machine, p: Process) -> None:
    at(p, 0, 1, "rw-")
    at(p, 2 * PS, 1, "r--")
    at(p, 0x100000, 3, "r-x")
    # host: each VMA lands at its own offset; the destination's gap keeps its r-x page
    assert p.mremap(BASE, 3 * PS, 3 * PS, MOVE, BASE + 0x100000) == BASE + 0x100000
    assert layout(p) == [(0x100000, 0x101000, "rw-p"), (0x101000, 0x102000, "r-xp"),
                         (0x102000, 0x103000, "r--p")]
    machine.check()


def test_gap_at_start_fails_gap_at_end_is_fine(machine: Machine, p: Process) -> None:
    at(p, PS, 1, "rw-")
    at(p, 0x100000, 3, "r-x")
    # host: -EFAULT, nothing changed
    assert p.mremap(BASE, 2 * PS, 2 * PS, MOVE, BASE + 0x100000) == -m.EFAULT
    assert layout(p) == [(PS, 2 * PS, "rw-p"), (0x100000, 0x103000, "r-xp")]
    # host: the range may end in a gap; the destination's part past the VMA stays
    assert p.mremap(BASE + PS, 3 * PS, 3 * PS, MOVE, BASE + 0x100000) == BASE + 0x100000
    assert layout(p) == [(0x100000, 0x101000, "rw-p"), (0x101000, 0x103000, "r-xp")]
    # host: nothing at all in the range: -EFAULT
    assert p.mremap(BASE, 3 * PS, 3 * PS, MOVE, BASE + 0x200000) == -m.EFAULT
    machine.check()


def test_range_split_at_both_ends(machine: Machine, p: Process) -> None:
    at(p, 0, 2, "rw-")
    at(p, 2 * PS, 2, "r--")
    # host: [0,1) and [3,4) stay; [1,2) rw and [2,3) r go to 0x100000
    assert p.mremap(BASE + PS, 2 * PS, 2 * PS, MOVE, BASE + 0x100000) == BASE + 0x100000
    assert layout(p) == [(0, PS, "rw-p"), (3 * PS, 4 * PS, "r--p"),
                         (0x100000, 0x101000, "rw-p"), (0x101000, 0x102000, "r--p")]
    machine.check()


def test_destination_in_the_tail_of_the_last_vma(machine: Machine, p: Process) -> None:
    a = at(p, 0, 1, "rw-")
    at(p, PS, 3, "r--")
    p.store(a, b"\x11")
    # host: the destination [2, 4) is the tail of the r-- VMA, past the range: allowed
    assert p.mremap(BASE, 2 * PS, 2 * PS, MOVE, BASE + 2 * PS) == BASE + 2 * PS
    assert layout(p) == [(2 * PS, 3 * PS, "rw-p"), (3 * PS, 4 * PS, "r--p")]
    assert p.load(BASE + 2 * PS) == b"\x11"
    machine.check()


def test_move_next_to_itself_ends_the_walk(machine: Machine, p: Process) -> None:
    # An unfaulted anonymous VMA's copy takes a pgoff that follows its address, so a
    # destination right after the VMA merges with the VMA itself; the walk then stops at
    # the VMA's old end (past the range) instead of meeting the merged VMA again.
    at(p, 0, 8, "--x")
    # host: ret +0x8000, one VMA [0, 0xb000)
    assert p.mremap(BASE + 3 * PS, 3 * PS, 3 * PS, DONTUNMAP, BASE + 8 * PS) == BASE + 8 * PS
    assert layout(p) == [(0, 11 * PS, "--xp")]
    p.munmap(BASE, 11 * PS)
    at(p, 0, 8, "rw-")
    # host: ret +0x8000: [0, 5) and [8, 11); moving it back merges all again
    assert p.mremap(BASE + 5 * PS, 3 * PS, 3 * PS, MOVE, BASE + 8 * PS) == BASE + 8 * PS
    assert layout(p) == [(0, 5 * PS, "rw-p"), (8 * PS, 11 * PS, "rw-p")]
    assert p.mremap(BASE + 8 * PS, 3 * PS, 3 * PS, MOVE, BASE + 5 * PS) == BASE + 5 * PS
    assert layout(p) == [(0, 8 * PS, "rw-p")]
    machine.check()


def test_dontunmap_of_several_vmas(machine: Machine, p: Process) -> None:
    a = at(p, 0, 1, "rw-")
    b = at(p, 2 * PS, 1, "rw-")
    p.store(a, b"\x01")
    p.store(b, b"\x02")
    # host: ret +0x100000; the old VMAs stay, empty; the new ones hold the pages
    assert p.mremap(BASE, 3 * PS, 3 * PS, DONTUNMAP, BASE + 0x100000) == BASE + 0x100000
    assert layout(p) == [(0, PS, "rw-p"), (2 * PS, 3 * PS, "rw-p"),
                         (0x100000, 0x101000, "rw-p"), (0x102000, 0x103000, "rw-p")]
    assert p.load(BASE + 0x102000) == b"\x02" and p.load(b) == b"\x00"
    assert p.mm.mm_rb.find_vma(a).anon_vma is None  # each moved whole: unlinked
    machine.check()


def test_failure_part_way_keeps_what_moved(machine: Machine, p: Process) -> None:
    # host (C program, map_count = max_map_count - 6): -ENOMEM after the first two VMAs
    # moved and the third one's destination was unmapped (prep_move_vma()'s margin).
    at(p, 0, 1, "rw-")
    at(p, 2 * PS, 1, "rwx")
    at(p, 4 * PS, 1, "rw-")
    at(p, 0x100000 - PS, 7, "r--")
    machine.kmem.sysctl.max_map_count = p.mm.map_count + 6
    assert p.mremap(BASE, 5 * PS, 5 * PS, MOVE, BASE + 0x100000) == -m.ENOMEM
    assert layout(p) == [(4 * PS, 5 * PS, "rw-p"), (0xFF000, 0x100000, "r--p"),
                         (0x100000, 0x101000, "rw-p"), (0x101000, 0x102000, "r--p"),
                         (0x102000, 0x103000, "rwxp"), (0x103000, 0x104000, "r--p"),
                         (0x105000, 0x106000, "r--p")]
    machine.check()


def test_uffd_armed_vma_only_alone(machine: Machine, p: Process) -> None:
    # vma_multi_allowed(): a userfaultfd-armed VMA may be moved only as the first and only one
    a = at(p, 0, 1, "rw-")
    at(p, PS, 1, "r--")
    p.mm.mm_rb.find_vma(a).vm_flags |= VM_UFFD_MISSING
    assert p.mremap(BASE, 2 * PS, 2 * PS, MOVE, BASE + 0x100000) == -m.EFAULT
    assert p.mremap(BASE, PS, PS, MOVE, BASE + 0x100000) == BASE + 0x100000
    p.mm.mm_rb.find_vma(BASE + 0x100000).vm_flags &= ~VM_UFFD_MISSING
    assert p.mremap(BASE + 0x100000, PS, PS, MOVE, BASE) == BASE
    p.mm.mm_rb.find_vma(BASE + PS).vm_flags |= VM_UFFD_MISSING
    # not the first: the first VMA has moved already when the second one is refused
    assert p.mremap(BASE, 2 * PS, 2 * PS, MOVE, BASE + 0x200000) == -m.EFAULT
    assert layout(p) == [(PS, 2 * PS, "r--p"), (0x200000, 0x201000, "rw-p")]
    machine.check()


# ---------------------------------------------------------------- move_vma()
def test_dontunmap_drops_the_whole_vmas_anon_vma(machine: Machine, p: Process) -> None:
    at(p, 0, 3, "rw-")
    p.madvise(BASE + 2 * PS, PS, m.MADV_DONTDUMP)
    p.store(BASE + 2 * PS, b"\x5a")
    p.store(BASE, b"\x5a")
    p.madvise(BASE + 2 * PS, PS, m.MADV_DODUMP)
    assert len(layout(p)) == 2  # two anon_vmas: no merge
    assert p.mremap(BASE, 2 * PS, 2 * PS, DONTUNMAP, BASE + 0x200000) == BASE + 0x200000
    # host: the emptied VMA has no anon_vma any more, so it merges with its neighbour now
    p.madvise(BASE + 2 * PS, PS, m.MADV_DONTDUMP)
    p.madvise(BASE + 2 * PS, PS, m.MADV_DODUMP)
    assert layout(p) == [(0, 3 * PS, "rw-p"), (0x200000, 0x202000, "rw-p")]
    machine.check()


def test_dontunmap_of_part_keeps_the_anon_vma(machine: Machine, p: Process) -> None:
    at(p, 0, 3, "rw-")
    p.store(BASE, b"\x5a")
    anon = p.mm.mm_rb.find_vma(BASE).anon_vma
    assert p.mremap(BASE, 2 * PS, 2 * PS, DONTUNMAP, BASE + 0x200000) == BASE + 0x200000
    assert p.mm.mm_rb.find_vma(BASE).anon_vma is anon
    machine.check()


def test_dontunmap_of_locked_memory(machine: Machine, p: Process) -> None:
    # host: VmLck 16 kB after mlock, 24 kB after DONTUNMAP of 2 pages (the new VMA is
    # counted, the old one is not uncounted), 16 kB once everything is unmapped; the
    # whole old VMA (not split) is unlocked, the new one locked.
    at(p, 0, 4, "rw-")
    assert p.mlock(BASE, 4 * PS) == 0
    assert p.mm.locked_vm == 4
    assert p.mremap(BASE, 2 * PS, 2 * PS, DONTUNMAP, BASE + 0x100000) == BASE + 0x100000
    assert p.mm.locked_vm == 6
    assert not p.mm.mm_rb.find_vma(BASE).vm_flags & VM_LOCKED
    assert p.mm.mm_rb.find_vma(BASE).vm_end == BASE + 4 * PS
    assert p.mm.mm_rb.find_vma(BASE + 0x100000).vm_flags & VM_LOCKED
    assert p.munmap(BASE, 0x200000) == 0
    assert p.mm.locked_vm == 4
    machine.check()


def test_move_of_locked_memory_keeps_locked_vm(machine: Machine, p: Process) -> None:
    # host: VmLck 16 kB before and after moving half of a MAP_LOCKED area
    at(p, 0, 4, "rw-", "private|anonymous|fixed|locked")
    assert p.mm.locked_vm == 4
    assert p.mremap(BASE, 2 * PS, 2 * PS, MOVE, BASE + 0x100000) == BASE + 0x100000
    assert p.mm.locked_vm == 4
    machine.check()


def test_failed_page_table_move_is_undone(machine: Machine, p: Process,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # copy_vma_and_data(): entries that moved go back, the new range is unmapped: -ENOMEM
    a = at(p, 0, 2, "rw-")
    p.store(a, b"\x01")
    p.store(a + PS, b"\x02")
    frames = [p.translate(a), p.translate(a + PS)]
    real = mr.pte_alloc
    dest = BASE + 0x100000

    def fail_second(kmem, mm, addr):
        return -m.ENOMEM if addr == dest + PS else real(kmem, mm, addr)

    monkeypatch.setattr(mr, "pte_alloc", fail_second)
    assert p.mremap(a, 2 * PS, 2 * PS, MOVE, dest) == -m.ENOMEM
    monkeypatch.undo()
    assert layout(p) == [(0, 2 * PS, "rw-p")]
    assert [p.translate(a), p.translate(a + PS)] == frames
    assert p.load(a + PS) == b"\x02"
    machine.check()


# ---------------------------------------------------------------- resizing
def test_grow_in_place_absorbs_the_next_vma(machine: Machine, p: Process) -> None:
    at(p, 0, 1, "rw-")
    at(p, 2 * PS, 1, "rw-")
    assert p.mremap(BASE, PS, 2 * PS) == BASE
    assert layout(p) == [(0, 3 * PS, "rw-p")]
    machine.check()


def test_locked_growth_by_moving_is_populated(machine: Machine, p: Process) -> None:
    at(p, 0, 2, "rw-", "private|anonymous|fixed|locked")
    at(p, 2 * PS, 1, "r--")
    new = p.mremap(BASE, 2 * PS, 4 * PS, m.MREMAP_MAYMOVE)
    assert new > 0 and new != BASE
    assert all(p.translate(new + i * PS) is not None for i in range(4))
    assert p.mm.locked_vm == 4
    machine.check()


def test_same_size_without_move_only_needs_a_vma_at_addr(machine: Machine, p: Process) -> None:
    at(p, 0, 1, "rw-")
    assert p.mremap(BASE, 10 * PS, 10 * PS, m.MREMAP_MAYMOVE) == BASE
    assert p.mremap(BASE + PS, PS, PS, 0) == -m.EFAULT
    machine.check()


def test_moved_vma_with_fork_history_does_not_merge_into_unfaulted_neighbour() -> None:
    """copy_vma() passes the copied VMA as `copied_from`: its inherited anon_vma chain
    forbids merging with a neighbour that has no anon_vma (checked on the host, Linux 6.18)."""
    from vmsim import Machine

    m = Machine(memory="16M")
    p = m.spawn()
    base = 0x7F00_0000_0000
    a = p.mmap(base + 0x1000, 0x1000, "rw-", "private|anonymous|fixed")
    p.store(a, b"x")
    c = p.fork()
    assert not isinstance(c, int)
    assert c.mremap(a, 0x1000, 0x1000, 3, base + 0x100000) == base + 0x100000
    assert c.mmap(base, 0x1000, "rw-", "private|anonymous|fixed") == base
    assert c.mremap(base + 0x100000, 0x1000, 0x1000, 3, a) == a
    assert len(c.mm.mm_rb.range(base, base + 0x2000)) == 2
    assert c.load(a) == b"x"
    m.check()
