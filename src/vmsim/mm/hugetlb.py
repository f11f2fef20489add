"""hugetlbfs huge pages: a boot-time pool, MAP_HUGETLB areas, leaves above the last level.

Models mm/hugetlb.c: one `HState` per huge-page size the mode's large-leaf
levels allow (x86-64: 2 MiB PMD and 1 GiB PUD leaves; i386: 4 MiB PDE
leaves; PAE: 2 MiB; ...), each with a pool reserved at boot
(``hugepages=``, here `Machine(hugepages={"2M": 16})`). A MAP_HUGETLB
mapping reserves its pages at mmap time (hugetlb_reserve_pages(): ENOMEM
when the pool cannot cover it, unless MAP_NORESERVE), takes one from the pool
on first touch (hugetlb_no_page()), maps it as one leaf at the size's level
(set_huge_pte_at()) and gives it back when the last reference goes
(free_huge_folio()). fork shares private pages write-protected and the first
write copies the whole huge page (hugetlb_wp()); shared areas keep their
pages in the mapping's "file" (the hugetlbfs inode of an anonymous mapping).
Huge pages are not in RSS: /proc/PID/status has HugetlbPages, smaps has
Private_Hugetlb/Shared_Hugetlb.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmsim.mm import mman as m
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pmd_alloc_level, pmd_offset_level, vm_get_page_prot
from vmsim.mm.physmem import parse_size
from vmsim.mm.vma import (
    VM_DONTEXPAND,
    VM_HUGETLB,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NORESERVE,
    VM_SHARED,
    VM_WRITE,
    Vma,
)

if TYPE_CHECKING:
    from vmsim.arch.paging import PagingMode
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.mm_struct import MmStruct

#: The largest huge-page size vmsim offers (Linux's gigantic pages stop at the PUD).
MAX_HUGE_SIZE = 1 << 30


@dataclass
class HState:
    """struct hstate: one huge-page size, its level and its pool."""

    size: int
    level: int  # the table level whose entries are leaves of this size
    nr_pages: int = 0  # HugePages_Total
    free: list[int] = field(default_factory=list)  # head pfns of free huge pages
    resv: int = 0  # HugePages_Rsvd: reserved at mmap, not yet faulted

    @property
    def free_count(self) -> int:
        return len(self.free)

    def available(self) -> int:
        """Pages neither in use nor promised to a reservation."""
        return len(self.free) - self.resv


@dataclass(eq=False)
class HugetlbArea:
    """What a VM_HUGETLB area's vm_private_data holds: its size, its reservations (huge-page
    indices still promised, resv_map) and, when shared, the pages of its hugetlbfs inode."""

    hstate: HState
    shared: bool
    reserved: set[int] = field(default_factory=set)
    pages: dict[int, int] = field(default_factory=dict)
    users: int = 1  # VMAs referring to it (split and fork add, unmap drops)


def huge_sizes(mode: PagingMode) -> dict[int, int]:
    """Huge-page size -> level for each level the mode allows a leaf at (up to 1 GiB)."""
    out = {}
    for lvl in range(len(mode.levels) - 1):
        if mode.levels[lvl].leaf_ok and mode.level_span(lvl) <= MAX_HUGE_SIZE:
            out[mode.level_span(lvl)] = lvl
    return out


def hugetlb_init(kmem: Kmem, end_pfn: int, spec: dict[str, int] | None) -> int:
    """hugetlb_init() with ``hugepages=`` on the command line: carve each pool from the top of
    RAM (below `end_pfn`), aligned to its size; returns the new end of the buddy's range.

    A size the mode has no leaf for is a ValueError; a pool that does not fit gets what does
    (as the kernel allocates fewer pages than asked).
    """
    mode = kmem.mode
    sizes = huge_sizes(mode)
    kmem.hstates = {size: HState(size, lvl) for size, lvl in sorted(sizes.items())}
    for name, count in sorted((spec or {}).items(), key=lambda kv: -parse_size(kv[0])):
        size = parse_size(name)
        hs = kmem.hstates.get(size)
        if hs is None:
            raise ValueError(f"hugetlb_init: no {name} huge pages on {mode.name} "
                             f"(sizes: {', '.join(_size_name(s) for s in sizes) or 'none'})")
        npg = size >> kmem.page_shift
        for _ in range(count):
            head = (end_pfn - npg) & ~(npg - 1)
            if head < 16:  # frame 0, the zero page and the first tables stay ordinary RAM
                break
            hs.free.append(head)
            hs.nr_pages += 1
            end_pfn = head
    for pfn in range(end_pfn, kmem.nr_frames):
        kmem.mem_map.flags_mv[pfn] = _PG_RESERVED
    for hs in kmem.hstates.values():
        hs.free.reverse()  # lowest first
    return end_pfn


def _size_name(size: int) -> str:
    return f"{size >> 30}G" if size >= 1 << 30 else f"{size >> 20}M" if size >= 1 << 20 else f"{size >> 10}K"


def default_hstate(kmem: Kmem) -> HState | None:
    """default_hstate: the smallest size (the PMD leaf: HPAGE_SIZE)."""
    return next(iter(kmem.hstates.values()), None)


def hstate_vma(vma: Vma) -> HState:
    area = vma.vm_private_data
    assert isinstance(area, HugetlbArea), f"hstate_vma: {vma!r} is not a hugetlb area"
    return area.hstate


def vma_huge_index(vma: Vma, addr: int, page_shift: int) -> int:
    """The huge-page index of `addr` in the area's (hugetlbfs) file."""
    hs = hstate_vma(vma)
    return (addr - vma.vm_start + (vma.vm_pgoff << page_shift)) // hs.size


