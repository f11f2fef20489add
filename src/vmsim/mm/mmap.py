"""mmap, munmap, brk and the VMA plumbing they share (mm/mmap.c, mm/vma.c).

Every entry point returns what the system call returns: a value, or a
negative errno. VMA insertion, removal, split and merge live here too,
because mprotect, mremap, madvise and mlock reuse them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.mm import mman as m
from vmsim.mm.filemap import (
    FMODE_READ,
    FMODE_WRITE,
    File,
    Inode,
    delete_from_page_cache,
    writeback_range,
)
from vmsim.mm.gup import mm_populate
from vmsim.mm.hugetlb import hugetlb_split_ok, unmap_hugepage_range
from vmsim.mm.memory import zap_pte_range
from vmsim.mm.pgtable import free_pgtables, pgd_free, vm_get_page_prot
from vmsim.mm.vma import (
    VM_ACCOUNT,
    VM_DONTDUMP,
    VM_DROPPABLE,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_IGNORE_MERGE,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_SPECIAL,
    VM_STACK,
    VM_STICKY,
    VM_SYNC,
    VM_WIPEONFORK,
    VM_WRITE,
    AnonVma,
    Vma,
)

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct


U64 = (1 << 64) - 1  # system-call arguments are unsigned longs: arithmetic wraps at 2**64


def page_align(mm: MmStruct, n: int) -> int:
    """PAGE_ALIGN(), wrapping at 2**64 as the kernel's unsigned arithmetic does."""
    ps = mm.kmem.page_size
    return ((n + ps - 1) & ~(ps - 1)) & U64


def offset_in_page(mm: MmStruct, addr: int) -> int:
    return addr & (mm.kmem.page_size - 1)


# ---------------------------------------------------------------- accounting
def is_exec_mapping(flags: int) -> bool:
    return (flags & (VM_EXEC | VM_WRITE | VM_STACK)) == VM_EXEC


def is_stack_mapping(flags: int) -> bool:
    return (flags & VM_STACK) == VM_STACK


def is_data_mapping(flags: int) -> bool:
    return (flags & (VM_WRITE | VM_SHARED | VM_STACK)) == VM_WRITE


def vm_stat_account(mm: MmStruct, flags: int, npages: int) -> None:
    """vm_stat_account(): total_vm and the exec/stack/data split."""
    mm.total_vm += npages
    if is_exec_mapping(flags):
        mm.exec_vm += npages
    elif is_stack_mapping(flags):
        mm.stack_vm += npages
    elif is_data_mapping(flags):
        mm.data_vm += npages
    mm.update_hiwater_vm()


def may_expand_vm(mm: MmStruct, flags: int, npages: int) -> bool:
    """may_expand_vm(): RLIMIT_AS for everything, RLIMIT_DATA for private writable data."""
    shift = mm.kmem.page_shift
    if mm.total_vm + npages > mm.rlimits.as_ >> shift:
        return False
    return not (is_data_mapping(flags) and mm.data_vm + npages > mm.rlimits.data >> shift)


def mlock_future_ok(mm: MmStruct, flags: int, nbytes: int) -> bool:
    """mlock_future_ok(): may `nbytes` more be locked under RLIMIT_MEMLOCK?"""
    if not flags & VM_LOCKED or mm.rlimits.cap_ipc_lock:
        return True
    shift = mm.kmem.page_shift
    return (nbytes >> shift) + mm.locked_vm <= mm.rlimits.memlock >> shift


def can_do_mlock(mm: MmStruct) -> bool:
    return mm.rlimits.memlock != 0 or mm.rlimits.cap_ipc_lock


# ---------------------------------------------------------------- VMA plumbing
def vma_wants_writenotify(vma: Vma) -> bool:
    """vma_wants_writenotify(): shared writable file mappings track dirtying by faulting."""
    return (vma.vm_flags & (VM_WRITE | VM_SHARED)) == (VM_WRITE | VM_SHARED) and (
        vma.vm_file is not None and not vma.vm_file.inode.shmem)


def vma_set_page_prot(mm: MmStruct, vma: Vma) -> None:
    """vma_set_page_prot(): vm_page_prot from the flags, read-only if write-notify is wanted."""
    flags = vma.vm_flags
    if vma_wants_writenotify(vma):
        flags &= ~VM_SHARED
    vma.vm_page_prot = vm_get_page_prot(mm.kmem, flags)


