"""Shrinking a file under its mappings (mm/truncate.c, unmap_mapping_range in mm/memory.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm import filemap
from vmsim.mm.memory import zap_pte_range

if TYPE_CHECKING:
    from vmsim.mm.filemap import Inode
    from vmsim.mm.kmem import Kmem


def unmap_mapping_range(kmem: Kmem, inode: Inode, first_index: int) -> None:
    """Zap, in every VMA mapping the inode, the pages from file index first_index on.

    Private COW copies of those pages go too (even_cows), as for truncate.
    """
    shift = kmem.page_shift
    for vma in list(inode.i_mmap):
        vma_first = vma.vm_pgoff
        vma_last = vma.vm_pgoff + (vma.size >> shift)
        if vma_last <= first_index:
            continue
        start = vma.vm_start + (max(first_index - vma_first, 0) << shift)
        if vma.vm_mm is not None:
            zap_pte_range(vma.vm_mm, vma, start, vma.vm_end)


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
