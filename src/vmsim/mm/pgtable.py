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
    read = kmem.pt.read_entry
    es = kmem.mode.entry_size
    tmask_addr, tr, tl = kmem.pt_taddr
    table = root
    for shift, mask, present, tmask, tval, leaf_ok, _tflags in kmem.pt_steps:
        entry = read(table + ((va >> shift) & mask) * es, es)
        if not entry & present or (leaf_ok and entry & tmask != tval):
            return -1
        table = (entry & tmask_addr) >> tr << tl
    shift, mask = kmem.pt_last
    return table + ((va >> shift) & mask) * es


def pte_alloc(kmem: Kmem, mm: MmStruct, va: int) -> int:
    """__pte_alloc and friends: the entry address for va, allocating missing tables; -1 on OOM."""
    return pmd_alloc_level(kmem, mm, va, len(kmem.pt_steps))


def pmd_offset_level(kmem: Kmem, root: int, va: int, level: int) -> int:
    """The physical address of va's entry at upper `level` (0 = top), or -1 if a table
    above it is missing or a leaf (pgd_offset/pud_offset/pmd_offset down to `level`)."""
    read = kmem.pt.read_entry
    es = kmem.mode.entry_size
    tmask_addr, tr, tl = kmem.pt_taddr
    table = root
    for shift, mask, present, tmask, tval, leaf_ok, _tflags in kmem.pt_steps[:level]:
        entry = read(table + ((va >> shift) & mask) * es, es)
        if not entry & present or (leaf_ok and entry & tmask != tval):
            return -1
        table = (entry & tmask_addr) >> tr << tl
    shift, mask = (kmem.pt_steps[level][:2] if level < len(kmem.pt_steps) else kmem.pt_last)
    return table + ((va >> shift) & mask) * es


def pmd_alloc_level(kmem: Kmem, mm: MmStruct, va: int, level: int) -> int:
    """The entry address of va at `level` (the last level: its PTE), allocating the tables
    above it; -1 on OOM."""
    mode = kmem.mode
    pt = kmem.pt
    es = mode.entry_size
    tmask_addr, tr, tl = kmem.pt_taddr
    table = mm.pgd
    for lvl, (shift, mask, present, tmask, tval, leaf_ok, tflags) in enumerate(
            kmem.pt_steps[:level]):
        addr = table + ((va >> shift) & mask) * es
        entry = pt.read_entry(addr, es)
        if not entry & present:
            pfn = _alloc_table(kmem, mm, lvl + 1)
            if pfn is None:
                return -1
            entry = mode.make_entry(pfn, tflags)
            pt.write_entry(addr, es, entry)
        elif leaf_ok and entry & tmask != tval:
            raise AssertionError(f"pte_alloc: {va:#x} is inside a large-page leaf")
        table = (entry & tmask_addr) >> tr << tl
    shift, mask = kmem.pt_steps[level][:2] if level < len(kmem.pt_steps) else kmem.pt_last
    return table + ((va >> shift) & mask) * es


def _is_leaf(kmem: Kmem, lvl: int, entry: int) -> bool:
    """An upper-level entry that is a large-page leaf (not a table pointer)."""
    _shift, _mask, _present, tmask, tval, leaf_ok, _tflags = kmem.pt_steps[lvl]
    return leaf_ok and entry & tmask != tval


def _table_of(kmem: Kmem, entry: int) -> int:
    tmask_addr, tr, tl = kmem.pt_taddr
    return (entry & tmask_addr) >> tr << tl


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
        entry = kmem.pt.read_entry(entry_addr, es)
        if not entry & mode.level_present(lvl) or _is_leaf(kmem, lvl, entry):
            return
        table = _table_of(kmem, entry)
    if pte_view(kmem, table).any():
        return
    kmem.pt.write_entry(entry_addr, es, 0)
    _free_table(kmem, mm, table >> kmem.page_shift, last)


def pte_tables(kmem: Kmem, root: int, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Existing last-level tables covering [start, end): (table_phys, first_idx, end_idx, va_of_idx0).

    Missing tables are skipped, which is what makes range operations cost
    in proportion to the page tables rather than to the address range.
    """
    mode = kmem.mode
    phys = kmem.pt
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
        raw = kmem.phys.u8[table + i0 * es:table + i1 * es]  # only non-zero entries matter
        for i in (np.flatnonzero(raw.reshape(-1, es).any(axis=1)) + i0).tolist():
            entry = phys.read_entry(table + i * es, es)
            if not entry & mode.level_present(lvl) or _is_leaf(kmem, lvl, entry):
                continue
            yield from rec(_table_of(kmem, entry), lvl + 1, base + i * span)

    yield from rec(root, 0, 0)


def pte_view(kmem: Kmem, table: int) -> np.ndarray:
    """A writable numpy view of one last-level table's entries."""
    mode = kmem.mode
    n = mode.ptrs_per[-1]
    if mode.byteorder == "big":
        es = mode.entry_size
        return kmem.phys.u8[table:table + es * n].view(">u8" if es == 8 else ">u4")
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
    phys = kmem.pt
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
        i0, i1 = (lo - base) // span, (hi - base + span - 1) // span
        raw = kmem.phys.u8[table + i0 * es:table + i1 * es]  # only non-zero entries matter
        for i in (np.flatnonzero(raw.reshape(-1, es).any(axis=1)) + i0).tolist():
            entry_addr = table + i * es
            entry = phys.read_entry(entry_addr, es)
            if not entry & mode.level_present(lvl) or _is_leaf(kmem, lvl, entry):
                continue
            child = _table_of(kmem, entry)
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
