"""Reverse-map bookkeeping of mapped pages (mm/rmap.c).

These keep a page's map count and the machine's NR_ANON_MAPPED /
NR_FILE_MAPPED gauges right as entries come and go; the mm's RSS counters
are kept by the callers, which know the mm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm.mm_struct import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pte_offset
from vmsim.mm.tlb import flush_tlb_range
from vmsim.mm.vma import VM_ACCESS_FLAGS, VM_SHARED, VM_SOFTDIRTY, AnonVma

if TYPE_CHECKING:
    from vmsim.mm.filemap import Inode
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.mm_struct import MmStruct
    from vmsim.mm.vma import Vma


def _page_shift(vma: Vma) -> int:
    mm = vma.vm_mm
    return mm.kmem.page_shift if mm is not None else 12


def anon_vma_compatible(a: Vma, b: Vma) -> bool:
    """anon_vma_compatible(): adjacent, same flags but for access bits, contiguous offsets."""
    return (a.vm_end == b.vm_start
            and not (a.vm_flags ^ b.vm_flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY)
            and a.vm_file is b.vm_file
            and b.vm_pgoff == a.vm_pgoff + ((b.vm_start - a.vm_start) >> _page_shift(a)))


def find_mergeable_anon_vma(mm: MmStruct, vma: Vma) -> AnonVma | None:
    """find_mergeable_anon_vma(): a neighbour's anon_vma this VMA may share."""
    nxt = mm.mm_rb.next(vma)
    if nxt is not None and anon_vma_compatible(vma, nxt) and nxt.anon_vma is not None \
            and len(nxt.anon_vma_chain) == 1:
        return nxt.anon_vma
    prev = mm.mm_rb.prev(vma)
    if prev is not None and anon_vma_compatible(prev, vma) and prev.anon_vma is not None \
            and len(prev.anon_vma_chain) == 1:
        return prev.anon_vma
    return None


def anon_vma_prepare(mm: MmStruct, vma: Vma) -> None:
    """anon_vma_prepare(): give the VMA an anon_vma before its first anonymous page.

    Like the kernel, it first tries to share an adjacent compatible VMA's
    anon_vma, so the two can still merge later.
    """
    if vma.anon_vma is None:
        anon = find_mergeable_anon_vma(mm, vma) or AnonVma()
        anon.refcount += 1
        vma.anon_vma = anon
        vma.anon_vma_chain.append(anon)


def page_add_new_anon_rmap(kmem: Kmem, pfn: int, vma: Vma, addr: int) -> None:
    """folio_add_new_anon_rmap(): a fresh anonymous page gets its first mapping."""
    mm = kmem.mem_map
    mm.flags_mv[pfn] |= PG.anon | PG.swapbacked | PG.lru | PG.anon_exclusive
    mm.mapping[pfn] = vma.anon_vma
    mm.index_mv[pfn] = vma.linear_page_index(addr, kmem.page_shift)
    mm.mapcount_mv[pfn] = 1
    kmem.vm_stat["nr_anon_pages"] += 1


def page_add_rmap(kmem: Kmem, pfn: int) -> None:
    """page_add_{anon,file}_rmap(): one more mapping of an existing page."""
    mm = kmem.mem_map
    mm.mapcount_mv[pfn] += 1
    if mm.mapcount_mv[pfn] == 1 and not mm.flags_mv[pfn] & PG.anon:
        kmem.vm_stat["nr_mapped"] += 1


def page_remove_rmap(kmem: Kmem, pfn: int) -> None:
    """folio_remove_rmap_pte(): one mapping fewer; the last one updates the gauges."""
    mm = kmem.mem_map
    count = int(mm.mapcount_mv[pfn]) - 1
    if count < 0:
        raise AssertionError(f"page_remove_rmap: pfn {pfn:#x} mapcount underflow")
    mm.mapcount_mv[pfn] = count
    if count == 0:
        if mm.flags_mv[pfn] & PG.anon:
            kmem.vm_stat["nr_anon_pages"] -= 1
        else:
            kmem.vm_stat["nr_mapped"] -= 1


def page_mkclean(kmem: Kmem, inode: Inode, index: int, pfn: int) -> None:
    """page_mkclean(): write-protect and clean every shared entry mapping a file page.

    Called when the page is written back, so that the next write through a
    mapping faults again and re-dirties the page (write-notify).
    """
    mode = kmem.mode
    b = mode.bits
    shift = kmem.page_shift
    for vma in inode.i_mmap:
        if not vma.vm_flags & VM_SHARED or vma.vm_mm is None:
            continue
        if not vma.vm_pgoff <= index < vma.vm_pgoff + (vma.size >> shift):
            continue
        addr = vma.vm_start + ((index - vma.vm_pgoff) << shift)
        slot = pte_offset(kmem, vma.vm_mm.pgd, addr)
        if slot < 0:
            continue
        entry = kmem.pt.read_entry(slot, mode.entry_size)
        if not entry & b.present or mode.entry_pfn(entry) != pfn or not entry & (b.dirty | b.write):
            continue
        kmem.pt.write_entry(slot, mode.entry_size, kmem.pte_mkclean(entry, write=False))
        flush_tlb_range(vma.vm_mm, addr, addr + kmem.page_size)


def mm_counter(kmem: Kmem, pfn: int) -> int:
    """mm_counter(): which RSS counter a page is charged to."""
    flags = kmem.mem_map.flags_mv[pfn]
    if flags & PG.anon:
        return MM_ANONPAGES
    if flags & PG.swapbacked:
        return MM_SHMEMPAGES
    return MM_FILEPAGES
