"""Range operations on page tables (mm/memory.c): zap, copy at fork, populate.

These walk only the tables that exist (`pgtable.pte_tables`) and treat a
table's 512 entries as one numpy array, so their cost follows the page
tables, not the size of the address range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vmsim.mm import filemap
from vmsim.mm.hugetlb import copy_hugetlb_page_range
from vmsim.mm.mm_struct import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES
from vmsim.mm.page import PG, folio_mark_accessed
from vmsim.mm.pgtable import pte_alloc, pte_tables, pte_view
from vmsim.mm.swapops import is_guard_pte_marker
from vmsim.mm.tlb import flush_tlb_range
from vmsim.mm.vma import (
    VM_HUGETLB,
    VM_LOCKED,
    VM_MAYBE_GUARD,
    VM_MAYWRITE,
    VM_RAND_READ,
    VM_SEQ_READ,
    VM_SHARED,
)

if TYPE_CHECKING:
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.mm_struct import MmStruct
    from vmsim.mm.page import MemMap
    from vmsim.mm.vma import Vma


def zap_pte_range(mm: MmStruct, vma: Vma, start: int, end: int,
                  drop_markers: bool = False, mark_accessed: bool = True) -> int:
    """zap_pte_range(): clear every entry in [start, end) of vma; returns pages unmapped.

    Drops the map count and reference of each page (freeing pages with their
    last reference), moves a dirty bit from a shared file entry to its page,
    marks a page-cache page accessed if its entry was young (not an anonymous
    page, and not in an area whose advice says it has no recency; see
    vma_has_recency()), and keeps the RSS counters and the
    machine's mapped-page gauges right. Works a whole table at a time.
    Guard markers survive unless `drop_markers` (ZAP_FLAG_DROP_MARKER: munmap, exit).
    Reclaim's try_to_unmap() passes `mark_accessed=False`: it moves the dirty
    bit but not the young one.
    """
    kmem = mm.kmem
    mm.update_hiwater_rss()
    mode = kmem.mode
    b = mode.bits
    es = mode.entry_size
    dtype = np.uint64 if es == 8 else np.uint32
    mem_map = kmem.mem_map
    shared_file = vma.vm_file is not None and bool(vma.vm_flags & VM_SHARED)
    recency = mark_accessed and vma_has_recency(vma)
    unevictable = bool(vma.vm_flags & VM_LOCKED)
    kept = dtype(b.present | b.protnone)
    special, dirty, accessed = dtype(b.special), dtype(b.dirty), dtype(b.accessed)
    pfn_mask, pfn_shift = dtype(mode.pfn_mask), dtype(mode.pfn_shift)
    zapped = 0
    cleared = False
    for table, i0, i1, _base in pte_tables(kmem, mm.pgd, start, end):
        part = pte_view(kmem, table)[i0:i1]
        nz = np.flatnonzero(part)
        if not nz.size:
            continue
        entries = part[nz]
        present = (entries & kept) != 0
        if not present.all():
            for entry in entries[~present].tolist():
                if not is_guard_pte_marker(mode, entry):
                    raise AssertionError(f"zap_pte_range: swap entry {entry:#x} (no swap yet)")
            if not drop_markers:
                nz, entries = nz[present], entries[present]
        part[nz] = 0
        cleared = cleared or bool(nz.size)
        entries = entries[(entries & kept) != 0]
        real = entries[(entries & special) == 0]
        if not real.size:
            continue
        pfns = ((real & pfn_mask) >> pfn_shift).astype(np.int64)
        if shared_file:
            is_dirty = kmem.np_dirty(real) if kmem.hw_dirty else (real & dirty) != 0
            for pfn in pfns[is_dirty].tolist():
                filemap.set_page_dirty(kmem, pfn)
        flags = mem_map.flags[pfns]
        anon = (flags & np.uint32(PG.anon)) != 0
        if recency:
            for pfn in pfns[((real & accessed) != 0) & ~anon].tolist():
                folio_mark_accessed(mem_map.flags_mv, pfn, unevictable)
        shmem = ~anon & ((flags & np.uint32(PG.swapbacked)) != 0)
        n_anon, n_shmem = int(np.count_nonzero(anon)), int(np.count_nonzero(shmem))
        mm.rss_stat[MM_ANONPAGES] -= n_anon
        mm.rss_stat[MM_SHMEMPAGES] -= n_shmem
        mm.rss_stat[MM_FILEPAGES] -= len(pfns) - n_anon - n_shmem
        uniq = _add_counts(mem_map, pfns, -1)
        if (mem_map.mapcount[uniq] < 0).any() or (mem_map.refcount[uniq] < 0).any():
            raise AssertionError("zap_pte_range: map or reference count underflow")
        unmapped = uniq[mem_map.mapcount[uniq] == 0]
        now_anon = int(np.count_nonzero(mem_map.flags[unmapped] & np.uint32(PG.anon)))
        kmem.vm_stat["nr_anon_pages"] -= now_anon
        kmem.vm_stat["nr_mapped"] -= len(unmapped) - now_anon
        for pfn in uniq[mem_map.refcount[uniq] == 0].tolist():
            kmem.free_frame(pfn)
        zapped += len(pfns)
    if cleared:
        flush_tlb_range(mm, start, end)
    return zapped


def vma_has_recency(vma: Vma) -> bool:
    """vma_has_recency() (include/linux/mm_inline.h): do accesses here count for reclaim?

    Not under MADV_SEQUENTIAL or MADV_RANDOM advice (vmsim has no
    POSIX_FADV_NOREUSE, the other case).
    """
    return not vma.vm_flags & (VM_SEQ_READ | VM_RAND_READ)


def _add_counts(mem_map: MemMap, pfns: np.ndarray, delta: int) -> np.ndarray:
    """Add delta to the map and reference counts of the frames of one VMA's entries.

    Within one VMA a frame is mapped at most once (an anonymous page has one
    address per mm, a file page one per VMA), so fancy indexing is exact;
    machine.check() verifies the resulting counts.
    """
    mem_map.mapcount[pfns] += delta
    mem_map.refcount[pfns] += delta
    return pfns


def is_cow_mapping(vm_flags: int) -> bool:
    """is_cow_mapping(): private and may become writable."""
    return (vm_flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


def copy_page_range(dst_mm: MmStruct, src_mm: MmStruct, dst_vma: Vma, src_vma: Vma) -> bool:
    """copy_page_range(): give the child the parent's entries for one VMA.

    A private writable entry is write-protected in both (copy-on-write);
    child entries are old, and clean for shared mappings; each page gains a
    reference and a mapping. Areas with no anonymous pages are skipped as
    the kernel does (vma_needs_copy): the child refaults them from the page
    cache. Works table by table on numpy arrays. False on OOM.
    """
    if src_vma.vm_flags & VM_HUGETLB:
        return copy_hugetlb_page_range(dst_mm, src_mm, dst_vma, src_vma)
    if src_vma.anon_vma is None and not src_vma.vm_flags & VM_MAYBE_GUARD:
        return True  # vma_needs_copy(): the child can refault everything
    kmem = src_mm.kmem
    mode = kmem.mode
    b = mode.bits
    es = mode.entry_size
    cow = is_cow_mapping(src_vma.vm_flags)
    shared = bool(src_vma.vm_flags & VM_SHARED)
    dtype = np.uint64 if es == 8 else np.uint32
    not_write = dtype(~b.write & ((1 << (8 * es)) - 1))
    not_young = dtype(~(b.accessed | (b.dirty if shared else 0)) & ((1 << (8 * es)) - 1))
    special = dtype(b.special)
    pfn_mask = dtype(mode.pfn_mask)
    pfn_shift = dtype(mode.pfn_shift)
    mem_map = kmem.mem_map
    wrprotected = False
    for table, i0, i1, base in pte_tables(kmem, src_mm.pgd, src_vma.vm_start, src_vma.vm_end):
        src = pte_view(kmem, table)
        part = src[i0:i1]
        nz = np.flatnonzero(part)
        if not nz.size:
            continue
        first_va = base + int(i0 + nz[0]) * mode.page_size
        dst_entry = pte_alloc(kmem, dst_mm, first_va)
        if dst_entry < 0:
            return False
        dst_table = dst_entry - (((first_va >> mode.page_shift) & (mode.ptrs_per[-1] - 1)) * es)
        entries = part[nz]
        present = (entries & dtype(b.present | b.protnone)) != 0
        if not present.all():  # guard markers are copied as they are (copy_nonpresent_pte)
            pte_view(kmem, dst_table)[i0 + nz[~present]] = entries[~present]
            nz, entries = nz[present], entries[present]
            if not nz.size:
                continue
        if cow:
            if (entries & dtype(b.write)).any():
                wrprotected = True
            # ptep_set_wrprotect(); a format with a read-only bit sets it (kmem.np_wrprotect)
            entries = kmem.np_wrprotect(entries) if b.rdonly else entries & not_write
            part[nz] = entries
        child = entries & not_young
        if shared and b.rdonly:  # pte_mkclean() of a format with a read-only bit sets it
            child = child | dtype(b.rdonly)
        pte_view(kmem, dst_table)[i0 + nz] = child
        real = entries[(entries & special) == 0]
        pfns = ((real & pfn_mask) >> pfn_shift).astype(np.int64)
        _add_counts(mem_map, pfns, 1)
        flags = mem_map.flags[pfns]
        if cow:  # a page mapped by two mms is no longer exclusive to either
            mem_map.flags[pfns] = flags & np.uint32(~PG.anon_exclusive & 0xFFFFFFFF)
        anon = int(np.count_nonzero(flags & PG.anon))
        shmem = int(np.count_nonzero((flags & (PG.anon | PG.swapbacked)) == PG.swapbacked))
        dst_mm.rss_stat[MM_ANONPAGES] += anon
        dst_mm.rss_stat[MM_SHMEMPAGES] += shmem
        dst_mm.rss_stat[MM_FILEPAGES] += len(pfns) - anon - shmem
    if wrprotected:
        flush_tlb_range(src_mm, src_vma.vm_start, src_vma.vm_end)
    return True


def present_pages(kmem: Kmem, mm: MmStruct, start: int, end: int,
                  include_markers: bool = False) -> list[tuple[int, int]]:
    """(address, entry) of every present entry in [start, end), in order.

    Present means pte_present() (PROTNONE included); `include_markers` adds
    the non-present marker entries too (for moving page tables).
    """
    mode = kmem.mode
    kept = mode.bits.present | mode.bits.protnone
    out: list[tuple[int, int]] = []
    for table, i0, i1, base in pte_tables(kmem, mm.pgd, start, end):
        part = pte_view(kmem, table)[i0:i1]
        for i in np.flatnonzero(part).tolist():
            entry = int(part[i])
            if include_markers or entry & kept:
                out.append((base + (i0 + i) * mode.page_size, entry))
    return out
