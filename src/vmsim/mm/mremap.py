"""mremap(2) (mm/mremap.c): shrink, grow in place, or move a mapping with its pages.

A move carries the page-table entries themselves to the new address
(move_page_tables): no page is copied, and the pages keep their index, so
the new VMA keeps the old file offset / anonymous pgoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm import mman as m
from vmsim.mm.gup import mm_populate
from vmsim.mm.memory import present_pages
from vmsim.mm.mmap import (
    anon_vmas_compatible,
    do_munmap,
    do_munmap_range,
    get_unmapped_area,
    is_mergeable_anon_vma,
    is_mergeable_vma,
    may_expand_vm,
    mlock_future_ok,
    offset_in_page,
    page_align,
    remove_vma,
    vm_stat_account,
    vma_link,
    vma_merge_new_range,
    vma_set_page_prot,
    vma_set_range,
)
from vmsim.mm.pgtable import pte_alloc, pte_offset
from vmsim.mm.tlb import flush_tlb_range
from vmsim.mm.vma import (
    VM_DONTEXPAND,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_SHARED,
    Vma,
)

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct


def vma_lookup(mm: MmStruct, addr: int) -> Vma | None:
    vma = mm.mm_rb.find_vma(addr)
    return vma if vma is not None and vma.vm_start <= addr else None


def vma_to_resize(mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int) -> Vma | int:
    """vma_to_resize(): the VMA at addr if it may be resized/moved, else -errno."""
    vma = vma_lookup(mm, addr)
    if vma is None:
        return -m.EFAULT
    if not old_len and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        return -m.EINVAL
    if flags & m.MREMAP_DONTUNMAP and vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        return -m.EINVAL
    if old_len > vma.vm_end - addr:
        return -m.EFAULT
    if new_len == old_len:
        return vma
    if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        return -m.EFAULT
    if not mlock_future_ok(mm, vma.vm_flags, new_len - old_len):
        return -m.EAGAIN
    if not may_expand_vm(mm, vma.vm_flags, (new_len - old_len) >> mm.kmem.page_shift):
        return -m.ENOMEM
    return vma


def move_page_tables(mm: MmStruct, old_addr: int, new_addr: int, length: int) -> bool:
    """move_page_tables(): carry every entry of [old, old+len) to new_addr; False on OOM."""
    kmem = mm.kmem
    es = kmem.mode.entry_size
    moved = present_pages(kmem, mm, old_addr, old_addr + length, include_markers=True)
    for addr, entry in moved:
        dst = pte_alloc(kmem, mm, addr - old_addr + new_addr)
        if dst < 0:
            return False
        src = pte_offset(kmem, mm.pgd, addr)
        kmem.phys.write_entry(src, es, 0)
        kmem.phys.write_entry(dst, es, entry)
    if moved:
        flush_tlb_range(mm, old_addr, old_addr + length)
    return True


def copy_vma(mm: MmStruct, vma: Vma, addr: int, length: int, pgoff: int) -> Vma:
    """copy_vma(): the destination VMA of a move, merged with neighbours when possible."""
    if vma.vm_file is None and vma.anon_vma is None:
        pgoff = addr >> mm.kmem.page_shift
    merged = vma_merge_new_range(mm, addr, addr + length, vma.vm_flags, vma.vm_file, pgoff,
                                 vma.anon_name, anon_src=vma)
    if merged is not None:
        return merged
    new = Vma(addr, addr + length, vma.vm_flags, vma.vm_page_prot, pgoff, vma.vm_file,
              vma.anon_vma, list(vma.anon_vma_chain), vma.anon_name)
    for anon in new.anon_vma_chain:
        anon.refcount += 1
    vma_link(mm, new)
    return new


def move_vma(mm: MmStruct, vma: Vma, old_addr: int, old_len: int, new_len: int, new_addr: int,
             flags: int) -> int:
    """move_vma(): new VMA, move the entries, then unmap the old range (unless DONTUNMAP)."""
    shift = mm.kmem.page_shift
    if mm.map_count >= mm.kmem.sysctl.max_map_count - 3:
        return -m.ENOMEM
    new_pgoff = vma.vm_pgoff + ((old_addr - vma.vm_start) >> shift)
    vm_flags = vma.vm_flags
    new_vma = copy_vma(mm, vma, new_addr, new_len, new_pgoff)
    if not move_page_tables(mm, old_addr, new_addr, old_len):
        return -m.ENOMEM
    vm_stat_account(mm, vm_flags, new_len >> shift)
    if flags & m.MREMAP_DONTUNMAP:
        # the old range stays mapped, empty; it is no longer locked
        old = vma_lookup(mm, old_addr)
        if old is not None and old.vm_flags & VM_LOCKED_MASK:
            if old.vm_flags & VM_LOCKED:
                mm.locked_vm -= old_len >> shift
            old.vm_flags &= ~VM_LOCKED_MASK
    else:
        err = do_munmap_range(mm, old_addr, old_addr + old_len)
        if err:
            return err
    if vm_flags & VM_LOCKED:
        mm.locked_vm += new_len >> shift
        mm_populate(mm, new_addr + old_len, new_addr + new_len)
    vma_set_page_prot(mm, new_vma)
    return new_addr


def vma_expandable(mm: MmStruct, vma: Vma, delta: int) -> bool:
    end = vma.vm_end + delta
    if mm.mm_rb.find_vma_intersection(vma.vm_end, end) is not None:
        return False
    return end <= mm.task_size


def do_mremap(mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int,
              new_addr: int) -> int:
    """mremap(2): the new address, or -EINVAL / -EFAULT / -ENOMEM / -EAGAIN as Linux gives them."""
    shift = mm.kmem.page_shift
    if flags & ~(m.MREMAP_FIXED | m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP):
        return -m.EINVAL
    if flags & m.MREMAP_FIXED and not flags & m.MREMAP_MAYMOVE:
        return -m.EINVAL
    if flags & m.MREMAP_DONTUNMAP and (not flags & m.MREMAP_MAYMOVE or old_len != new_len):
        return -m.EINVAL
    if offset_in_page(mm, addr):
        return -m.EINVAL
    old_len = page_align(mm, old_len)
    new_len = page_align(mm, new_len)
    if not new_len or new_len > mm.task_size:  # check_mremap_params(): "is the new length silly?"
        return -m.EINVAL
    vma = vma_lookup(mm, addr)
    if vma is None:
        return -m.EFAULT
    if flags & (m.MREMAP_FIXED | m.MREMAP_DONTUNMAP):
        return mremap_to(mm, addr, old_len, new_addr, new_len, flags)
    if old_len >= new_len:
        if old_len == new_len:
            return addr
        err = do_munmap(mm, addr + new_len, old_len - new_len)
        return err if err else addr
    res = vma_to_resize(mm, addr, old_len, new_len, flags)
    if isinstance(res, int):
        return res
    vma = res
    if old_len == vma.vm_end - addr:
        delta = new_len - old_len
        if vma_expandable(mm, vma, delta):
            pages = delta >> shift
            vma_set_range(mm, vma, vma.vm_start, vma.vm_end + delta, vma.vm_pgoff)
            _merge_with_next(mm, vma)
            vm_stat_account(mm, vma.vm_flags, pages)
            if vma.vm_flags & VM_LOCKED:
                mm.locked_vm += pages
                mm_populate(mm, addr + old_len, addr + new_len)
            return addr
    if not flags & m.MREMAP_MAYMOVE:
        return -m.ENOMEM
    map_flags = m.MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0
    target = get_unmapped_area(mm, vma.vm_file, 0, new_len,
                               vma.vm_pgoff + ((addr - vma.vm_start) >> shift), map_flags)
    if target < 0:
        return target
    return move_vma(mm, vma, addr, old_len, new_len, target, flags)


def _merge_with_next(mm: MmStruct, vma: Vma) -> None:
    """vma_merge_extend(): after growing in place, absorb the next VMA if it now fits."""
    nxt = mm.mm_rb.next(vma)
    shift = mm.kmem.page_shift
    if (nxt is not None and nxt.vm_start == vma.vm_end
            and is_mergeable_vma(nxt, vma.vm_file, vma.vm_flags, vma.anon_name)
            and is_mergeable_anon_vma(nxt, None, vma.anon_vma) and anon_vmas_compatible(vma, nxt)
            and nxt.vm_pgoff == vma.vm_pgoff + (vma.size >> shift)):
        end = nxt.vm_end
        if vma.anon_vma is None and nxt.anon_vma is not None:
            vma.anon_vma = nxt.anon_vma
            vma.anon_vma_chain = list(nxt.anon_vma_chain)
        remove_vma(mm, nxt)
        vma_set_range(mm, vma, vma.vm_start, end, vma.vm_pgoff)


def mremap_to(mm: MmStruct, addr: int, old_len: int, new_addr: int, new_len: int,
              flags: int) -> int:
    """mremap_to(): a move to a fixed address (MREMAP_FIXED) or one that keeps the old range."""
    shift = mm.kmem.page_shift
    if offset_in_page(mm, new_addr):
        return -m.EINVAL
    if new_len > mm.task_size or new_addr > mm.task_size - new_len:
        return -m.EINVAL
    if addr + old_len > new_addr and new_addr + new_len > addr:
        return -m.EINVAL
    if mm.map_count + 2 >= mm.kmem.sysctl.max_map_count - 3:
        return -m.ENOMEM
    if flags & m.MREMAP_FIXED:
        err = do_munmap(mm, new_addr, new_len)
        if err:
            return err
    if old_len > new_len:
        err = do_munmap(mm, addr + new_len, old_len - new_len)
        if err:
            return err
        old_len = new_len
    res = vma_to_resize(mm, addr, old_len, new_len, flags)
    if isinstance(res, int):
        return res
    vma = res
    if flags & m.MREMAP_DONTUNMAP and not may_expand_vm(mm, vma.vm_flags, old_len >> shift):
        return -m.ENOMEM
    map_flags = (m.MAP_FIXED if flags & m.MREMAP_FIXED else 0) | (
        m.MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0)
    target = get_unmapped_area(mm, vma.vm_file, new_addr, new_len,
                               vma.vm_pgoff + ((addr - vma.vm_start) >> shift), map_flags)
    if target < 0:
        return target
    if not flags & m.MREMAP_FIXED:
        new_addr = target
    return move_vma(mm, vma, addr, old_len, new_len, new_addr, flags)