def vma_link(mm: MmStruct, vma: Vma) -> None:
    """vma_link(): insert into the tree and the file's i_mmap; map_count++."""
    vma.vm_mm = mm
    mm.mm_rb.insert(vma)
    mm.map_count += 1
    mm.vmacache_invalidate()
    if vma.vm_file is not None:
        vma.vm_file.inode.i_mmap.add(vma)
        if vma.vm_flags & VM_SHARED:
            vma.vm_file.inode.i_mmap_writable += 1


def vma_unlink(mm: MmStruct, vma: Vma) -> None:
    """Remove from the tree and i_mmap (the VMA's pages must already be zapped)."""
    mm.mm_rb.remove(vma)
    mm.map_count -= 1
    mm.vmacache_invalidate()
    if vma.vm_file is not None:
        vma.vm_file.inode.i_mmap.discard(vma)
        if vma.vm_flags & VM_SHARED:
            vma.vm_file.inode.i_mmap_writable -= 1


def vma_set_range(mm: MmStruct, vma: Vma, start: int, end: int, pgoff: int) -> None:
    mm.mm_rb.update(vma, start, end, pgoff)
    mm.vmacache_invalidate()


def _copy_vma_fields(vma: Vma, start: int, end: int, pgoff: int) -> Vma:
    new = Vma(start, end, vma.vm_flags, vma.vm_page_prot, pgoff, vma.vm_file, vma.anon_vma,
              list(vma.anon_vma_chain), vma.anon_name)
    for anon in new.anon_vma_chain:
        anon.refcount += 1
    if vma.vm_private_data is not None:  # a hugetlb area: both halves share its HugetlbArea
        new.vm_private_data = vma.vm_private_data
        vma.vm_private_data.users += 1  # type: ignore[attr-defined]
    return new


def split_vma(mm: MmStruct, vma: Vma, addr: int, new_below: bool,
              check_limit: bool = True) -> Vma | int:
    """split_vma(): cut vma at addr; the new VMA is the lower part if new_below.

    Returns the new VMA, or -ENOMEM at the map-count limit. munmap passes
    check_limit=False (the kernel's __split_vma): it checks once, up front.
    """
    if check_limit and mm.map_count >= mm.kmem.sysctl.max_map_count:
        return -m.ENOMEM
    pages = (addr - vma.vm_start) >> mm.kmem.page_shift
    if new_below:
        new = _copy_vma_fields(vma, vma.vm_start, addr, vma.vm_pgoff)
        vma_set_range(mm, vma, addr, vma.vm_end, vma.vm_pgoff + pages)
    else:
        new = _copy_vma_fields(vma, addr, vma.vm_end, vma.vm_pgoff + pages)
        vma_set_range(mm, vma, vma.vm_start, addr, vma.vm_pgoff)
    vma_link(mm, new)
    return new


def vma_had_uncowed_parents(vma: Vma | None) -> bool:
    """vma_had_uncowed_parents(): an anon_vma inherited through fork (a chain of more than one)."""
    return vma is not None and vma.anon_vma is not None and len(vma.anon_vma_chain) != 1


def is_mergeable_anon_vma(tgt: Vma, src: Vma | None, src_anon: AnonVma | None) -> bool:
    """is_mergeable_anon_vma() (mm/vma.c, as since Linux 6.16): may `tgt` absorb a range whose
    anon_vma is `src_anon` (belonging to the existing VMA `src`, or to none for a new range)?

    One side without an anon_vma takes the other's, unless that one was inherited
    through fork; otherwise both must already share one.
    """
    tgt_anon = tgt.anon_vma
    if tgt_anon is None and src_anon is not None:
        return not vma_had_uncowed_parents(src)
    if tgt_anon is not None and src_anon is None:
        return not vma_had_uncowed_parents(tgt)
    return src_anon is tgt_anon


def anon_vmas_compatible(prev: Vma, nxt: Vma) -> bool:
    """can_vma_merge_right()'s extra test when a merge joins prev and next into one."""
    return prev.anon_vma is None or nxt.anon_vma is None or prev.anon_vma is nxt.anon_vma


