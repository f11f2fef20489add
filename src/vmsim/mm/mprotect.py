"""mprotect(2) (mm/mprotect.c): change the rights of a range, splitting and merging VMAs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vmsim.mm import mman as m
from vmsim.mm.gup import populate_vma_page_range
from vmsim.mm.hugetlb import hugetlb_change_protection, hugetlb_split_ok
from vmsim.mm.mmap import (
    U64,
    calc_vm_prot_bits,
    offset_in_page,
    page_align,
    vm_stat_account,
    vma_modify,
    vma_set_page_prot,
    vma_wants_writenotify,
)
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pte_tables, pte_view
from vmsim.mm.tlb import flush_tlb_range
from vmsim.mm.vma import (
    VM_ACCOUNT,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_LOCKED,
    VM_NORESERVE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    Vma,
)

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct


def change_protection(mm: MmStruct, vma: Vma, start: int, end: int) -> None:
    """change_pte_range(): pte_modify() every entry of [start, end) to vm_page_prot.

    The frame, accessed/dirty/special/soft-dirty and cache bits stay; the
    rest comes from vm_page_prot, so private entries lose write permission
    and PROT_NONE entries become PROTNONE. Then, as the kernel's
    can_change_pte_writable(), an entry is made writable again at once when
    that saves a pointless fault: an exclusive anonymous page in a writable
    private area, or a dirty page in a write-notify shared area.
    """
    if vma.vm_flags & VM_HUGETLB:
        hugetlb_change_protection(mm, vma, start, end)
        return
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    dtype = np.uint64 if mode.entry_size == 8 else np.uint32
    keep = dtype(mode.pfn_mask | b.accessed | b.dirty | b.special | b.soft_dirty | b.pcd | b.pwt)
    prot = dtype(vma.vm_page_prot)
    rw = dtype(b.write)
    try_writable = (vma_wants_writenotify(vma) if vma.vm_flags & VM_SHARED
                    else bool(vma.vm_flags & VM_WRITE))
    changed = False
    for table, i0, i1, _base in pte_tables(kmem, mm.pgd, start, end):
        part = pte_view(kmem, table)[i0:i1]
        nz = np.flatnonzero(part)
        if not nz.size:
            continue
        old = part[nz]
        present = (old & dtype(b.present | b.protnone)) != 0
        if not present.all():  # markers are not pages: mprotect leaves them alone
            nz, old = nz[present], old[present]
        if kmem.hw_dirty:  # pte_modify() keeps a hardware-dirty state as PTE_DIRTY (ARM64)
            old_sw = np.where(kmem.np_dirty(old), old | dtype(b.dirty), old)
        else:
            old_sw = old
        new = (old_sw & keep) | (prot & ~keep)  # pte_modify(): A/D and the frame come from the old entry
        if try_writable:
            if vma.vm_flags & VM_SHARED:
                upgrade = (old_sw & dtype(b.dirty)) != 0
            else:
                pfns = ((old & dtype(mode.pfn_mask)) >> dtype(mode.pfn_shift)).astype(np.int64)
                upgrade = ((old & dtype(b.special)) == 0) & (
                    (kmem.mem_map.flags[pfns] & PG.anon_exclusive) != 0)
            new = np.where(upgrade & ((new & rw) == 0), new | rw, new)
            if b.rdonly:  # pte_mkwrite() of a dirty entry clears PTE_RDONLY
                made = upgrade | (((new & rw) != 0) & ((new & dtype(b.dirty)) != 0))
                new = np.where(made & ((new & rw) != 0), new & dtype(~b.rdonly & ((1 << 64) - 1)), new)
        if (new != old).any():
            changed = True
            part[nz] = new
    if changed:
        flush_tlb_range(mm, start, end)


def mprotect_fixup(mm: MmStruct, vma: Vma, start: int, end: int, newflags: int) -> Vma | int:
    """mprotect_fixup(): apply newflags to [start, end) of one VMA; returns the VMA covering it."""
    shift = mm.kmem.page_shift
    oldflags = vma.vm_flags
    if newflags == oldflags:
        return vma
    if newflags & VM_WRITE:
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            newflags |= VM_ACCOUNT
    elif oldflags & VM_ACCOUNT and vma.vm_file is None and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT
    res = vma_modify(mm, vma, start, end, newflags, vma.anon_name)
    if isinstance(res, int):
        return res
    npages = (end - start) >> shift
    vm_stat_account(mm, oldflags, -npages)
    vm_stat_account(mm, newflags, npages)
    vma_set_page_prot(mm, res)
    change_protection(mm, res, start, end)
    # Private locked memory that becomes writable is populated (COW broken) at once.
    if (oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED)) == VM_LOCKED and newflags & VM_WRITE:
        populate_vma_page_range(mm, res, start, end)
    return res


def do_mprotect(mm: MmStruct, start: int, length: int, prot: int) -> int:
    """do_mprotect_pkey(): 0 or -EINVAL / -ENOMEM / -EACCES in Linux's order of checks.

    A hole inside the range stops the walk with -ENOMEM after the VMAs
    before it were changed, as on Linux.
    """
    grows = prot & (m.PROT_GROWSDOWN | m.PROT_GROWSUP)
    prot &= ~(m.PROT_GROWSDOWN | m.PROT_GROWSUP)
    if grows == (m.PROT_GROWSDOWN | m.PROT_GROWSUP):
        return -m.EINVAL
    if offset_in_page(mm, start):
        return -m.EINVAL
    if not length:
        return 0
    length = page_align(mm, length)
    end = (start + length) & U64
    if end <= start:
        return -m.ENOMEM
    if prot & ~(m.PROT_READ | m.PROT_WRITE | m.PROT_EXEC | m.PROT_SEM):
        return -m.EINVAL
    tree = mm.mm_rb
    vma = tree.find_vma_intersection(start, end)
    if vma is None:
        return -m.ENOMEM
    if grows & m.PROT_GROWSDOWN:
        if vma.vm_start >= end:
            return -m.ENOMEM
        start = vma.vm_start
        if not vma.vm_flags & VM_GROWSDOWN:
            return -m.EINVAL
    else:
        if vma.vm_start > start:
            return -m.ENOMEM
        if grows & m.PROT_GROWSUP:
            return -m.EINVAL  # no VM_GROWSUP areas on x86
    newbits = calc_vm_prot_bits(prot)
    nstart = start
    expect = vma.vm_start
    while nstart < end:
        vma = tree.find_vma(nstart)
        if vma is None or vma.vm_start >= end:
            break
        if vma.vm_start != expect and vma.vm_start > nstart:
            return -m.ENOMEM
        newflags = newbits | (vma.vm_flags & ~(VM_READ | VM_WRITE | VM_EXEC))
        if (newflags & ~(newflags >> 4)) & (VM_READ | VM_WRITE | VM_EXEC):
            return -m.EACCES  # a right the mapping may never have (VM_MAY* shifted into place)
        tmp = min(vma.vm_end, end)
        if vma.vm_flags & VM_HUGETLB and newflags != vma.vm_flags and (
                (vma.vm_start < nstart and not hugetlb_split_ok(vma, nstart))
                or (tmp < vma.vm_end and not hugetlb_split_ok(vma, tmp))):
            return -m.EINVAL  # hugetlb_vm_op_split()
        res = mprotect_fixup(mm, vma, nstart, tmp, newflags)
        if isinstance(res, int):
            return res
        nstart = expect = tmp
    return -m.ENOMEM if nstart < end else 0
