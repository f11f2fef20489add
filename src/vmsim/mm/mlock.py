"""mlock, mlock2, munlock, mlockall, munlockall (mm/mlock.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm import mman as m
from vmsim.mm.gup import mm_populate
from vmsim.mm.mmap import U64, can_do_mlock, offset_in_page, page_align, vma_modify
from vmsim.mm.vma import VM_DROPPABLE, VM_LOCKED, VM_LOCKED_MASK, VM_LOCKONFAULT, VM_SPECIAL

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct


def mlock_fixup(mm: MmStruct, start: int, end: int, newflags: int) -> int:
    """mlock_fixup(): set the lock bits of [start, end) within one VMA, keeping locked_vm."""
    vma = mm.mm_rb.find_vma(start)
    assert vma is not None
    old = vma.vm_flags
    if newflags == old or old & (VM_SPECIAL | VM_DROPPABLE):
        return 0  # special and droppable areas are never locked (nor counted)
    res = vma_modify(mm, vma, start, end, newflags, vma.anon_name)
    if isinstance(res, int):
        return res
    npages = (end - start) >> mm.kmem.page_shift
    if newflags & VM_LOCKED and not old & VM_LOCKED:
        mm.locked_vm += npages
    elif old & VM_LOCKED and not newflags & VM_LOCKED:
        mm.locked_vm -= npages
    return 0


def apply_vma_lock_flags(mm: MmStruct, start: int, length: int, flags: int) -> int:
    """apply_vma_lock_flags(): start must be mapped; a hole later gives -ENOMEM after
    the VMAs before it were changed. A range wrapping past 2**64 is -EINVAL."""
    end = (start + length) & U64
    if end < start:
        return -m.EINVAL
    if end == start:
        return 0
    vma = mm.mm_rb.find_vma(start)
    if vma is None or vma.vm_start > start:
        return -m.ENOMEM
    nstart = start
    while nstart < end:
        vma = mm.mm_rb.find_vma(nstart)
        if vma is None or vma.vm_start >= end:
            break
        if vma.vm_start > nstart:
            return -m.ENOMEM
        tmp = min(vma.vm_end, end)
        err = mlock_fixup(mm, nstart, tmp, (vma.vm_flags & ~VM_LOCKED_MASK) | flags)
        if err:
            return err
        nstart = tmp
    return -m.ENOMEM if nstart < end else 0


def count_mm_mlocked_page_nr(mm: MmStruct, start: int, length: int) -> int:
    """Pages of [start, start+len) that are already locked (they are not charged again)."""
    shift = mm.kmem.page_shift
    total = 0
    for vma in mm.mm_rb.range(start, start + length):
        if vma.vm_flags & VM_LOCKED:
            total += (min(start + length, vma.vm_end) - max(start, vma.vm_start)) >> shift
    return total


def do_mlock(mm: MmStruct, start: int, length: int, flags: int) -> int:
    """do_mlock(): charge RLIMIT_MEMLOCK, mark the VMAs, then fault the pages in."""
    if not can_do_mlock(mm):
        return -m.EPERM
    length = page_align(mm, length + offset_in_page(mm, start))
    start &= ~(mm.kmem.page_size - 1)
    shift = mm.kmem.page_shift
    limit = mm.rlimits.memlock >> shift
    locked = (length >> shift) + mm.locked_vm
    if locked > limit and not mm.rlimits.cap_ipc_lock:
        locked -= count_mm_mlocked_page_nr(mm, start, length)
    if locked > limit and not mm.rlimits.cap_ipc_lock:
        return -m.ENOMEM
    err = apply_vma_lock_flags(mm, start, length, flags)
    if err:
        return err
    err = mm_populate(mm, start, start + length, ignore_errors=False)
    # __mlock_posix_error_return(): POSIX wants ENOMEM for a bad range and EAGAIN for no memory
    return {-m.EFAULT: -m.ENOMEM, -m.ENOMEM: -m.EAGAIN}.get(err, err)


def sys_mlock(mm: MmStruct, start: int, length: int) -> int:
    return do_mlock(mm, start, length, VM_LOCKED)


def sys_mlock2(mm: MmStruct, start: int, length: int, flags: int) -> int:
    if flags & ~m.MLOCK_ONFAULT:
        return -m.EINVAL
    vm_flags = VM_LOCKED | (VM_LOCKONFAULT if flags & m.MLOCK_ONFAULT else 0)
    return do_mlock(mm, start, length, vm_flags)


def sys_munlock(mm: MmStruct, start: int, length: int) -> int:
    length = page_align(mm, length + offset_in_page(mm, start))
    start &= ~(mm.kmem.page_size - 1)
    return apply_vma_lock_flags(mm, start, length, 0)


def apply_mlockall_flags(mm: MmStruct, flags: int) -> None:
    """apply_mlockall_flags(): def_flags for future mappings, and every current VMA."""
    mm.def_flags &= ~VM_LOCKED_MASK
    to_add = 0
    if flags & m.MCL_FUTURE:
        mm.def_flags |= VM_LOCKED
        if flags & m.MCL_ONFAULT:
            mm.def_flags |= VM_LOCKONFAULT
        if not flags & m.MCL_CURRENT:
            return
    if flags & m.MCL_CURRENT:
        to_add |= VM_LOCKED
        if flags & m.MCL_ONFAULT:
            to_add |= VM_LOCKONFAULT
    for vma in list(mm.mm_rb):
        newflags = (vma.vm_flags & ~VM_LOCKED_MASK) | to_add
        mlock_fixup(mm, vma.vm_start, vma.vm_end, newflags)


def sys_mlockall(mm: MmStruct, flags: int) -> int:
    if not flags or flags & ~(m.MCL_CURRENT | m.MCL_FUTURE | m.MCL_ONFAULT) or (
            flags == m.MCL_ONFAULT):
        return -m.EINVAL
    if not can_do_mlock(mm):
        return -m.EPERM
    shift = mm.kmem.page_shift
    if flags & m.MCL_CURRENT and not mm.rlimits.cap_ipc_lock and (
            mm.total_vm > mm.rlimits.memlock >> shift):  # all of it must fit
        return -m.ENOMEM
    apply_mlockall_flags(mm, flags)
    if flags & m.MCL_CURRENT:
        mm_populate(mm, 0, mm.task_size)
    return 0


def sys_munlockall(mm: MmStruct) -> int:
    apply_mlockall_flags(mm, 0)
    return 0