def is_mergeable_vma(vma: Vma, file: File | None, vm_flags: int, anon_name: str | None) -> bool:
    """is_mergeable_vma(): same flags (soft-dirty aside), same struct file, same name;
    never a VM_SPECIAL area (vma_merge()'s first test: hugetlb areas are VM_DONTEXPAND)."""
    return (not (vma.vm_flags ^ vm_flags) & ~VM_IGNORE_MERGE and vma.vm_file is file
            and not vm_flags & VM_SPECIAL
            and vma.anon_name == anon_name)


def _can_merge_after(prev: Vma, file: File | None, vm_flags: int, src: Vma | None,
                     src_anon: AnonVma | None, pgoff: int, anon_name: str | None,
                     shift: int) -> bool:
    """can_vma_merge_after(): prev may absorb a range starting at its end with `pgoff`."""
    return (is_mergeable_vma(prev, file, vm_flags, anon_name)
            and is_mergeable_anon_vma(prev, src, src_anon)
            and prev.vm_pgoff + ((prev.vm_end - prev.vm_start) >> shift) == pgoff)


def _can_merge_before(nxt: Vma, file: File | None, vm_flags: int, src: Vma | None,
                      src_anon: AnonVma | None, pgoff: int, npages: int,
                      anon_name: str | None) -> bool:
    """can_vma_merge_before(): next may absorb a range of npages ending at its start."""
    return (is_mergeable_vma(nxt, file, vm_flags, anon_name)
            and is_mergeable_anon_vma(nxt, src, src_anon)
            and nxt.vm_pgoff == pgoff + npages)


def _absorb_anon(target: Vma, source: Vma | None) -> None:
    """dup_anon_vma(): an expanding VMA takes over the anon_vma of what it swallows,
    and its sticky flags (VM_MAYBE_GUARD)."""
    if source is not None:
        target.vm_flags |= source.vm_flags & VM_STICKY
    if source is not None and source.anon_vma is not None and target.anon_vma is None:
        target.anon_vma = source.anon_vma
        target.anon_vma_chain = list(source.anon_vma_chain)
        for anon in target.anon_vma_chain:
            anon.refcount += 1


def vma_merge_new_range(mm: MmStruct, start: int, end: int, vm_flags: int, file: File | None,
                        pgoff: int, anon_name: str | None = None, anon_src: Vma | None = None,
                        just_expand: bool = False, copied_from: Vma | None = None) -> Vma | None:
    """vma_merge_new_range(): extend a neighbour over a new empty range instead of a new VMA.

    `anon_src` is the VMA whose anon_vma the range carries (a move by mremap's
    copy_vma); `just_expand` tries the previous VMA only (brk).
    """
    if vm_flags & VM_SPECIAL:
        return None
    shift = mm.kmem.page_shift
    npages = (end - start) >> shift
    src_anon = anon_src.anon_vma if anon_src is not None else None
    nxt = None if just_expand else mm.mm_rb.find_vma(start)
    if nxt is not None and nxt.vm_start != end:
        nxt = None
    prev = mm.mm_rb.find_vma_prev(start)[1]
    if prev is not None and prev.vm_end != start:
        prev = None
    # copy_vma() (mremap) names the VMA being copied, whose fork history counts (copied_from)
    merge_prev = prev is not None and _can_merge_after(prev, file, vm_flags, copied_from, src_anon,
                                                       pgoff, anon_name, shift)
    merge_next = nxt is not None and _can_merge_before(nxt, file, vm_flags, copied_from, src_anon,
                                                       pgoff, npages, anon_name)
    if merge_prev and merge_next:
        assert prev is not None and nxt is not None
        merge_next = anon_vmas_compatible(prev, nxt)
    if merge_prev and merge_next:
        assert prev is not None and nxt is not None
        _absorb_anon(prev, anon_src)
        _absorb_anon(prev, nxt)
        end_all = nxt.vm_end
        remove_vma(mm, nxt)
        vma_set_range(mm, prev, prev.vm_start, end_all, prev.vm_pgoff)
        return prev
    if merge_prev:
        assert prev is not None
        _absorb_anon(prev, anon_src)
        vma_set_range(mm, prev, prev.vm_start, end, prev.vm_pgoff)
        return prev
    if merge_next:
        assert nxt is not None
        _absorb_anon(nxt, anon_src)
        vma_set_range(mm, nxt, start, nxt.vm_end, pgoff)
        return nxt
    return None


