"""Page-table edits through the arch declaration (mm/pgtable-generic.c, mm/memory.c).

Tables are frames from the buddy allocator, filled with entries in the
hardware format of `kmem.mode`; every function here works for any mode
because it reads geometry and bit positions from the declaration.
A large-page leaf is never created here (that is hugetlb's job) but is
recognised, so lookups stop at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from vmsim.mm.page import PG

if TYPE_CHECKING:
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.mm_struct import MmStruct


def vm_get_page_prot(kmem: Kmem, vm_flags: int) -> int:
    """vm_get_page_prot(): leaf flags for VM_READ|VM_WRITE|VM_EXEC|VM_SHARED."""
    return kmem.mode.protection_map[vm_flags & 0xF]


def _alloc_table(kmem: Kmem, mm: MmStruct | None, level: int) -> int | None:
    """A zeroed table frame for `level`, accounted in mm.pgtables_bytes."""
    pfn = kmem.buddy.alloc_pages(0)
    if pfn is None:
        return None
    kmem.phys.zero_frame(pfn)
    kmem.mem_map.flags_mv[pfn] = PG.pgtable
    if mm is not None:
        mm.pgtables_bytes += kmem.mode.table_sizes[level]
    kmem.vm_stat["nr_page_table_pages"] += 1
    return pfn


def _free_table(kmem: Kmem, mm: MmStruct | None, pfn: int, level: int) -> None:
    kmem.mem_map.flags_mv[pfn] = 0
    kmem.buddy.free_pages(pfn, 0)
    if mm is not None:
        mm.pgtables_bytes -= kmem.mode.table_sizes[level]
    kmem.vm_stat["nr_page_table_pages"] -= 1


def pgd_alloc(kmem: Kmem, mm: MmStruct) -> int | None:
    """pgd_alloc(): the top-level table; returns its physical address or None."""
    pfn = _alloc_table(kmem, mm, 0)
    return None if pfn is None else pfn << kmem.page_shift


def pte_offset(kmem: Kmem, root: int, va: int) -> int:
    """The physical address of va's last-level entry, or -1 if a table is missing.

    Also -1 when a higher level holds a large-page leaf.
    """
    (es, present, _rw, _us, _nx, huge, _a, _d, steps, last, pfn_mask, pfn_shift, page_shift,
     _ps, _sign, _top) = kmem.mode.walk_consts
    read = kmem.phys.read_entry
    table = root
    for shift, mask, leaf_ok, _rsvd in steps[:last]:
        entry = read(table + ((va >> shift) & mask) * es, es)
        if not entry & present or (leaf_ok and entry & huge):
            return -1
        table = (entry & pfn_mask) >> pfn_shift << page_shift
    shift, mask, _, _ = steps[last]
    return table + ((va >> shift) & mask) * es


def pte_alloc(kmem: Kmem, mm: MmStruct, va: int) -> int:
    """__pte_alloc and friends: the entry address for va, allocating missing tables; -1 on OOM."""
    mode = kmem.mode
    (es, present, _rw, _us, _nx, huge, _a, _d, steps, last, pfn_mask, pfn_shift, page_shift,
     _ps, _sign, _top) = mode.walk_consts
    phys = kmem.phys
    read = phys.read_entry
    table = mm.pgd
    for lvl in range(last):
        shift, mask, leaf_ok, _rsvd = steps[lvl]
        addr = table + ((va >> shift) & mask) * es
        entry = read(addr, es)
        if not entry & present:
            pfn = _alloc_table(kmem, mm, lvl + 1)
            if pfn is None:
                return -1
            entry = mode.make_entry(pfn, mode.table_flags)
            phys.write_entry(addr, es, entry)
        elif leaf_ok and entry & huge:
            raise AssertionError(f"pte_alloc: {va:#x} is inside a large-page leaf")
        table = (entry & pfn_mask) >> pfn_shift << page_shift
    shift, mask, _, _ = steps[last]
    return table + ((va >> shift) & mask) * es


def pte_free_new(kmem: Kmem, mm: MmStruct, va: int) -> None:
    """Undo the last-level table pte_alloc() made for va if it is still empty.

    The kernel allocates a file fault's page table only when it maps a page
    (pmd_install() from fault-around or finish_fault()); vmsim allocates it
    first, so a fault that mapped nothing gives it back. Upper levels stay,
    as __handle_mm_fault() leaves them.
    """
    mode = kmem.mode
    es = mode.entry_size
    last = len(mode.levels) - 1
    table = mm.pgd
    entry_addr = 0
    for lvl in range(last):
        shift = mode.shifts[lvl]
        entry_addr = table + ((va >> shift) & (mode.ptrs_per[lvl] - 1)) * es
        entry = kmem.phys.read_entry(entry_addr, es)
        if not entry & mode.bits.present or (mode.levels[lvl].leaf_ok and entry & mode.bits.huge):
            return
        table = mode.entry_phys(entry)
    if pte_view(kmem, table).any():
        return
    kmem.phys.write_entry(entry_addr, es, 0)
    _free_table(kmem, mm, table >> kmem.page_shift, last)


def pte_tables(kmem: Kmem, root: int, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Existing last-level tables covering [start, end): (table_phys, first_idx, end_idx, va_of_idx0).

    Missing tables are skipped, which is what makes range operations cost
    in proportion to the page tables rather than to the address range.
    """
    mode = kmem.mode
    phys = kmem.phys
    es = mode.entry_size
    last = len(mode.levels) - 1

    def rec(table: int, lvl: int, base: int) -> Iterator[tuple[int, int, int, int]]:
        span = mode.level_span(lvl)
        lo = max(start, base)
        hi = min(end, base + span * mode.ptrs_per[lvl])
        if lo >= hi:
            return
        i0 = (lo - base) // span
        i1 = (hi - base + span - 1) // span
        if lvl == last:
            yield table, i0, i1, base
            return
        for i in range(i0, i1):
            entry = phys.read_entry(table + i * es, es)
            if not entry & mode.bits.present:
                continue
            if mode.levels[lvl].leaf_ok and entry & mode.bits.huge:
                continue
            yield from rec(mode.entry_phys(entry), lvl + 1, base + i * span)

    yield from rec(root, 0, 0)


