"""msync(2) and mincore(2) (mm/msync.c, mm/mincore.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm import filemap
from vmsim.mm import mman as m
from vmsim.mm.memory import present_pages
from vmsim.mm.mmap import U64, offset_in_page, page_align
from vmsim.mm.page import PG
from vmsim.mm.vma import VM_LOCKED, VM_SHARED

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct


def sync_shared_dirty(mm: MmStruct, start: int, end: int) -> None:
    """Move hardware dirty bits of shared file entries in [start, end) to their pages."""
    kmem = mm.kmem
    b = kmem.mode.bits
    for vma in mm.mm_rb.range(start, end):
        if vma.vm_file is None or not vma.vm_flags & VM_SHARED:
            continue
        for _addr, entry in present_pages(kmem, mm, max(start, vma.vm_start), min(end, vma.vm_end)):
            if kmem.pte_dirty(entry) and not entry & b.special:
                filemap.set_page_dirty(kmem, kmem.mode.entry_pfn(entry))


def do_msync(mm: MmStruct, start: int, length: int, flags: int) -> int:
    """msync(2): MS_SYNC writes the dirty pages of shared file mappings back to the file."""
    if flags & ~(m.MS_ASYNC | m.MS_INVALIDATE | m.MS_SYNC):
        return -m.EINVAL
    if offset_in_page(mm, start):
        return -m.EINVAL
    if flags & m.MS_ASYNC and flags & m.MS_SYNC:
        return -m.EINVAL
    length = page_align(mm, length)
    end = (start + length) & U64
    if end < start:
        return -m.ENOMEM
    if end == start:
        return 0
    shift = mm.kmem.page_shift
    unmapped_error = 0
    vma = mm.mm_rb.find_vma(start)
    while True:
        if vma is None:
            return -m.ENOMEM
        if start < vma.vm_start:
            if flags == m.MS_ASYNC:
                return -m.ENOMEM
            start = vma.vm_start
            if start >= end:
                return -m.ENOMEM
            unmapped_error = -m.ENOMEM
        if flags & m.MS_INVALIDATE and vma.vm_flags & VM_LOCKED:
            return -m.EBUSY
        seg_end = min(end, vma.vm_end)
        if flags & m.MS_SYNC and vma.vm_file is not None and vma.vm_flags & VM_SHARED:
            sync_shared_dirty(mm, start, seg_end)
            first = vma.linear_page_index(start, shift)
            filemap.writeback_range(mm.kmem, vma.vm_file.inode, first,
                                    first + ((seg_end - start) >> shift))
        start = vma.vm_end
        if start >= end:
            return unmapped_error
        vma = mm.mm_rb.find_vma(start)


def do_mincore(mm: MmStruct, start: int, length: int) -> bytes | int:
    """mincore(2): one byte per page, 1 if resident. Anonymous holes in a VMA are 0;
    file pages are resident if they are in the page cache and uptodate (mincore_page())."""
    if offset_in_page(mm, start):
        return -m.EINVAL
    if start + length > mm.task_size or length > mm.task_size:
        return -m.ENOMEM
    shift = mm.kmem.page_shift
    pages = (length + mm.kmem.page_size - 1) >> shift
    end = start + (pages << shift)
    out = bytearray(pages)
    addr = start
    while addr < end:
        vma = mm.mm_rb.find_vma(addr)
        if vma is None or vma.vm_start > addr:
            return -m.ENOMEM
        seg_end = min(end, vma.vm_end)
        if vma.vm_file is not None:
            inode = vma.vm_file.inode
            flags = mm.kmem.mem_map.flags_mv
            for a in range(addr, seg_end, mm.kmem.page_size):
                pfn = inode.pages.get(vma.linear_page_index(a, shift))
                if pfn is not None and flags[pfn] & PG.uptodate:
                    out[(a - start) >> shift] = 1
        for a, _entry in present_pages(mm.kmem, mm, addr, seg_end):
            out[(a - start) >> shift] = 1
        addr = seg_end
    return bytes(out)