def vma_modify(mm: MmStruct, vma: Vma, start: int, end: int, new_flags: int,
               anon_name: str | None = None) -> Vma | int:
    """vma_modify_flags(): give [start, end) of vma new flags, merging or splitting as needed.

    Returns the VMA now covering exactly [start, end) (possibly a merged
    neighbour that covers more), or -ENOMEM if a split hit the map limit.
    """
    shift = mm.kmem.page_shift
    file = vma.vm_file
    pgoff = vma.vm_pgoff + ((start - vma.vm_start) >> shift)
    npages = (end - start) >> shift
    prev = mm.mm_rb.prev(vma)
    nxt = mm.mm_rb.next(vma)
    if not new_flags & VM_SPECIAL:
        left = (start == vma.vm_start and prev is not None and prev.vm_end == start
                and _can_merge_after(prev, file, new_flags, vma, vma.anon_vma, pgoff, anon_name,
                                     shift))
        right = (end == vma.vm_end and nxt is not None and nxt.vm_start == end
                 and _can_merge_before(nxt, file, new_flags, vma, vma.anon_vma, pgoff, npages,
                                       anon_name))
        if left and right:
            assert prev is not None and nxt is not None
            right = anon_vmas_compatible(prev, nxt)
        if left and right:
            assert prev is not None and nxt is not None
            _absorb_anon(prev, vma)
            _absorb_anon(prev, nxt)
            new_end = nxt.vm_end
            remove_vma(mm, vma)
            remove_vma(mm, nxt)
            vma_set_range(mm, prev, prev.vm_start, new_end, prev.vm_pgoff)
            return prev
        if left:
            assert prev is not None
            _absorb_anon(prev, vma)
            if end == vma.vm_end:
                remove_vma(mm, vma)
            else:
                vma_set_range(mm, vma, end, vma.vm_end, vma.vm_pgoff + npages)
            vma_set_range(mm, prev, prev.vm_start, end, prev.vm_pgoff)
            return prev
        if right:
            assert nxt is not None
            _absorb_anon(nxt, vma)
            if start == vma.vm_start:
                remove_vma(mm, vma)
            else:
                vma_set_range(mm, vma, vma.vm_start, start, vma.vm_pgoff)
            vma_set_range(mm, nxt, start, nxt.vm_end, pgoff)
            return nxt
    if start > vma.vm_start:
        res = split_vma(mm, vma, start, new_below=True)
        if isinstance(res, int):
            return res
    if end < vma.vm_end:
        res = split_vma(mm, vma, end, new_below=False)
        if isinstance(res, int):
            return res
    vma.vm_flags = new_flags
    vma_set_page_prot(mm, vma)
    return vma


def remove_vma(mm: MmStruct, vma: Vma) -> None:
    """Unlink a VMA whose range is now covered elsewhere or empty; drop its anon_vma refs.

    The last mapping of an unlinked shmem file (a shared anonymous mapping)
    releases the file, and with it the page cache (the fput() of remove_vma).
    """
    vma_unlink(mm, vma)
    for anon in vma.anon_vma_chain:
        anon.refcount -= 1
    file = vma.vm_file
    if file is not None and file.deleted and not file.inode.i_mmap:
        for index in list(file.inode.pages):
            delete_from_page_cache(mm.kmem, file.inode, index)


# ---------------------------------------------------------------- munmap
def unmap_region(mm: MmStruct, vmas: list[Vma], start: int, end: int) -> None:
    """unmap_region(): zap the pages of `vmas` in [start, end), then free unneeded tables.

    Dirty pages of a shared file mapping are written back to the file, so
    what a process wrote through the mapping reaches the file at munmap.
    """
    shift = mm.kmem.page_shift
    for vma in vmas:
        lo, hi = max(start, vma.vm_start), min(end, vma.vm_end)
        if vma.vm_flags & VM_HUGETLB:
            unmap_hugepage_range(mm, vma, lo, hi, removing=True)
            continue
        zap_pte_range(mm, vma, lo, hi, drop_markers=True)
        if vma.vm_file is not None and vma.vm_flags & VM_SHARED:
            first = vma.linear_page_index(lo, shift)
            writeback_range(mm.kmem, vma.vm_file.inode, first, first + ((hi - lo) >> shift))
    prev = mm.mm_rb.find_vma_prev(start)[1]
    nxt = mm.mm_rb.find_vma(end)
    floor = prev.vm_end if prev is not None else 0
    ceiling = nxt.vm_start if nxt is not None else 0
    free_pgtables(mm.kmem, mm, start, end, floor, ceiling)


