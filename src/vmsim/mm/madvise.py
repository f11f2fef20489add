"""madvise(2) (mm/madvise.c): advice that changes flags, drops pages, or faults them in."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vmsim.mm import filemap
from vmsim.mm import mman as m
from vmsim.mm.fault import VmFault
from vmsim.mm.gup import faultin_range
from vmsim.mm.memory import present_pages, zap_pte_range
from vmsim.mm.mmap import U64, offset_in_page, page_align, vma_modify
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pte_alloc, pte_offset
from vmsim.mm.rmap import anon_vma_prepare
from vmsim.mm.swapops import PTE_MARKER_GUARD, is_guard_pte_marker, make_pte_marker
from vmsim.mm.tlb import flush_tlb_range
from vmsim.mm.truncate import punch_hole
from vmsim.mm.vma import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DROPPABLE,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_MAYBE_GUARD,
    VM_MAYWRITE,
    VM_MERGEABLE,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_RAND_READ,
    VM_READ,
    VM_SEQ_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WIPEONFORK,
    VM_WRITE,
    Vma,
)

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct

VALID = {
    m.MADV_DOFORK, m.MADV_DONTFORK, m.MADV_NORMAL, m.MADV_SEQUENTIAL, m.MADV_RANDOM,
    m.MADV_REMOVE, m.MADV_WILLNEED, m.MADV_DONTNEED, m.MADV_DONTNEED_LOCKED, m.MADV_FREE,
    m.MADV_COLD, m.MADV_PAGEOUT, m.MADV_POPULATE_READ, m.MADV_POPULATE_WRITE,
    m.MADV_MERGEABLE, m.MADV_UNMERGEABLE, m.MADV_HUGEPAGE, m.MADV_NOHUGEPAGE, m.MADV_COLLAPSE,
    m.MADV_DONTDUMP, m.MADV_DODUMP, m.MADV_WIPEONFORK, m.MADV_KEEPONFORK,
    m.MADV_GUARD_INSTALL, m.MADV_GUARD_REMOVE,
}


def madvise_dontneed_free(mm: MmStruct, vma: Vma, start: int, end: int, behavior: int) -> int:
    """MADV_DONTNEED zaps the range (the next touch faults afresh); MADV_FREE marks
    anonymous pages lazily freeable (clean; reclaim may drop them)."""
    locked_ok = behavior == m.MADV_DONTNEED_LOCKED
    if vma.vm_flags & (VM_PFNMAP | VM_HUGETLB) or (vma.vm_flags & VM_LOCKED and not locked_ok):
        return -m.EINVAL
    if behavior == m.MADV_FREE:
        if vma.vm_file is not None:
            return -m.EINVAL
        madvise_free_pte_range(mm, start, end)
        return 0
    zap_pte_range(mm, vma, start, end)
    return 0


def madvise_free_pte_range(mm: MmStruct, start: int, end: int) -> None:
    """madvise_free_pte_range(): this mm's entries become clean and old; pages turn lazyfree.

    A page whose struct page is dirty is left alone unless this mm is its only
    mapper; lazyfree (no longer swap-backed) means reclaim may drop it.
    """
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    flags = kmem.mem_map.flags_mv
    for addr, entry in present_pages(kmem, mm, start, end):
        if entry & b.special:
            continue
        pfn = mode.entry_pfn(entry)
        if flags[pfn] & PG.dirty:
            if kmem.mem_map.mapcount_mv[pfn] != 1:
                continue
            flags[pfn] &= ~PG.dirty
        if entry & (b.dirty | b.accessed) or kmem.pte_dirty(entry):
            slot = pte_offset(kmem, mm.pgd, addr)
            kmem.pt.write_entry(slot, mode.entry_size, kmem.pte_mkclean(entry) & ~b.accessed)
            flush_tlb_range(mm, addr, addr + kmem.page_size)  # a cached dirty TLB entry must go too
        if flags[pfn] & PG.anon:
            flags[pfn] &= ~(PG.swapbacked | PG.referenced | PG.active)  # lru_lazyfree()


def madvise_cold_or_pageout_pte_range(mm: MmStruct, vma: Vma, start: int, end: int,
                                      pageout: bool) -> None:
    """MADV_COLD / MADV_PAGEOUT: age the pages only this mm maps, and with PAGEOUT reclaim them.

    COLD clears the entries' accessed bits; both clear the pages' referenced
    flags (deactivation).
    PAGEOUT then reclaims what can go without swap: clean page-cache pages
    (regular file or shmem) are unmapped and dropped; anonymous pages and
    dirty shmem pages stay (vmsim has no swap yet), as do dirty file pages.
    """
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    flags = kmem.mem_map.flags_mv
    for addr, entry in present_pages(kmem, mm, start, end):
        if entry & b.special:
            continue
        pfn = mode.entry_pfn(entry)
        if kmem.mem_map.mapcount_mv[pfn] != 1:
            continue  # do not interfere with other mappings of the page
        if not pageout and entry & b.accessed:
            kmem.pt.write_entry(pte_offset(kmem, mm.pgd, addr), mode.entry_size,
                                  entry & ~b.accessed)
            flush_tlb_range(mm, addr, addr + kmem.page_size)
        flags[pfn] &= ~(PG.referenced | PG.active)
        if pageout and not flags[pfn] & PG.anon and vma.vm_file is not None:
            reclaim_file_page(mm, vma, addr, pfn)


def reclaim_file_page(mm: MmStruct, vma: Vma, addr: int, pfn: int) -> None:
    """shrink_folio_list() for one page-cache page that only this mm maps.

    try_to_unmap() takes it out of the page table first (moving a dirty bit
    to the page). A clean page is then freed (__remove_mapping()) - for a
    shmem page too: a clean shmem page was never written, so it holds only
    zeros and the next fault creates it afresh. A dirty page of a regular
    file stays cached: Linux only activates it (only kswapd writes file pages
    out), while vmsim writes it back now, as its write-through page cache
    does at unmap (the known difference page-cache-write-through). A dirty shmem
    page would go to swap (shmem_writeout()); with no swap it is redirtied
    and stays cached. Anonymous pages never get this far without swap.
    """
    kmem = mm.kmem
    assert vma.vm_file is not None
    inode = vma.vm_file.inode
    index = vma.linear_page_index(addr, kmem.page_shift)
    zap_pte_range(mm, vma, addr, addr + kmem.page_size, mark_accessed=False)  # try_to_unmap()
    if inode.pages.get(index) != pfn or kmem.mem_map.mapcount_mv[pfn]:
        return
    if kmem.mem_map.flags_mv[pfn] & PG.dirty:
        if not inode.shmem:
            filemap.writeback_range(kmem, inode, index, index + 1)
        return
    filemap.delete_from_page_cache(kmem, inode, index)


def madvise_willneed(mm: MmStruct, vma: Vma, start: int, end: int) -> int:
    """MADV_WILLNEED: read a file range into the page cache ahead of use.

    For shmem (shared anonymous memory, tmpfs) madvise_willneed() only swaps pages
    back in (shmem_swapin_range); vmsim has no swap, so it does nothing there: it
    must not create pages, which a later fault-around would map."""
    if vma.vm_file is None:
        return 0
    kmem = mm.kmem
    inode = vma.vm_file.inode
    if inode.shmem:
        return 0
    first = vma.linear_page_index(start, kmem.page_shift)
    last = min(vma.linear_page_index(end, kmem.page_shift), filemap.last_index(kmem, inode))
    for index in range(first, last):
        if filemap.filemap_get_page(kmem, inode, index) is None:
            return -m.ENOMEM
    return 0


def madvise_remove(mm: MmStruct, vma: Vma, start: int, end: int) -> int:
    """madvise_remove(): punch a hole in a shared file mapping's file (FALLOC_FL_PUNCH_HOLE).

    The pages leave every mapping and the page cache, and the file reads as
    zeros there; EINVAL for locked or anonymous areas, EACCES unless shared-writable.
    """
    if vma.vm_flags & VM_LOCKED:
        return -m.EINVAL
    if vma.vm_file is None:
        return -m.EINVAL
    if (vma.vm_flags & (VM_SHARED | VM_MAYWRITE)) != (VM_SHARED | VM_MAYWRITE):
        return -m.EACCES
    shift = mm.kmem.page_shift
    punch_hole(mm.kmem, vma.vm_file.inode, vma.linear_page_index(start, shift),
               vma.linear_page_index(end, shift))
    return 0


def is_valid_guard_vma(vma: Vma, allow_locked: bool) -> bool:
    """is_valid_guard_vma(): no guard regions in special or hugetlb areas (nor, to install, locked)."""
    disallowed = VM_SPECIAL | VM_HUGETLB | (0 if allow_locked else VM_LOCKED)
    return not vma.vm_flags & disallowed


def madvise_guard_install(mm: MmStruct, vma: Vma, start: int, end: int) -> int:
    """MADV_GUARD_INSTALL (Linux 6.13): every page of the range becomes a guard marker.

    Pages mapped there are zapped first; the area gets an anon_vma so fork
    copies the markers. Any later access is SIGSEGV (SEGV_MAPERR).
    """
    if not is_valid_guard_vma(vma, allow_locked=False):
        return -m.EINVAL
    vma.vm_flags |= VM_MAYBE_GUARD  # the whole area, without a split (Linux 6.18)
    anon_vma_prepare(mm, vma)
    zap_pte_range(mm, vma, start, end)
    kmem = mm.kmem
    marker = make_pte_marker(kmem.mode, PTE_MARKER_GUARD)
    for addr in range(start, end, kmem.page_size):
        slot = pte_alloc(kmem, mm, addr)
        if slot < 0:
            return -m.ENOMEM
        kmem.pt.write_entry(slot, kmem.mode.entry_size, marker)
    return 0


def madvise_guard_remove(mm: MmStruct, vma: Vma, start: int, end: int) -> int:
    """MADV_GUARD_REMOVE: clear the guard markers of the range (allowed in locked areas)."""
    if not is_valid_guard_vma(vma, allow_locked=True):
        return -m.EINVAL
    kmem = mm.kmem
    es = kmem.mode.entry_size
    for addr, entry in present_pages(kmem, mm, start, end, include_markers=True):
        if is_guard_pte_marker(kmem.mode, entry):
            kmem.pt.write_entry(pte_offset(kmem, mm.pgd, addr), es, 0)
    return 0


def madvise_vma_behavior(mm: MmStruct, vma: Vma, start: int, end: int, behavior: int) -> int:
    """madvise_vma_behavior(): one VMA's part of the range."""
    if behavior in (m.MADV_FREE, m.MADV_DONTNEED, m.MADV_DONTNEED_LOCKED):
        return madvise_dontneed_free(mm, vma, start, end, behavior)
    if behavior == m.MADV_WILLNEED:
        return madvise_willneed(mm, vma, start, end)
    if behavior == m.MADV_REMOVE:
        return madvise_remove(mm, vma, start, end)
    if behavior == m.MADV_GUARD_INSTALL:
        return madvise_guard_install(mm, vma, start, end)
    if behavior == m.MADV_GUARD_REMOVE:
        return madvise_guard_remove(mm, vma, start, end)
    if behavior == m.MADV_COLLAPSE:
        return -m.EINVAL  # no transparent huge pages in vmsim: never THP-eligible
    if behavior in (m.MADV_COLD, m.MADV_PAGEOUT):
        if vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):  # can_madv_lru_vma()
            return -m.EINVAL
        madvise_cold_or_pageout_pte_range(mm, vma, start, end, behavior == m.MADV_PAGEOUT)
        return 0
    flags = vma.vm_flags
    if behavior == m.MADV_NORMAL:
        flags &= ~(VM_RAND_READ | VM_SEQ_READ)
    elif behavior == m.MADV_SEQUENTIAL:
        flags = (flags & ~VM_RAND_READ) | VM_SEQ_READ
    elif behavior == m.MADV_RANDOM:
        flags = (flags & ~VM_SEQ_READ) | VM_RAND_READ
    elif behavior == m.MADV_DONTFORK:
        flags |= VM_DONTCOPY
    elif behavior == m.MADV_DOFORK:
        if flags & VM_IO:
            return -m.EINVAL
        flags &= ~VM_DONTCOPY
    elif behavior == m.MADV_WIPEONFORK:
        if vma.vm_file is not None or flags & VM_SHARED:
            return -m.EINVAL
        flags |= VM_WIPEONFORK
    elif behavior == m.MADV_KEEPONFORK:
        if flags & VM_DROPPABLE:
            return -m.EINVAL
        flags &= ~VM_WIPEONFORK
    elif behavior == m.MADV_DONTDUMP:
        flags |= VM_DONTDUMP
    elif behavior == m.MADV_DODUMP:
        if flags & (VM_SPECIAL | VM_DROPPABLE):
            return -m.EINVAL
        flags &= ~VM_DONTDUMP
    elif behavior == m.MADV_MERGEABLE:
        if flags & (VM_SHARED | VM_SPECIAL | VM_HUGETLB) == 0:
            flags |= VM_MERGEABLE
    elif behavior == m.MADV_UNMERGEABLE:
        flags &= ~VM_MERGEABLE
    elif behavior == m.MADV_HUGEPAGE:
        flags = (flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE
    elif behavior == m.MADV_NOHUGEPAGE:
        flags = (flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE
    if flags == vma.vm_flags:
        return 0
    res = vma_modify(mm, vma, start, end, flags, vma.anon_name)
    if isinstance(res, int):
        return -m.EAGAIN if res == -m.ENOMEM else res  # "kernel resources temporarily unavailable"
    return 0


def madvise_walk_vmas(mm: MmStruct, start: int, end: int, behavior: int,
                      visit: Callable[[MmStruct, Vma, int, int, int], int]) -> int:
    """madvise_walk_vmas(): visit each VMA part; holes give -ENOMEM after the rest is done."""
    unmapped_error = 0
    vma = mm.mm_rb.find_vma(start)
    while True:
        if vma is None:
            return -m.ENOMEM
        if start < vma.vm_start:
            unmapped_error = -m.ENOMEM
            start = vma.vm_start
            if start >= end:
                break
        tmp = min(vma.vm_end, end)
        err = visit(mm, vma, start, tmp, behavior)
        if err:
            return err
        start = tmp
        if start >= end:
            break
        vma = mm.mm_rb.find_vma(start)
    return unmapped_error


def madvise_populate(mm: MmStruct, start: int, end: int, behavior: int) -> int:
    """MADV_POPULATE_(READ|WRITE): fault in like a touch; -ENOMEM hole, -EINVAL rights, -EFAULT signal."""
    write = behavior == m.MADV_POPULATE_WRITE
    while start < end:
        vma = mm.mm_rb.find_vma(start)
        if vma is None or vma.vm_start > start:
            return -m.ENOMEM
        if vma.vm_flags & (VM_IO | VM_PFNMAP):
            return -m.EINVAL
        if not vma.vm_flags & (VM_WRITE if write else VM_READ):
            return -m.EINVAL  # check_vma_flags() refuses, FOLL_MADV_POPULATE reports EINVAL
        tmp = min(vma.vm_end, end)
        result = faultin_range(mm, vma, start, tmp, write, tried=True)
        if result & VmFault.OOM:
            return -m.ENOMEM
        if result.is_error:
            return -m.EFAULT
        start = tmp
    return 0


def do_madvise(mm: MmStruct, start: int, length: int, behavior: int) -> int:
    """do_madvise(): 0 or -EINVAL / -ENOMEM / -EACCES / -EFAULT as Linux returns them."""
    if behavior not in VALID:
        return -m.EINVAL
    if offset_in_page(mm, start):
        return -m.EINVAL
    aligned = page_align(mm, length)
    if length and not aligned:
        return -m.EINVAL
    end = (start + aligned) & U64
    if end < start:
        return -m.EINVAL
    if end == start:
        return 0
    if behavior in (m.MADV_POPULATE_READ, m.MADV_POPULATE_WRITE):
        return madvise_populate(mm, start, end, behavior)
    return madvise_walk_vmas(mm, start, end, behavior, madvise_vma_behavior)