# ------------------------------------------------------------------------ mmap
def hugetlb_mmap(mm: MmStruct, addr: int, length: int, prot: int, flags: int) -> int:
    """ksys_mmap_pgoff() with MAP_HUGETLB (anonymous): the address or -errno.

    The size comes from MAP_HUGE_* (0: the default size); one the machine has no hstate for
    is EINVAL; the length is rounded up to the huge-page size; a MAP_FIXED address must be
    aligned (EINVAL); the pages are reserved now (ENOMEM when the pool cannot cover them).
    """
    from vmsim.mm.mmap import (
        calc_vm_flag_bits,
        calc_vm_prot_bits,
        do_munmap_range,
        security_mmap_addr,
        vm_stat_account,
        vma_link,
    )

    kmem = mm.kmem
    size_log = (flags >> m.MAP_HUGE_SHIFT) & m.MAP_HUGE_MASK
    hs = kmem.hstates.get(1 << size_log) if size_log else default_hstate(kmem)
    if hs is None:
        return -m.EINVAL
    if length == 0:
        return -m.EINVAL
    hsize = hs.size
    length = (length + hsize - 1) & ~(hsize - 1)
    if length > mm.task_size:
        return -m.ENOMEM
    map_type = flags & m.MAP_TYPE
    if map_type not in (m.MAP_PRIVATE, m.MAP_SHARED):
        return -m.EINVAL
    if flags & m.MAP_FIXED_NOREPLACE:
        flags |= m.MAP_FIXED
    if flags & m.MAP_FIXED:
        if addr & (hsize - 1):
            return -m.EINVAL
        if addr > mm.task_size - length:
            return -m.ENOMEM
        got = security_mmap_addr(mm, addr)
        if got < 0:
            return got
        if flags & m.MAP_FIXED_NOREPLACE and mm.mm_rb.find_vma_intersection(addr, addr + length):
            return -m.EEXIST
    else:
        found = hugetlb_get_unmapped_area(mm, addr, length, hsize)
        if found is None:
            return -m.ENOMEM
        addr = found
    npages = length // hsize
    reserve = not flags & m.MAP_NORESERVE
    if reserve and hs.available() < npages:  # hugetlb_reserve_pages(): -ENOMEM
        return -m.ENOMEM
    if mm.mm_rb.find_vma_intersection(addr, addr + length) is not None:
        err = do_munmap_range(mm, addr, addr + length)
        if err:
            return err
    vm_flags = (calc_vm_prot_bits(prot) | calc_vm_flag_bits(flags) | mm.def_flags
                | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_HUGETLB | VM_DONTEXPAND)
    shared = map_type == m.MAP_SHARED
    if shared:
        vm_flags |= VM_SHARED | VM_MAYSHARE
    if not reserve:
        vm_flags |= VM_NORESERVE
    area = HugetlbArea(hs, shared)
    if reserve:
        area.reserved = set(range(npages))
        hs.resv += npages
    vma = Vma(addr, addr + length, vm_flags, 0, 0)
    vma.vm_private_data = area
    vma.vm_page_prot = vm_get_page_prot(kmem, vm_flags)
    vma_link(mm, vma)
    vm_stat_account(mm, vm_flags, length >> kmem.page_shift)
    if flags & m.MAP_POPULATE:
        for a in range(addr, addr + length, hsize):
            hugetlb_fault(mm, vma, a, 1 if vm_flags & VM_WRITE else 0)
    return addr