def do_munmap_range(mm: MmStruct, start: int, end: int) -> int:
    """do_vmi_align_munmap(): remove [start, end) (page-aligned) from the address space.

    Splits the VMAs at the edges, zaps their pages, unlinks them and frees
    the page tables no remaining VMA needs. 0 or -ENOMEM (split at the map limit).
    """
    vma = mm.mm_rb.find_vma(start)
    if vma is None or vma.vm_start >= end:
        return 0
    last = mm.mm_rb.find_vma(end - 1)
    for v in (vma, last):  # hugetlb_vm_op_split(): hugetlb areas split only on huge pages
        if v is not None and v.vm_flags & VM_HUGETLB and v.vm_start < end and (
                (v.vm_start < start < v.vm_end and not hugetlb_split_ok(v, start))
                or (v.vm_start < end < v.vm_end and not hugetlb_split_ok(v, end))):
            return -m.EINVAL
    if start > vma.vm_start:
        # map_count may go one over the limit while unmapping, never stay over it
        if end < vma.vm_end and mm.map_count >= mm.kmem.sysctl.max_map_count:
            return -m.ENOMEM
        split_vma(mm, vma, start, new_below=True, check_limit=False)
    last = mm.mm_rb.find_vma(end - 1)
    if last is not None and last.vm_start < end < last.vm_end:
        split_vma(mm, last, end, new_below=False, check_limit=False)
    doomed = mm.mm_rb.range(start, end)
    shift = mm.kmem.page_shift
    for v in doomed:
        if v.vm_flags & VM_LOCKED:
            mm.locked_vm -= v.size >> shift
        vm_stat_account(mm, v.vm_flags, -(v.size >> shift))
    for v in doomed:
        remove_vma(mm, v)
    unmap_region(mm, doomed, start, end)
    return 0


def do_munmap(mm: MmStruct, start: int, length: int) -> int:
    """munmap(2): EINVAL for an unaligned start, a zero or too large length."""
    if offset_in_page(mm, start) or start > mm.task_size or length > mm.task_size - start:
        return -m.EINVAL
    length = page_align(mm, length)
    if length == 0:
        return -m.EINVAL
    return do_munmap_range(mm, start, start + length)


# ---------------------------------------------------------------- get_unmapped_area
def get_unmapped_area(mm: MmStruct, file: File | None, addr: int, length: int, pgoff: int,
                      flags: int) -> int:
    """__get_unmapped_area() + arch_get_unmapped_area_topdown() (arch/x86/kernel/sys_x86_64.c).

    MAP_FIXED returns addr as is; a hint is used if the range there is
    free (guard gaps included); otherwise the highest free range below
    mmap_base, falling back to a bottom-up search. -ENOMEM if none.
    """
    ps = mm.kmem.page_size
    task_size = mm.task_size
    if length > task_size:
        return -m.ENOMEM
    if flags & m.MAP_FIXED:
        if addr > task_size - length:
            return -m.ENOMEM
        if addr & (ps - 1):
            return -m.EINVAL
        return security_mmap_addr(mm, addr)
    tree = mm.mm_rb
    min_addr = max(mm.kmem.sysctl.mmap_min_addr, ps)
    # arch_get_mmap_end()/DEFAULT_MAP_WINDOW: without a hint above the default window
    # (x86-64 LA57, RISC-V Sv57, PowerPC 64K) mmap stays below it; a hint above it opens
    # the whole space and lifts mmap_base by the difference.
    window = mm.mmap_window or task_size
    base = mm.mmap_base
    if addr and addr > window:
        base += task_size - window
        window = task_size
    if addr:
        addr = page_align(mm, addr)
        vma, prev = tree.find_vma_prev(addr)
        if (window - length >= addr and addr >= min_addr
                and (vma is None or addr + length <= tree.vm_start_gap(vma))
                and (prev is None or addr >= tree.vm_end_gap(prev))):
            return addr
    if not mm.mmap_topdown:  # arch_get_unmapped_area(): the legacy bottom-up layout
        found = tree.unmapped_area(length, mm.mmap_legacy_base, window)
        return -m.ENOMEM if found is None else found
    found = tree.unmapped_area_topdown(length, min_addr, base)
    if found is None:
        found = tree.unmapped_area(length, mm.mmap_legacy_base, window)
    return -m.ENOMEM if found is None else found


