"""The machine-wide memory state every mm function works on.

One `Kmem` per machine: RAM, mem_map and the buddy allocator, the paging
mode, the shared zero page, the vm_stat/vm_event counters that
/proc/meminfo and /proc/vmstat print, and the vm sysctls.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vmsim.arch.paging import PagingMode
from vmsim.events import EventBus
from vmsim.mm.page import PG, BuddyAllocator, MemMap
from vmsim.mm.physmem import PhysMem

if TYPE_CHECKING:
    from vmsim.mm.fault import FaultAccount


@dataclass
class Sysctl:
    """/proc/sys/vm knobs and defaults that change mm behaviour."""

    max_map_count: int = 65530  # DEFAULT_MAX_MAP_COUNT
    mmap_min_addr: int = 4096
    stack_guard_gap: int = 256 << 12  # 256 pages (mm/mmap.c)
    overcommit_memory: int = 0
    fault_around_bytes: int = 65536
    ra_pages: int = 32  # 128 KiB default read-ahead window
    legacy_va_layout: bool = False  # vm.legacy_va_layout: bottom-up mmap layout
    mem_soft_dirty: bool = True  # CONFIG_MEM_SOFT_DIRTY: new VMAs carry VM_SOFTDIRTY


class BigEndianEntries:
    """Page-table entries of a big-endian format (PowerPC) read and written as numbers.

    The mm core edits entries through `Kmem.pt`; for little-endian modes that
    is the RAM itself, for big-endian ones this byte-swapping view of it.
    """

    def __init__(self, phys: PhysMem) -> None:
        self.phys = phys

    def read_entry(self, phys: int, size: int) -> int:
        return int.from_bytes(self.phys.mv[phys:phys + size], "big")

    def write_entry(self, phys: int, size: int, value: int) -> None:
        self.phys.mv[phys:phys + size] = value.to_bytes(size, "big")


class Kmem:
    """RAM + struct pages + allocator + paging mode + counters."""

    def __init__(self, mode: PagingMode, memory: int, events: EventBus | None = None,
                 prefault: bool = False, hugepages: dict[str, int] | None = None) -> None:
        self.mode = mode
        self.page_size = mode.page_size
        self.page_shift = mode.page_shift
        self.phys = PhysMem(memory, mode.page_size, prefault)
        self.nr_frames = memory // mode.page_size
        # Entries as numbers, in the format's byte order (see BigEndianEntries).
        self.pt: PhysMem | BigEndianEntries = (
            BigEndianEntries(self.phys) if mode.byteorder == "big" else self.phys)
        self._init_pte_ops(mode)
        if self.nr_frames < 16:
            raise ValueError(f"Kmem: {memory} bytes is too little RAM (need 16 pages)")
        self.mem_map = MemMap(self.nr_frames)
        # Frame 0 stays reserved, as low memory does on a PC: a pfn of 0 is never valid.
        self.mem_map.flags_mv[0] = PG.reserved
        # hugetlb pools (mm/hugetlb.py) come off the top of RAM before the buddy gets the rest.
        from vmsim.mm.hugetlb import HState, hugetlb_init

        self.hstates: dict[int, HState] = {}
        self.hugetlb_start = hugetlb_init(self, self.nr_frames, hugepages)
        self.buddy = BuddyAllocator(self.mem_map, 1, self.hugetlb_start)
        zero = self.buddy.alloc_pages(0)
        assert zero is not None
        self.zero_pfn = zero
        self.mem_map.flags_mv[zero] = PG.reserved | PG.uptodate
        self.events = events or EventBus()
        # Page-count defaults scale with the page size: stack_guard_gap is 256 pages
        # (mm/mmap.c), the read-ahead window VM_READAHEAD_PAGES = SZ_128K / PAGE_SIZE.
        # CONFIG_MEM_SOFT_DIRTY exists only where the format has a soft-dirty bit.
        self.sysctl = Sysctl(stack_guard_gap=256 << mode.page_shift,
                             ra_pages=max((128 << 10) >> mode.page_shift, 1),
                             mem_soft_dirty=bool(mode.bits.soft_dirty))
        self.vm_stat: Counter[str] = Counter()  # gauges: nr_anon_pages, nr_mapped, nr_page_table_pages...
        self.vm_event: Counter[str] = Counter()
        self.fault_kinds: Counter[str] = Counter()  # resolved faults by kind, machine-wide  # events: pgfault, pgmajfault, cow_fault...
        self.page_cache_files: dict[tuple[int, int], object] = {}
        # The running task's fault counters (the kernel's `current->min_flt`/`maj_flt`).
        self.current: FaultAccount | None = None

    def _init_pte_ops(self, mode: PagingMode) -> None:
        """The mode's answers to the pte_* helpers the mm core needs beyond single bits.

        `pt_steps` drives the mm's own table walks (pgtable.py): per upper level
        (shift, index mask, present mask, leaf-test mask and value, leaf allowed,
        table-pointer flags); `pt_taddr` turns a pointer entry into a table address.
        Formats with a negative write bit (ARM64 AP[2], Linux's PTE_RDONLY) keep it
        as Linux's arm64 pte_mkwrite()/pte_mkdirty()/pte_wrprotect() do: a writable
        dirty entry has it clear, every other entry set (`wr_clear`); with hardware
        dirty management a write to a PTE_WRITE|PTE_RDONLY entry clears it, so
        pte_dirty() also means "writable and not read-only" there (`pte_dirty`).
        """
        b = mode.bits
        last = len(mode.levels) - 1
        tmask, tval = mode.table_test if mode.table_test is not None else (b.huge, 0)
        self.pt_steps = tuple(
            (mode.shifts[i], mode.ptrs_per[i] - 1, mode.level_present(i), tmask, tval,
             mode.levels[i].leaf_ok, mode.table_entry_flags(i)) for i in range(last))
        self.pt_last = (mode.shifts[last], mode.ptrs_per[last] - 1)
        self.pt_taddr = mode.table_addr if mode.table_addr is not None else (
            mode.pfn_mask, mode.pfn_shift, mode.page_shift)
        self.wr_clear = b.rdonly  # bits a writable, dirty entry must not carry
        self.hw_dirty = b.rdonly and b.write  # PTE_WRITE without PTE_RDONLY: dirty by hardware

    def pte_dirty(self, entry: int) -> bool:
        """pte_dirty(): the software dirty bit, or (ARM64) a hardware-dirtied writable entry."""
        b = self.mode.bits
        if entry & b.dirty:
            return True
        hw = self.hw_dirty
        return bool(hw) and entry & (hw | b.rdonly) == hw

    def pte_mkclean(self, entry: int, write: bool = True) -> int:
        """pte_mkclean() (and pte_wrprotect() unless `write`): clear dirty (and write);
        a format with a read-only bit sets it (arch/arm64/include/asm/pgtable.h)."""
        b = self.mode.bits
        entry &= ~b.dirty
        if not write:
            entry &= ~b.write
        return entry | b.rdonly if self.pte_present_hw(entry) else entry

    def pte_wrprotect(self, entry: int) -> int:
        """pte_wrprotect(): clear write; keep a hardware-dirty state as the software dirty bit."""
        b = self.mode.bits
        if self.hw_dirty and entry & (self.hw_dirty | b.rdonly) == self.hw_dirty:
            entry |= b.dirty
        return (entry & ~b.write) | b.rdonly

    def pte_present_hw(self, entry: int) -> bool:
        return bool(entry & self.mode.bits.present)

    def np_wrprotect(self, entries: np.ndarray) -> np.ndarray:
        """pte_wrprotect() over an array of present entries."""
        b = self.mode.bits
        dt = entries.dtype.newbyteorder("=")
        entries = entries.astype(dt)
        if self.hw_dirty:
            hw = dt.type(self.hw_dirty)
            hwd = (entries & (hw | dt.type(b.rdonly))) == hw
            entries = np.where(hwd, entries | dt.type(b.dirty), entries)
        full = (1 << (8 * self.mode.entry_size)) - 1
        return (entries & dt.type(~b.write & full)) | dt.type(b.rdonly)

    def np_dirty(self, entries: np.ndarray) -> np.ndarray:
        """pte_dirty() over an array of entries (a boolean array)."""
        b = self.mode.bits
        dt = entries.dtype.type
        out = (entries & dt(b.dirty)) != 0
        if self.hw_dirty:
            hw = dt(self.hw_dirty)
            out |= (entries & (hw | dt(b.rdonly))) == hw
        return out

    def alloc_page(self, zero: bool = True) -> int | None:
        """alloc_page(GFP_HIGHUSER_MOVABLE [| __GFP_ZERO]): a frame or None when RAM is exhausted."""
        pfn = self.buddy.alloc_pages(0)
        if pfn is None:
            self.vm_event["oom_alloc_fail"] += 1
            return None
        if zero:
            self.phys.zero_frame(pfn)
        self.vm_event["pgalloc"] += 1
        if self.events.active:
            self.events.emit("alloc", pfn=pfn)
        return pfn

    def put_page(self, pfn: int) -> None:
        """put_page(): drop one reference; free the frame when none remain."""
        mm = self.mem_map
        if pfn == self.zero_pfn:
            return
        count = mm.refcount_mv[pfn] - 1
        if count < 0:
            raise AssertionError(f"put_page: pfn {pfn:#x} refcount underflow")
        mm.refcount_mv[pfn] = count
        if count == 0:
            self.free_frame(pfn)

    def free_frame(self, pfn: int) -> None:
        """free_unref_page(): a page whose last reference is gone goes back to the buddy."""
        self.mem_map.flags_mv[pfn] = 0
        self.buddy.free_pages(pfn, 0)
        self.vm_event["pgfree"] += 1
        if self.events.active:
            self.events.emit("free", pfn=pfn)

    def get_page(self, pfn: int) -> None:
        if pfn != self.zero_pfn:
            self.mem_map.refcount_mv[pfn] += 1