def pte_view(kmem: Kmem, table: int) -> np.ndarray:
    """A writable numpy view of one last-level table's entries."""
    mode = kmem.mode
    n = mode.ptrs_per[-1]
    if mode.entry_size == 8:
        return kmem.phys.u64[table >> 3:(table >> 3) + n]
    return kmem.phys.u8[table:table + 4 * n].view(np.uint32)


def free_pgtables(kmem: Kmem, mm: MmStruct, addr: int, end: int, floor: int, ceiling: int) -> None:
    """free_pgd_range(): free tables under [addr, end) whose whole span lies in [floor, ceiling).

    `floor`/`ceiling` are the neighbouring VMAs' edges (ceiling 0 means the
    top of the address space), so tables still shared with a live VMA stay.
    The caller must have cleared every entry first (zap).
    """
    mode = kmem.mode
    phys = kmem.phys
    es = mode.entry_size
    last = len(mode.levels) - 1
    top = 1 << (mode.shifts[0] + mode.levels[0].bits)
    if ceiling == 0 or ceiling > top:
        ceiling = top

    def rec(table: int, lvl: int, base: int) -> None:
        span = mode.level_span(lvl)
        lo = max(addr, base)
        hi = min(end, base + span * mode.ptrs_per[lvl])
        if lo >= hi:
            return
        for i in range((lo - base) // span, (hi - base + span - 1) // span):
            entry_addr = table + i * es
            entry = phys.read_entry(entry_addr, es)
            if not entry & mode.bits.present or (mode.levels[lvl].leaf_ok and entry & mode.bits.huge):
                continue
            child = mode.entry_phys(entry)
            a = base + i * span
            if lvl + 1 < last:
                rec(child, lvl + 1, a)
            if floor <= a and a + span <= ceiling:
                if lvl + 1 == last and pte_view(kmem, child).any():
                    raise AssertionError(f"free_pgtables: table at {child:#x} still has live entries")
                phys.write_entry(entry_addr, es, 0)
                _free_table(kmem, mm, child >> kmem.page_shift, lvl + 1)

    rec(mm.pgd, 0, 0)


def pgd_free(kmem: Kmem, mm: MmStruct) -> None:
    """Free the top-level table (after free_pgtables emptied it)."""
    if mm.pgd:
        _free_table(kmem, mm, mm.pgd >> kmem.page_shift, 0)
        mm.pgd = 0