def security_mmap_addr(mm: MmStruct, addr: int) -> int:
    """cap_mmap_addr(): below vm.mmap_min_addr only with CAP_SYS_RAWIO; addr or -EPERM."""
    if addr < mm.kmem.sysctl.mmap_min_addr and not mm.rlimits.cap_sys_rawio:
        return -m.EPERM
    return addr


# ---------------------------------------------------------------- mmap
def calc_vm_prot_bits(prot: int) -> int:
    return (VM_READ if prot & m.PROT_READ else 0) | (VM_WRITE if prot & m.PROT_WRITE else 0) | (
        VM_EXEC if prot & m.PROT_EXEC else 0)


def calc_vm_flag_bits(flags: int) -> int:
    """calc_vm_flag_bits() (include/linux/mman.h); MAP_STACK means "no huge pages" (THP)."""
    return ((VM_GROWSDOWN if flags & m.MAP_GROWSDOWN else 0) | (VM_LOCKED if flags & m.MAP_LOCKED else 0)
            | (VM_SYNC if flags & m.MAP_SYNC else 0) | (VM_NOHUGEPAGE if flags & m.MAP_STACK else 0))


MAX_LFS_FILESIZE = (1 << 63) - 1


def file_mmap_ok(mm: MmStruct, pgoff: int, length: int) -> bool:
    """file_mmap_ok(): offset and length stay within MAX_LFS_FILESIZE (a regular file)."""
    if length > MAX_LFS_FILESIZE:
        return False
    return pgoff <= (MAX_LFS_FILESIZE - length) >> mm.kmem.page_shift


