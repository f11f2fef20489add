"""Shrinking a file under its mappings (mm/truncate.c, unmap_mapping_range in mm/memory.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm import filemap
from vmsim.mm.memory import zap_pte_range
from vmsim.mm.page import PG, folio_mark_accessed

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
    """A size change as a disk file system makes it (ext4_setattr() with 4 KiB blocks).

    Growing zeroes the tail of the old EOF block through the page cache
    (block_truncate_page()); then i_size changes. Shrinking removes the
    pages past the new size from every mapping and the page cache and zeroes
    the tail of a cached partial last page (truncate_pagecache()); then, as
    for an unchanged size, the tail of the new EOF block is zeroed through
    the page cache. Shmem has no blocks: only truncate_pagecache().
    """
    old = inode.i_size
    ps = kmem.page_size
    if size > old and old % ps and not inode.shmem:
        block_truncate_page(kmem, inode, old)
    inode.i_size = size
    if inode.backing is not None:
        inode.backing.truncate(size)
    if size > old:
        return
    if size < old:
        first = (size + ps - 1) // ps
        unmap_mapping_range(kmem, inode, first)
        for index in [i for i in inode.pages if i >= first]:
            filemap.delete_from_page_cache(kmem, inode, index)
        if size % ps and (size // ps) in inode.pages:
            pfn = inode.pages[size // ps]
            off = size % ps
            kmem.phys.write(pfn * ps + off, bytes(ps - off))
    if size % ps and not inode.shmem:
        block_truncate_page(kmem, inode, size)


def block_truncate_page(kmem: Kmem, inode: Inode, offset: int) -> None:
    """block_truncate_page() (fs/buffer.c; ext4_block_truncate_page()): zero from
    `offset` to the end of its block, through the page cache.

    The page is looked up as a write does (FGP_ACCESSED), so it is marked
    accessed. A page that was not cached is added but only its block buffer
    is read, not the page: it stays !uptodate - mincore() does not count it,
    fault-around skips it, and the next fault or read() reads it in as a
    minor fault. Linux leaves the page dirty; vmsim's write-through page
    cache has the zeros on disk already (the backing file's truncate).
    """
    ps = kmem.page_size
    index, off = divmod(offset, ps)
    flags = kmem.mem_map.flags_mv
    pfn = inode.pages.get(index)
    if pfn is None:
        pfn = kmem.alloc_page(zero=True)
        if pfn is None:
            return
        filemap.add_to_page_cache(kmem, inode, index, pfn)
        flags[pfn] = (flags[pfn] & ~PG.uptodate) | PG.referenced
        return
    folio_mark_accessed(flags, pfn)
    if flags[pfn] & PG.uptodate:
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
