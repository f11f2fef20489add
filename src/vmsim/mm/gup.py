"""Faulting pages in on behalf of the kernel (mm/gup.c): populate and user copies.

`populate_vma_page_range` is what MAP_POPULATE, mlock and
MADV_POPULATE_* use; it faults each page as the CPU would have, so the
counters and fault kinds are the same as for a touching program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.arch.paging import Access
from vmsim.mm import filemap
from vmsim.mm.fault import VmFault, handle_mm_fault
from vmsim.mm.hugetlb import hstate_vma
from vmsim.mm.page import PG, folio_mark_accessed
from vmsim.mm.pgtable import pte_offset
from vmsim.mm.vma import (
    VM_EXEC,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct
    from vmsim.mm.vma import Vma


def follow_page(mm: MmStruct, vma: Vma, addr: int, write: bool) -> bool:
    """follow_page_pte() with FOLL_TOUCH: is the page mapped with the needed rights?

    If so it is touched as GUP touches it: marked accessed (mark_page_accessed(),
    which activates a page that was already referenced) and, for a write,
    dirtied if neither the entry nor the page is dirty yet.
    """
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    slot = pte_offset(kmem, mm.pgd, addr)
    if slot < 0:
        return False
    entry = kmem.pt.read_entry(slot, mode.entry_size)
    if not entry & b.present or (write and not entry & b.write):
        return False
    if not entry & b.special:
        pfn = mode.entry_pfn(entry)
        flags = kmem.mem_map.flags_mv
        if write and not kmem.pte_dirty(entry) and not flags[pfn] & PG.dirty:
            if flags[pfn] & PG.anon:
                flags[pfn] |= PG.dirty
            else:
                filemap.set_page_dirty(kmem, pfn)
        folio_mark_accessed(flags, pfn, unevictable=bool(vma.vm_flags & VM_LOCKED))
    return True


def faultin_range(mm: MmStruct, vma: Vma, start: int, end: int, write: bool,
                  tried: bool) -> VmFault:
    """__get_user_pages() over one VMA: fault every page not already suitable, then touch it.

    `tried` says whether a fault that had to wait for I/O is retried with
    FAULT_FLAG_TRIED (MADV_POPULATE_*: it counts as major) or simply faulted
    again (__mm_populate: the second fault finds the page cached, minor).
    """
    ps = mm.kmem.page_size
    access = int(Access.WRITE if write else Access.READ)
    if vma.vm_flags & VM_HUGETLB:  # hugetlb_follow_page_mask(): one fault per huge page
        hsize = hstate_vma(vma).size
        for addr in range(start & ~(hsize - 1), end, hsize):
            result, _ = handle_mm_fault(mm, vma, max(addr, start), access, count_major=tried)
            if result.is_error:
                return result
        return VmFault.HANDLED
    for addr in range(start, end, ps):
        if follow_page(mm, vma, addr, write):
            continue
        result, _ = handle_mm_fault(mm, vma, addr, access, count_major=tried)
        if result.is_error:
            return result
        follow_page(mm, vma, addr, write)
    return VmFault.HANDLED


def populate_vma_page_range(mm: MmStruct, vma: Vma, start: int, end: int) -> int:
    """populate_vma_page_range(): fault in [start, end) of one VMA; 0 or -errno.

    Private writable areas are written (COW broken), everything else read,
    as the kernel decides; VM_LOCKONFAULT areas are left alone. An
    inaccessible (PROT_NONE) area cannot be populated: -EFAULT, as GUP's
    check_vma_flags() gives; an OOM is -ENOMEM, a SIGBUS/SIGSEGV -EFAULT.
    """
    flags = vma.vm_flags
    if flags & VM_LOCKONFAULT:
        return 0
    if not flags & (VM_READ | VM_WRITE | VM_EXEC):
        return -14
    write = (flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
    result = faultin_range(mm, vma, start, end, write, tried=False)
    if result and result & VmFault.OOM:
        return -12
    if result.is_error:
        return -14
    return 0


def mm_populate(mm: MmStruct, start: int, end: int, ignore_errors: bool = True) -> int:
    """__mm_populate(): populate every VMA in [start, end) except VM_IO/VM_PFNMAP ones.

    mmap(MAP_POPULATE/MAP_LOCKED), brk and mlockall ignore errors; mlock does not.
    """
    for vma in mm.mm_rb.range(start, end):
        if vma.vm_flags & (VM_IO | VM_PFNMAP):
            continue
        ret = populate_vma_page_range(mm, vma, max(start, vma.vm_start), min(end, vma.vm_end))
        if ret < 0 and not ignore_errors:
            return ret
    return 0