def do_mmap(mm: MmStruct, file: File | None, addr: int, length: int, prot: int, flags: int,
            pgoff: int) -> tuple[int, int]:
    """do_mmap(): checks in Linux's order, area choice, flags; then mmap_region.

    Returns (address or -errno, number of bytes to populate afterwards).
    """
    shift = mm.kmem.page_shift
    if length == 0:
        return -m.EINVAL, 0
    if flags & m.MAP_FIXED_NOREPLACE:
        flags |= m.MAP_FIXED
    if not flags & m.MAP_FIXED:  # round_hint_to_min(): round down, but not below the minimum
        addr &= ~(mm.kmem.page_size - 1)
        if addr and addr < mm.kmem.sysctl.mmap_min_addr:
            addr = page_align(mm, mm.kmem.sysctl.mmap_min_addr)
    length = page_align(mm, length)
    if length == 0 or length >= 1 << 64:
        return -m.ENOMEM, 0
    if pgoff + (length >> shift) >= 1 << 64:
        return -m.EOVERFLOW, 0
    if mm.map_count > mm.kmem.sysctl.max_map_count:
        return -m.ENOMEM, 0
    vm_flags = (calc_vm_prot_bits(prot) | calc_vm_flag_bits(flags) | mm.def_flags
                | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC)
    addr = get_unmapped_area(mm, file, addr, length, pgoff, flags)
    if addr < 0:
        return addr, 0
    if flags & m.MAP_FIXED_NOREPLACE and mm.mm_rb.find_vma_intersection(addr, addr + length):
        return -m.EEXIST, 0
    if flags & m.MAP_LOCKED and not can_do_mlock(mm):
        return -m.EPERM, 0
    if not mlock_future_ok(mm, vm_flags, length):
        return -m.EAGAIN, 0
    map_type = flags & m.MAP_TYPE
    if file is not None:
        if not file_mmap_ok(mm, pgoff, length):
            return -m.EOVERFLOW, 0
        if map_type in (m.MAP_SHARED, m.MAP_SHARED_VALIDATE):
            if map_type == m.MAP_SHARED:
                flags &= m.LEGACY_MAP_MASK
            if flags & ~m.LEGACY_MAP_MASK:  # no DAX files, so MAP_SYNC is unsupported too
                return -m.EOPNOTSUPP, 0
            if prot & m.PROT_WRITE and not file.writable:
                return -m.EACCES, 0
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not file.writable:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        elif map_type != m.MAP_PRIVATE:
            return -m.EINVAL, 0
        if not file.readable:
            return -m.EACCES, 0
        if not file.inode.mmap_supported:
            return -m.ENODEV, 0
        if vm_flags & VM_GROWSDOWN:
            return -m.EINVAL, 0
    elif map_type == m.MAP_SHARED:
        if vm_flags & VM_GROWSDOWN:
            return -m.EINVAL, 0
        pgoff = 0
        vm_flags |= VM_SHARED | VM_MAYSHARE
    elif map_type in (m.MAP_PRIVATE, m.MAP_DROPPABLE):
        if map_type == m.MAP_DROPPABLE:
            if flags & (m.MAP_LOCKED | m.MAP_HUGETLB) or vm_flags & VM_GROWSDOWN:
                return -m.EINVAL, 0
            # never charged, never dumped, not inherited: the contents are disposable
            vm_flags |= VM_DROPPABLE | VM_NORESERVE | VM_WIPEONFORK | VM_DONTDUMP
        pgoff = addr >> shift
    else:
        return -m.EINVAL, 0  # MAP_SHARED_VALIDATE is not for anonymous memory
    if flags & m.MAP_NORESERVE and mm.kmem.sysctl.overcommit_memory != 2:
        vm_flags |= VM_NORESERVE
    result = mmap_region(mm, file, addr, length, vm_flags, pgoff)
    populate = 0
    if result >= 0 and (vm_flags & VM_LOCKED or (
            flags & (m.MAP_POPULATE | m.MAP_NONBLOCK)) == m.MAP_POPULATE):
        populate = length
    return result, populate


def shmem_zero_setup(mm: MmStruct, length: int) -> File:
    """shmem_zero_setup(): a shared anonymous mapping is backed by an unlinked tmpfs file."""
    kmem = mm.kmem
    kmem.vm_stat["shmem_ino"] += 1
    inode = Inode(ino=kmem.vm_stat["shmem_ino"] + 1000, dev=(0, 1), i_size=length,
                  backing=None, shmem=True)
    return File(inode, "/dev/zero", FMODE_READ | FMODE_WRITE, deleted=True)


