"""The machine-wide memory state every mm function works on.

One `Kmem` per machine: RAM, mem_map and the buddy allocator, the paging
mode, the shared zero page, the vm_stat/vm_event counters that
/proc/meminfo and /proc/vmstat print, and the vm sysctls.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    mem_soft_dirty: bool = True  # CONFIG_MEM_SOFT_DIRTY: new VMAs carry VM_SOFTDIRTY


class Kmem:
    """RAM + struct pages + allocator + paging mode + counters."""

    def __init__(self, mode: PagingMode, memory: int, events: EventBus | None = None,
                 prefault: bool = False) -> None:
        self.mode = mode
        self.page_size = mode.page_size
        self.page_shift = mode.page_shift
        self.phys = PhysMem(memory, mode.page_size, prefault)
        self.nr_frames = memory // mode.page_size
        if self.nr_frames < 16:
            raise ValueError(f"Kmem: {memory} bytes is too little RAM (need 16 pages)")
        self.mem_map = MemMap(self.nr_frames)
        # Frame 0 stays reserved, as low memory does on a PC: a pfn of 0 is never valid.
        self.mem_map.flags_mv[0] = PG.reserved
        self.buddy = BuddyAllocator(self.mem_map, 1, self.nr_frames)
        zero = self.buddy.alloc_pages(0)
        assert zero is not None
        self.zero_pfn = zero
        self.mem_map.flags_mv[zero] = PG.reserved | PG.uptodate
        self.events = events or EventBus()
        self.sysctl = Sysctl()
        self.vm_stat: Counter[str] = Counter()  # gauges: nr_anon_pages, nr_mapped, nr_page_table_pages...
        self.vm_event: Counter[str] = Counter()
        self.fault_kinds: Counter[str] = Counter()  # resolved faults by kind, machine-wide  # events: pgfault, pgmajfault, cow_fault...
        self.page_cache_files: dict[tuple[int, int], object] = {}
        # The running task's fault counters (the kernel's `current->min_flt`/`maj_flt`).
        self.current: FaultAccount | None = None

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