def hugetlb_get_unmapped_area(mm: MmStruct, addr: int, length: int, hsize: int) -> int | None:
    """hugetlb_get_unmapped_area(): a hint if aligned and free, else the top-down search with
    the huge-page alignment (align_mask), else bottom-up."""
    tree = mm.mm_rb
    window = mm.mmap_window or mm.task_size
    if addr:
        addr = (addr + hsize - 1) & ~(hsize - 1)
        vma, prev = tree.find_vma_prev(addr)
        if (window - length >= addr and addr >= mm.kmem.sysctl.mmap_min_addr
                and (vma is None or addr + length <= tree.vm_start_gap(vma))
                and (prev is None or addr >= tree.vm_end_gap(prev))):
            return addr
    align = hsize - mm.kmem.page_size
    low = max(mm.kmem.sysctl.mmap_min_addr, mm.kmem.page_size)
    found = tree.unmapped_area_topdown(length, low, mm.mmap_base, align_mask=align)
    if found is None:
        found = tree.unmapped_area(length, mm.mmap_legacy_base, window, align_mask=align)
    return found


# ------------------------------------------------------------------------ entries
def make_huge_leaf(kmem: Kmem, level: int, pfn: int, prot: int) -> int:
    """mk_huge_pte(): a leaf at `level` for the huge page at `pfn` with leaf flags `prot`
    (x86: PS set; ARM64: a block descriptor, bit 1 clear; RISC-V and PowerPC leaves are
    already leaves by their R/W/X or _PAGE_PTE bits)."""
    mode = kmem.mode
    entry = mode.make_entry(pfn, prot)
    _shift, _mask, _present, tmask, tval, _leaf_ok, _tflags = kmem.pt_steps[level]
    if entry & tmask == tval:
        entry = (entry & ~tmask) | (tval ^ tmask)
    return entry


def _leaf_prot(kmem: Kmem, vma: Vma, write: bool) -> int:
    b = kmem.mode.bits
    prot = vma.vm_page_prot | b.accessed
    if write:
        prot = (prot | b.write | b.dirty) & ~kmem.wr_clear
    return prot


def _alloc_huge(kmem: Kmem, area: HugetlbArea, idx: int | None) -> int | None:
    """alloc_hugetlb_folio(): a zeroed page from the pool, using the reservation for `idx`
    if there is one; None when the pool has nothing unreserved."""
    hs = area.hstate
    if idx is not None and idx in area.reserved:
        area.reserved.discard(idx)
        hs.resv -= 1
    elif hs.available() <= 0:
        return None
    pfn = hs.free.pop()
    npg = hs.size >> kmem.page_shift
    ps = kmem.page_size
    kmem.phys.mv[pfn * ps:(pfn + npg) * ps] = bytes(npg * ps)
    kmem.mem_map.refcount_mv[pfn] = 1
    kmem.mem_map.mapcount_mv[pfn] = 0
    kmem.mem_map.flags_mv[pfn] = _PG_HEAD
    return pfn


def put_huge_page(kmem: Kmem, hs: HState, pfn: int) -> None:
    """folio_put() of a huge page: the last reference returns it to the pool."""
    mem_map = kmem.mem_map
    count = mem_map.refcount_mv[pfn] - 1
    if count < 0:
        raise AssertionError(f"put_huge_page: pfn {pfn:#x} refcount underflow")
    mem_map.refcount_mv[pfn] = count
    if count == 0:
        mem_map.flags_mv[pfn] = _PG_RESERVED
        hs.free.append(pfn)