def mmap_region(mm: MmStruct, file: File | None, addr: int, length: int, vm_flags: int,
                pgoff: int) -> int:
    """mmap_region(): replace whatever is in [addr, addr+len), then merge or add a VMA."""
    shift = mm.kmem.page_shift
    end = addr + length
    npages = length >> shift
    if file is not None and vm_flags & VM_SYNC:
        return -m.EOPNOTSUPP  # the file's ->mmap refuses: no file system here is DAX
    if not may_expand_vm(mm, vm_flags, npages):
        overlap = sum((min(end, v.vm_end) - max(addr, v.vm_start)) >> shift
                      for v in mm.mm_rb.range(addr, end))
        if not may_expand_vm(mm, vm_flags, npages - overlap):
            return -m.ENOMEM
    if mm.mm_rb.find_vma_intersection(addr, end) is not None:
        err = do_munmap_range(mm, addr, end)
        if err:
            return err
    if (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE:  # accountable_mapping()
        vm_flags |= VM_ACCOUNT
    if file is None and vm_flags & VM_SHARED:
        file = shmem_zero_setup(mm, length)
    vma: Vma | None = None
    if file is None or not file.inode.shmem:
        vma = vma_merge_new_range(mm, addr, end, vm_flags, file, pgoff)
    if vma is None:
        vma = Vma(addr, end, vm_flags, 0, pgoff, file)
        vma_link(mm, vma)
    if mm.kmem.sysctl.mem_soft_dirty:
        vma.vm_flags |= VM_SOFTDIRTY  # new or expanded, the area starts soft-dirty
    vma_set_page_prot(mm, vma)
    vm_stat_account(mm, vm_flags, npages)
    if vm_flags & VM_LOCKED:
        if vm_flags & VM_SPECIAL:
            vma.vm_flags &= ~VM_LOCKED_MASK
        else:
            mm.locked_vm += npages
    if mm.kmem.events.active:
        mm.kmem.events.emit("mmap", mm=mm.owner_pid, start=addr, end=end, flags=vm_flags)
    return addr


# ---------------------------------------------------------------- brk
def do_brk_flags(mm: MmStruct, addr: int, length: int, vm_flags: int) -> int:
    """do_brk_flags(): grow the heap by an anonymous private area (merging with the old heap)."""
    shift = mm.kmem.page_shift
    npages = length >> shift
    if not may_expand_vm(mm, vm_flags, npages):
        return -m.ENOMEM
    if mm.map_count > mm.kmem.sysctl.max_map_count:
        return -m.ENOMEM
    vm_flags |= VM_DATA_DEFAULT | VM_ACCOUNT | mm.def_flags
    prev = mm.mm_rb.find_vma_prev(addr)[1]
    vma = None
    if prev is not None and prev.vm_end == addr:
        vma = vma_merge_new_range(mm, addr, addr + length, vm_flags, None, addr >> shift,
                                  just_expand=True)
    if vma is None:
        vma = Vma(addr, addr + length, vm_flags, 0, addr >> shift, None)
        vma_set_page_prot(mm, vma)
        vma_link(mm, vma)
    if mm.kmem.sysctl.mem_soft_dirty:
        vma.vm_flags |= VM_SOFTDIRTY
    vm_stat_account(mm, vm_flags, npages)
    if vm_flags & VM_LOCKED:
        mm.locked_vm += npages
    return 0


VM_DATA_DEFAULT = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


def sys_brk(mm: MmStruct, brk: int) -> int:
    """brk(2): move the program break; returns the new (or unchanged) break, never -errno."""
    ps = mm.kmem.page_size
    min_brk = mm.start_brk
    if brk < min_brk:
        return mm.brk
    if mm.rlimits.data != (1 << 64) - 1 and (
            brk - mm.start_brk + mm.end_data - mm.start_data > mm.rlimits.data):
        return mm.brk
    newbrk = page_align(mm, brk)
    oldbrk = page_align(mm, mm.brk)
    if oldbrk == newbrk:
        mm.brk = brk
        return brk
    if brk <= mm.brk:
        # Shrink: only if a VMA is there to unmap (Linux 6.1+), else the break stays.
        brkvma = mm.mm_rb.find_vma_intersection(newbrk, oldbrk)
        if brkvma is None or brkvma.vm_start >= oldbrk:
            return mm.brk
        if do_munmap_range(mm, newbrk, oldbrk) == 0:
            mm.brk = brk
            return brk
        return mm.brk
    # check_brk_limits(): the range must be mappable and, under mlockall(MCL_FUTURE),
    # lockable within RLIMIT_MEMLOCK.
    if get_unmapped_area(mm, None, oldbrk, newbrk - oldbrk, 0, m.MAP_FIXED) < 0:
        return mm.brk
    if not mlock_future_ok(mm, mm.def_flags, newbrk - oldbrk):
        return mm.brk
    nxt = mm.mm_rb.find_vma(oldbrk)
    if nxt is not None and newbrk + ps > mm.mm_rb.vm_start_gap(nxt):
        return mm.brk
    if do_brk_flags(mm, oldbrk, newbrk - oldbrk, 0) < 0:
        return mm.brk
    mm.brk = brk
    if mm.def_flags & VM_LOCKED:
        mm_populate(mm, oldbrk, newbrk)
    return brk



def exit_mmap(mm: MmStruct) -> None:
    """exit_mmap(): unmap everything, free every table and the PGD."""
    vmas = list(mm.mm_rb)
    for vma in vmas:
        remove_vma(mm, vma)
    unmap_region(mm, vmas, 0, 1 << 64)
    pgd_free(mm.kmem, mm)
    mm.total_vm = mm.locked_vm = mm.data_vm = mm.exec_vm = mm.stack_vm = 0
