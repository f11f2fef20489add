"""mremap(2) (mm/mremap.c as of Linux 6.18): shrink, grow in place, or move mappings.

A move carries the page-table entries themselves to the new address
(move_page_tables): no page is copied, and the pages keep their index, so
the new VMA keeps the old file offset / anonymous pgoff.

The structure follows Linux 6.18's rewrite: one :class:`VmaRemap` (struct
vma_remap_struct) is threaded through the call; check_mremap_params()
checks the arguments before any VMA is looked up; check_prep_vma() checks
the VMA before anything is unmapped; and a pure move (MREMAP_FIXED with
old_len == new_len, since 6.17) goes through remap_move(), which may span
several VMAs and the gaps between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from vmsim.mm import mman as m
from vmsim.mm.gup import mm_populate
from vmsim.mm.hugetlb import hstate_vma
from vmsim.mm.memory import present_pages
from vmsim.mm.mmap import (
    do_munmap,
    get_unmapped_area,
    may_expand_vm,
    mlock_future_ok,
    offset_in_page,
    page_align,
    vm_stat_account,
    vma_link,
    vma_merge_new_range,
    vma_set_page_prot,
)
from vmsim.mm.pgtable import pte_alloc, pte_offset
from vmsim.mm.tlb import flush_tlb_range
from vmsim.mm.vma import (
    VM_DONTEXPAND,
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_SHARED,
    VM_UFFD_MISSING,
    VM_UFFD_WP,
    Vma,
)

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct

U64 = (1 << 64) - 1
#: __VM_UFFD_FLAGS as far as vmsim has them (no VM_UFFD_MINOR: nothing registers userfaultfd).
VM_UFFD_FLAGS = VM_UFFD_MISSING | VM_UFFD_WP
MREMAP_FLAGS = m.MREMAP_FIXED | m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP


class RemapType(Enum):
    """enum mremap_type: what the lengths ask for."""

    INVALID = 0
    NO_RESIZE = 1  # old_len == new_len
    SHRINK = 2  # old_len > new_len
    EXPAND = 3  # old_len < new_len


@dataclass
class VmaRemap:
    """struct vma_remap_struct: one mremap() call, threaded through every step.

    Any field may change on the way (a multi-VMA move rewrites addr, lengths
    and new_addr for each VMA it moves), so they always describe the step at hand.
    """

    addr: int
    old_len: int
    new_len: int
    flags: int
    new_addr: int
    vma: Vma | None = None
    delta: int = 0
    remap_type: RemapType = RemapType.INVALID
    populate_expand: bool = False  # a locked VMA grew: populate the new part at the end

    @property
    def implies_new_addr(self) -> bool:
        """vrm_implies_new_addr(): MREMAP_FIXED or MREMAP_DONTUNMAP always pick a new address."""
        return bool(self.flags & (m.MREMAP_FIXED | m.MREMAP_DONTUNMAP))

    @property
    def move_only(self) -> bool:
        """vrm_move_only(): MREMAP_FIXED without resizing, which remap_move() handles."""
        return bool(self.flags & m.MREMAP_FIXED) and self.old_len == self.new_len

    def overlaps(self) -> bool:
        """vrm_overlaps(): do [addr, addr+old_len) and [new_addr, new_addr+new_len) meet?"""
        end_old = (self.addr + self.old_len) & U64  # unsigned: a huge old_len wraps
        return end_old > self.new_addr and self.new_addr + self.new_len > self.addr

    def set_delta(self) -> None:
        """vrm_set_delta() and vrm_remap_type()."""
        self.delta = abs(self.old_len - self.new_len)
        if self.delta == 0:
            self.remap_type = RemapType.NO_RESIZE
        elif self.old_len > self.new_len:
            self.remap_type = RemapType.SHRINK
        else:
            self.remap_type = RemapType.EXPAND

    def will_map_new(self) -> bool:
        """vrm_will_map_new(): will the call grow the VMA or map a new range?"""
        return self.remap_type == RemapType.EXPAND or self.implies_new_addr


def vma_lookup(mm: MmStruct, addr: int) -> Vma | None:
    """vma_lookup(): the VMA containing addr, if any."""
    vma = mm.mm_rb.find_vma(addr)
    return vma if vma is not None and vma.vm_start <= addr else None


# ------------------------------------------------------------------ checks
def check_mremap_params(mm: MmStruct, vrm: VmaRemap) -> int:
    """check_mremap_params(): the argument checks made before any VMA is looked up.

    Linux 6.18 does them all here, the overlap of the old and new ranges and
    the map-count margin of a move included, so a call that fails them has
    no side effect and does not depend on what is mapped at addr.
    """
    flags = vrm.flags
    if flags & ~MREMAP_FLAGS:
        return -m.EINVAL
    if offset_in_page(mm, vrm.addr):
        return -m.EINVAL
    if not vrm.new_len:  # a zero old_len is allowed (duplicating a shared mapping)
        return -m.EINVAL
    if vrm.new_len > mm.task_size:
        return -m.EINVAL
    if not vrm.implies_new_addr:
        return 0
    if vrm.new_addr > mm.task_size - vrm.new_len:
        return -m.EINVAL
    if offset_in_page(mm, vrm.new_addr):
        return -m.EINVAL
    if not flags & m.MREMAP_MAYMOVE:
        return -m.EINVAL
    if flags & m.MREMAP_DONTUNMAP and vrm.old_len != vrm.new_len:
        return -m.EINVAL
    if vrm.overlaps():
        return -m.EINVAL
    # Both the old and the new range may split a VMA in three before anything moves.
    if mm.map_count + 2 >= mm.kmem.sysctl.max_map_count - 3:
        return -m.ENOMEM
    return 0


def check_prep_vma(mm: MmStruct, vrm: VmaRemap) -> int:
    """check_prep_vma(): may vrm.vma be resized or moved as asked? 0 or -errno.

    Also sets the delta and kind of the remap, and new_addr = addr when the
    call does not choose a new address.  Runs before anything is unmapped.
    """
    vma = vrm.vma
    if vma is None:
        return -m.EFAULT
    vrm.set_delta()
    if not vrm.implies_new_addr:
        vrm.new_addr = vrm.addr
    if not vrm.will_map_new():
        return 0
    old_len, new_len = vrm.old_len, vrm.new_len
    if not old_len and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        return -m.EINVAL  # "duplicating" a private mapping makes no sense
    if vrm.flags & m.MREMAP_DONTUNMAP and vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        return -m.EINVAL
    if vrm.remap_type == RemapType.SHRINK:
        old_len = new_len  # the part being unmapped may cross VMA boundaries
    if old_len > vma.vm_end - vrm.addr:
        return -m.EFAULT
    if new_len == old_len:
        return 0
    if vma.vm_flags & VM_LOCKED:
        vrm.populate_expand = True
    shift = mm.kmem.page_shift
    pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> shift)
    if pgoff + (new_len >> shift) > U64:
        return -m.EINVAL
    if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        return -m.EFAULT
    if not mlock_future_ok(mm, vma.vm_flags, vrm.delta):
        return -m.EAGAIN
    if not may_expand_vm(mm, vma.vm_flags, vrm.delta >> shift):
        return -m.ENOMEM
    return 0


def vma_multi_allowed(vma: Vma) -> bool:
    """vma_multi_allowed(): may this VMA be moved by a move spanning several VMAs?

    Not a userfaultfd-armed one.  Linux also refuses files whose f_op has a
    get_unmapped_area() other than the known good ones (shmem, hugetlbfs,
    thp_get_unmapped_area); every file vmsim maps is a regular file or shmem.
    """
    return not vma.vm_flags & VM_UFFD_FLAGS


# ------------------------------------------------------------------ moving
def move_page_tables(mm: MmStruct, old_addr: int, new_addr: int, length: int) -> int:
    """move_page_tables(): carry the entries of [old, old+len) to new_addr, in address order.

    Returns how many bytes were moved (less than len if a table could not be
    allocated).  Present entries become soft-dirty (move_soft_dirty_pte()).
    """
    if not length:
        return 0
    kmem = mm.kmem
    es = kmem.mode.entry_size
    b = kmem.mode.bits
    soft_dirty = b.soft_dirty if kmem.sysctl.mem_soft_dirty else 0
    kept = b.present | b.protnone
    moved = present_pages(kmem, mm, old_addr, old_addr + length, include_markers=True)
    done = length
    for addr, entry in moved:
        dst = pte_alloc(kmem, mm, addr - old_addr + new_addr)
        if dst < 0:
            done = addr - old_addr
            break
        if entry & kept:
            entry |= soft_dirty
        src = pte_offset(kmem, mm.pgd, addr)
        kmem.pt.write_entry(src, es, 0)
        kmem.pt.write_entry(dst, es, entry)
    if moved:
        flush_tlb_range(mm, old_addr, old_addr + length)
    return done


def copy_vma(mm: MmStruct, vma: Vma, addr: int, length: int, pgoff: int) -> tuple[Vma, Vma]:
    """copy_vma() (mm/vma.c): the destination VMA of a move, merged with neighbours if possible.

    Returns (new VMA, source VMA): the source is the merged VMA when an
    unfaulted anonymous VMA merged with itself (its pgoff follows the address).
    """
    vma_start = vma.vm_start
    if vma.vm_file is None and vma.anon_vma is None:
        pgoff = addr >> mm.kmem.page_shift  # unfaulted anonymous: pgoff follows the address
    merged = vma_merge_new_range(mm, addr, addr + length, vma.vm_flags, vma.vm_file, pgoff,
                                 vma.anon_name, anon_src=vma, copied_from=vma)
    if merged is not None:
        if merged.vm_start <= vma_start < merged.vm_end:
            vma = merged
        return merged, vma
    new = Vma(addr, addr + length, vma.vm_flags, vma.vm_page_prot, pgoff, vma.vm_file,
              vma.anon_vma, list(vma.anon_vma_chain), vma.anon_name)
    for anon in new.anon_vma_chain:
        anon.refcount += 1
    vma_link(mm, new)
    return new, vma


def unlink_anon_vmas(vma: Vma) -> None:
    """unlink_anon_vmas(): the VMA leaves every anon_vma it was on and has none afterwards."""
    for anon in vma.anon_vma_chain:
        anon.refcount -= 1
    vma.anon_vma_chain = []
    vma.anon_vma = None


def vrm_stat_account(mm: MmStruct, vrm: VmaRemap, nbytes: int) -> None:
    """vrm_stat_account(): total_vm and friends, and locked_vm for a locked VMA."""
    assert vrm.vma is not None
    pages = nbytes >> mm.kmem.page_shift
    vm_stat_account(mm, vrm.vma.vm_flags, pages)
    if vrm.vma.vm_flags & VM_LOCKED:
        mm.locked_vm += pages


def dontunmap_complete(vrm: VmaRemap, new_vma: Vma) -> None:
    """dontunmap_complete(): the old VMA stays, empty, no longer locked.

    The whole VMA loses VM_LOCKED/VM_LOCKONFAULT (it is not split), locked_vm
    is left as it is, and if the whole VMA moved it leaves its anon_vma.
    """
    old = vrm.vma
    assert old is not None
    start, end = vrm.addr, vrm.addr + vrm.old_len
    old_start, old_end = old.vm_start, old.vm_end
    old.vm_flags &= ~VM_LOCKED_MASK
    if new_vma is not old and start == old_start and end == old_end:
        unlink_anon_vmas(old)


def move_vma(mm: MmStruct, vrm: VmaRemap) -> int:
    """move_vma(): new VMA, move the entries, then unmap the old range (unless DONTUNMAP).

    If the entries cannot all be moved, the moved ones go back and the new
    range is unmapped instead (-ENOMEM).
    """
    if mm.map_count >= mm.kmem.sysctl.max_map_count - 3:  # prep_move_vma()
        return -m.ENOMEM
    vma = vrm.vma
    assert vma is not None
    new_pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> mm.kmem.page_shift)
    new_vma, vrm.vma = copy_vma(mm, vma, vrm.new_addr, vrm.new_len, new_pgoff)
    moved = move_page_tables(mm, vrm.addr, vrm.new_addr, vrm.old_len)
    err = 0
    if moved < vrm.old_len:  # copy_vma_and_data(): put back what moved, undo the copy
        err = -m.ENOMEM
        move_page_tables(mm, vrm.new_addr, vrm.addr, moved)
        vrm.vma, vrm.old_len, vrm.addr = new_vma, vrm.new_len, vrm.new_addr
    vrm_stat_account(mm, vrm, vrm.new_len)
    if not err and vrm.flags & m.MREMAP_DONTUNMAP:
        dontunmap_complete(vrm, new_vma)
    else:
        do_munmap(mm, vrm.addr, vrm.old_len)  # unmap_source_vma(): best effort
    if not err:
        vma_set_page_prot(mm, new_vma)
    return err or vrm.new_addr


def vrm_set_new_addr(mm: MmStruct, vrm: VmaRemap) -> int:
    """vrm_set_new_addr(): where the VMA goes (a MAP_FIXED or hinted get_unmapped_area)."""
    vma = vrm.vma
    assert vma is not None
    pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> mm.kmem.page_shift)
    map_flags = (m.MAP_FIXED if vrm.flags & m.MREMAP_FIXED else 0) | (
        m.MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0)
    hint = vrm.new_addr if vrm.implies_new_addr else 0
    res = get_unmapped_area(mm, vma.vm_file, hint, vrm.new_len, pgoff, map_flags)
    if res < 0:
        return res
    vrm.new_addr = res
    return 0


def shrink_vma(mm: MmStruct, vrm: VmaRemap, drop_lock: bool) -> int:
    """shrink_vma(): unmap [addr+new_len, addr+old_len); reload the VMA if the call goes on."""
    res = do_munmap(mm, vrm.addr + vrm.new_len, vrm.delta)
    vrm.vma = None
    if res:
        return res
    if not drop_lock:
        vrm.vma = vma_lookup(mm, vrm.addr)
        if vrm.vma is None:
            return -m.EFAULT
    return 0


def mremap_to(mm: MmStruct, vrm: VmaRemap) -> int:
    """mremap_to(): move to a fixed address (MREMAP_FIXED) or keep the old range (DONTUNMAP).

    The destination is unmapped first, then the shrunk tail, then the VMA moves.
    """
    if vrm.flags & m.MREMAP_FIXED:
        err = do_munmap(mm, vrm.new_addr, vrm.new_len)
        vrm.vma = None
        if err:
            return err
        vrm.vma = vma_lookup(mm, vrm.addr)
        if vrm.vma is None:
            return -m.EFAULT
    if vrm.remap_type == RemapType.SHRINK:
        err = shrink_vma(mm, vrm, drop_lock=False)
        if err:
            return err
        vrm.old_len = vrm.new_len
    assert vrm.vma is not None
    if vrm.flags & m.MREMAP_DONTUNMAP and not may_expand_vm(
            mm, vrm.vma.vm_flags, vrm.old_len >> mm.kmem.page_shift):
        return -m.ENOMEM
    err = vrm_set_new_addr(mm, vrm)
    if err:
        return err
    return move_vma(mm, vrm)


# ------------------------------------------------------------------ in place
def vma_expandable(mm: MmStruct, vma: Vma, delta: int) -> bool:
    """vma_expandable(): is [vm_end, vm_end+delta) free and a valid place to map?"""
    end = vma.vm_end + delta
    if end > U64:
        return False
    if mm.mm_rb.find_vma_intersection(vma.vm_end, end) is not None:
        return False
    res = get_unmapped_area(mm, None, vma.vm_start, end - vma.vm_start, 0, m.MAP_FIXED)
    return res >= 0 and not offset_in_page(mm, res)


def expand_vma_in_place(mm: MmStruct, vrm: VmaRemap) -> int:
    """expand_vma_in_place(): vma_merge_extend() grows the VMA, absorbing the next if it fits."""
    vma = vrm.vma
    assert vma is not None
    shift = mm.kmem.page_shift
    pgoff = vma.vm_pgoff + (vma.size >> shift)
    grown = vma_merge_new_range(mm, vma.vm_end, vma.vm_end + vrm.delta, vma.vm_flags,
                                vma.vm_file, pgoff, vma.anon_name, anon_src=vma)
    if grown is None:
        return -m.ENOMEM
    vrm.vma = grown
    vrm_stat_account(mm, vrm, vrm.delta)
    return 0


def expand_vma(mm: MmStruct, vrm: VmaRemap) -> int:
    """expand_vma(): grow in place if the range ends the VMA and room follows, else move."""
    vma = vrm.vma
    assert vma is not None
    if vma.vm_end - vrm.addr == vrm.old_len and vma_expandable(mm, vma, vrm.delta):
        err = expand_vma_in_place(mm, vrm)
        return err or vrm.addr
    if not vrm.flags & m.MREMAP_MAYMOVE:
        return -m.ENOMEM
    err = vrm_set_new_addr(mm, vrm)
    if err:
        return err
    return move_vma(mm, vrm)


def mremap_at(mm: MmStruct, vrm: VmaRemap) -> int:
    """mremap_at(): resize where it is (shrink always can), or move if it must and may."""
    if vrm.remap_type == RemapType.NO_RESIZE:
        return vrm.addr
    if vrm.remap_type == RemapType.SHRINK:
        err = shrink_vma(mm, vrm, drop_lock=True)
        return err or vrm.addr
    return expand_vma(mm, vrm)


# ------------------------------------------------------------------ multi-VMA move
def remap_move(mm: MmStruct, vrm: VmaRemap) -> int:
    """remap_move() (Linux 6.17+): a pure move of every VMA in [addr, addr+old_len).

    Each VMA (split at the ends of the range) moves on its own, by
    check_prep_vma() and mremap_to(), to the same offset in the new range
    that it had in the old one, so the gaps between them are kept; what lies
    in the new range's gaps stays mapped.  The range must start in a VMA
    (-EFAULT), may end in a gap, and a VMA that may not take part in a
    multi-VMA move may only be the first and only one (-EFAULT).  A failure
    part-way leaves the VMAs already moved where they went.  Returns where
    the first VMA went.
    """
    start, end = vrm.addr, vrm.addr + vrm.old_len
    target = vrm.new_addr
    res = -m.EFAULT
    seen = False
    last_end = 0
    pos = start  # the iterator resumes at the old end of the VMA it last returned
    while pos < end:  # (a move may have merged that VMA with its new copy past the range)
        vma = mm.mm_rb.find_vma(pos)
        if vma is None or vma.vm_start >= end:
            break
        addr = max(vma.vm_start, start)
        length = min(end, vma.vm_end) - addr
        if not seen and start < vma.vm_start:
            return -m.EFAULT  # no gap at the start of the range
        offset = vma.vm_start - last_end if seen else 0
        last_end = pos = vma.vm_end
        vrm.vma, vrm.addr, vrm.new_addr = vma, addr, target + offset
        vrm.old_len = vrm.new_len = length
        if not vma_multi_allowed(vma) and (seen or vma.vm_end < end):
            return -m.EFAULT
        got = check_prep_vma(mm, vrm)
        if not got:
            got = mremap_to(mm, vrm)
        if got < 0:
            return got
        if not seen:
            res = got
        seen = True
        target = got + length
    return res


# ------------------------------------------------------------------ entry
def mremap_hugetlb(mm: MmStruct, vma: Vma, vrm: VmaRemap) -> int:
    """mremap(2) of a hugetlb area: the lengths round up to the huge-page size, the addresses
    must be aligned to it and the area may not grow (EINVAL: the reservation cannot be
    split); a shrink unmaps the tail in place. vmsim does not move hugetlb page tables
    (move_hugetlb_page_tables()): a move is EINVAL here."""
    hsize = hstate_vma(vma).size
    old_len = (vrm.old_len + hsize - 1) & ~(hsize - 1)
    new_len = (vrm.new_len + hsize - 1) & ~(hsize - 1)
    if vrm.addr & (hsize - 1) or (vrm.flags & m.MREMAP_FIXED and vrm.new_addr & (hsize - 1)):
        return -m.EINVAL
    if new_len > old_len or vrm.flags & (m.MREMAP_FIXED | m.MREMAP_DONTUNMAP):
        return -m.EINVAL
    if new_len < old_len:
        err = do_munmap(mm, vrm.addr + new_len, old_len - new_len)
        if err:
            return err
    return vrm.addr


def do_mremap(mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int,
              new_addr: int) -> int:
    """mremap(2): the new address, or -EINVAL / -EFAULT / -ENOMEM / -EAGAIN as Linux 6.18 gives.

    The lengths are page-aligned first, then check_mremap_params(); a pure
    move goes to remap_move(), anything else resizes or moves the one VMA at
    addr.  A locked VMA that grew is populated last.
    """
    vrm = VmaRemap(addr, page_align(mm, old_len), page_align(mm, new_len), flags, new_addr)
    res = check_mremap_params(mm, vrm)
    if res:
        return res
    hv = mm.mm_rb.find_vma(vrm.addr)
    if hv is not None and hv.vm_start <= vrm.addr and hv.vm_flags & VM_HUGETLB:
        return mremap_hugetlb(mm, hv, vrm)
    if vrm.move_only:
        res = remap_move(mm, vrm)
    else:
        vrm.vma = vma_lookup(mm, vrm.addr)
        res = check_prep_vma(mm, vrm)
        if not res:
            res = mremap_to(mm, vrm) if vrm.implies_new_addr else mremap_at(mm, vrm)
    if res >= 0 and vrm.populate_expand:
        start = vrm.new_addr + vrm.old_len
        mm_populate(mm, start, start + vrm.delta)
    return res