# ------------------------------------------------------------------------ faults
def hugetlb_fault(mm: MmStruct, vma: Vma, address: int, access: int) -> tuple[int, str]:
    """hugetlb_fault(): (VmFault bits, kind) for a fault in a VM_HUGETLB area."""
    from vmsim.mm.fault import VmFault

    kmem = mm.kmem
    area = vma.vm_private_data
    assert isinstance(area, HugetlbArea)
    hs = area.hstate
    haddr = address & ~(hs.size - 1)
    slot = pmd_alloc_level(kmem, mm, haddr, hs.level)
    if slot < 0:
        return VmFault.OOM, "oom"
    es = kmem.mode.entry_size
    b = kmem.mode.bits
    entry = kmem.pt.read_entry(slot, es)
    write = bool(access & 1)
    mem_map = kmem.mem_map
    if entry == 0:  # hugetlb_no_page()
        idx = vma_huge_index(vma, haddr, kmem.page_shift)
        if area.shared:
            pfn = area.pages.get(idx)
            if pfn is None:
                pfn = _alloc_huge(kmem, area, idx)
                if pfn is None:
                    return VmFault.SIGBUS, "sigbus"
                area.pages[idx] = pfn  # the hugetlbfs page cache holds the first reference
            mem_map.refcount_mv[pfn] += 1
            leaf_write = bool(vma.vm_flags & VM_WRITE)
        else:
            got = _alloc_huge(kmem, area, idx)
            if got is None:
                return VmFault.SIGBUS, "sigbus"
            pfn = got
            leaf_write = write
        mem_map.mapcount_mv[pfn] += 1
        prot = _leaf_prot(kmem, vma, leaf_write)
        if leaf_write and not write:
            prot &= ~b.dirty
            prot |= kmem.wr_clear
        kmem.pt.write_entry(slot, es, make_huge_leaf(kmem, hs.level, pfn, prot))
        mm.hugetlb_usage += hs.size
        return VmFault.HANDLED, "hugetlb"
    if write and not entry & b.write:  # hugetlb_wp()
        pfn = kmem.mode.entry_pfn(entry) & ~((hs.size >> kmem.page_shift) - 1)
        if area.shared or mem_map.refcount_mv[pfn] == 1:
            kmem.pt.write_entry(slot, es, (entry | b.write | b.dirty | b.accessed) & ~kmem.wr_clear)
            _flush(mm, haddr, hs.size)
            return VmFault.HANDLED, "hugetlb-wp-reuse"
        new = _alloc_huge(kmem, area, None)
        if new is None:
            return VmFault.SIGBUS, "sigbus"
        ps = kmem.page_size
        kmem.phys.mv[new * ps:new * ps + hs.size] = kmem.phys.mv[pfn * ps:pfn * ps + hs.size]
        mem_map.mapcount_mv[pfn] -= 1
        put_huge_page(kmem, hs, pfn)
        mem_map.mapcount_mv[new] += 1
        kmem.pt.write_entry(slot, es, make_huge_leaf(kmem, hs.level, new, _leaf_prot(kmem, vma, True)))
        _flush(mm, haddr, hs.size)
        kmem.vm_event["cow_copy"] += 1
        return VmFault.HANDLED, "hugetlb-wp-copy"
    new_entry = entry | b.accessed | (b.dirty if write else 0)
    if new_entry != entry:
        kmem.pt.write_entry(slot, es, new_entry)
    return VmFault.HANDLED, "spurious"


def _flush(mm: MmStruct, start: int, size: int) -> None:
    from vmsim.mm.tlb import flush_tlb_range

    flush_tlb_range(mm, start, start + size)


def huge_leaves(mm: MmStruct, vma: Vma, start: int | None = None,
                end: int | None = None) -> list[tuple[int, int, int]]:
    """(address, entry address, entry) of every huge leaf of `vma` in [start, end)."""
    kmem = mm.kmem
    hs = hstate_vma(vma)
    lo = vma.vm_start if start is None else max(start, vma.vm_start)
    hi = vma.vm_end if end is None else min(end, vma.vm_end)
    es = kmem.mode.entry_size
    out = []
    for a in range(lo & ~(hs.size - 1), hi, hs.size):
        slot = pmd_offset_level(kmem, mm.pgd, a, hs.level)
        if slot < 0:
            continue
        entry = kmem.pt.read_entry(slot, es)
        if entry and kmem.mode.is_present(entry):
            out.append((a, slot, entry))
    return out


def huge_pfn(kmem: Kmem, hs: HState, entry: int) -> int:
    return kmem.mode.entry_pfn(entry) & ~((hs.size >> kmem.page_shift) - 1)


