"""Shrinking a file under its mappings (mm/truncate.c, unmap_mapping_range in mm/memory.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm import filemap
from vmsim.mm.memory import zap_pte_range

if TYPE_CHECKING:
    from vmsim.mm.filemap import Inode
    from vmsim.mm.kmem import Kmem


def unmap_mapping_range(kmem: Kmem, inode: Inode, first_index: int,
                        end_index: int | None = None) -> None:
    """Zap, in every VMA mapping the inode, the pages of file indexes [first, end).

    Private COW copies of those pages go too (even_cows), as for truncate.
    """
    shift = kmem.page_shift
    for vma in list(inode.i_mmap):
        vma_first = vma.vm_pgoff
        vma_last = vma.vm_pgoff + (vma.size >> shift)
        lo = max(first_index, vma_first)
        hi = vma_last if end_index is None else min(end_index, vma_last)
        if lo >= hi or vma.vm_mm is None:
            continue
        zap_pte_range(vma.vm_mm, vma, vma.vm_start + ((lo - vma_first) << shift),
                      vma.vm_start + ((hi - vma_first) << shift))


def truncate_setsize(kmem: Kmem, inode: Inode, size: int) -> None:
    """truncate_setsize() + truncate_pagecache(): new i_size; pages past it leave every
    mapping and the page cache; the tail of a partial last page is zeroed."""
    old = inode.i_size
    inode.i_size = size
    if inode.backing is not None:
        inode.backing.truncate(size)
    if size >= old:
        return
    ps = kmem.page_size
    first = (size + ps - 1) // ps
    unmap_mapping_range(kmem, inode, first)
    for index in [i for i in inode.pages if i >= first]:
        filemap.delete_from_page_cache(kmem, inode, index)
    if size % ps and (size // ps) in inode.pages:
        pfn = inode.pages[size // ps]
        off = size % ps
        kmem.phys.write(pfn * ps + off, bytes(ps - off))


def punch_hole(kmem: Kmem, inode: Inode, first: int, end: int) -> None:
    """fallocate(FALLOC_FL_PUNCH_HOLE) on whole pages [first, end): unmapped, uncached, zero."""
    unmap_mapping_range(kmem, inode, first, end)
    for index in [i for i in inode.pages if first <= i < end]:
        filemap.delete_from_page_cache(kmem, inode, index)
    if inode.backing is not None:
        ps = kmem.page_size
        lo, hi = first * ps, min(end * ps, inode.i_size)
        if hi > lo:
            inode.backing.pwrite(lo, bytes(hi - lo))