# ------------------------------------------------------------------------ unmap, fork, mprotect
def unmap_hugepage_range(mm: MmStruct, vma: Vma, start: int, end: int, removing: bool) -> None:
    """__unmap_hugepage_range(): clear the leaves in [start, end), drop their references and
    the area's unused reservations there; `removing`: the VMA goes (its last user frees a
    shared area's pages and reservations, hugetlb_vm_op_close())."""
    kmem = mm.kmem
    area = vma.vm_private_data
    assert isinstance(area, HugetlbArea)
    hs = area.hstate
    es = kmem.mode.entry_size
    for _a, slot, entry in huge_leaves(mm, vma, start, end):
        pfn = huge_pfn(kmem, hs, entry)
        kmem.pt.write_entry(slot, es, 0)
        kmem.mem_map.mapcount_mv[pfn] -= 1
        put_huge_page(kmem, hs, pfn)
        mm.hugetlb_usage -= hs.size
    _flush(mm, start, end - start)
    if not area.shared:
        first = vma_huge_index(vma, max(start, vma.vm_start), kmem.page_shift)
        last = vma_huge_index(vma, min(end, vma.vm_end) - 1, kmem.page_shift)
        gone = {i for i in area.reserved if first <= i <= last}
        area.reserved -= gone
        hs.resv -= len(gone)
    if removing:
        area.users -= 1
        if area.users == 0 and area.shared:
            for pfn in area.pages.values():
                put_huge_page(kmem, hs, pfn)
            area.pages.clear()
            hs.resv -= len(area.reserved)
            area.reserved.clear()


def copy_hugetlb_page_range(dst: MmStruct, src: MmStruct, dst_vma: Vma, src_vma: Vma) -> bool:
    """copy_hugetlb_page_range(): the child shares every huge page; private writable leaves
    are write-protected in both (COW). The child's private area has no reservations."""
    kmem = src.kmem
    area = src_vma.vm_private_data
    assert isinstance(area, HugetlbArea)
    hs = area.hstate
    if area.shared:
        area.users += 1
        dst_vma.vm_private_data = area
    else:
        dst_vma.vm_private_data = HugetlbArea(hs, False)
    es = kmem.mode.entry_size
    b = kmem.mode.bits
    cow = not area.shared and bool(src_vma.vm_flags & VM_MAYWRITE)
    for a, slot, entry in huge_leaves(src, src_vma):
        dslot = pmd_alloc_level(kmem, dst, a, hs.level)
        if dslot < 0:
            return False
        if cow and entry & b.write:
            entry = kmem.pte_wrprotect(entry)
            kmem.pt.write_entry(slot, es, entry)
        kmem.pt.write_entry(dslot, es, entry)
        pfn = huge_pfn(kmem, hs, entry)
        kmem.mem_map.refcount_mv[pfn] += 1
        kmem.mem_map.mapcount_mv[pfn] += 1
        dst.hugetlb_usage += hs.size
    if cow:
        _flush(src, src_vma.vm_start, src_vma.size)
    return True


def hugetlb_change_protection(mm: MmStruct, vma: Vma, start: int, end: int) -> None:
    """hugetlb_change_protection(): each leaf in [start, end) takes the area's new
    protection, keeping its frame and accessed/dirty state (write only for shared areas)."""
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    hs = hstate_vma(vma)
    keep = mode.pfn_mask | b.accessed | b.dirty | b.special
    for _a, slot, entry in huge_leaves(mm, vma, start, end):
        new = (entry & keep) | (vma.vm_page_prot & ~keep)
        if vma.vm_flags & VM_SHARED and vma.vm_flags & VM_WRITE and kmem.pte_dirty(entry):
            new = (new | b.write | b.dirty) & ~kmem.wr_clear
        kmem.pt.write_entry(slot, mode.entry_size,
                            make_huge_leaf(kmem, hs.level, mode.entry_pfn(new), new))
    _flush(mm, start, end - start)


def hugetlb_split_ok(vma: Vma, addr: int) -> bool:
    """hugetlb_vm_op_split(): a hugetlb area splits only at a huge-page boundary."""
    return not addr & (hstate_vma(vma).size - 1)


_PG_RESERVED = int(PG.reserved)  # a pool page not in use is not the buddy's
_PG_HEAD = int(PG.head)
