"""struct page for every frame, and the buddy allocator (mm/page_alloc.c).

The per-frame counters are numpy arrays indexed by frame number (a structure
of arrays rather than one Python object per frame), so fork can raise the
counts of 512 pages in one operation. `Page` is a small view with the
kernel's field names for readable code and introspection.

Deliberate difference: `mapcount` counts mappings from 0 (the kernel's
``_mapcount`` starts at -1 and ``page_mapcount()`` adds one back).
"""

from __future__ import annotations

import numpy as np

MAX_ORDER = 10  # orders 0..MAX_ORDER inclusive (the kernel's MAX_PAGE_ORDER)


class PG:
    """Page flags (include/linux/page-flags.h) that vmsim maintains.

    Plain int bits rather than an enum.IntFlag: they are combined on the
    fault path, where enum arithmetic would cost more than the fault.
    """

    locked = 1 << 0
    referenced = 1 << 1
    uptodate = 1 << 2
    dirty = 1 << 3
    lru = 1 << 4
    active = 1 << 5
    anon = 1 << 6  # PageAnon: the kernel tags page->mapping; vmsim keeps a flag
    swapbacked = 1 << 7
    reserved = 1 << 8
    pgtable = 1 << 9  # a page-table page (PageTable page type)
    buddy = 1 << 10  # free, in the buddy allocator (PageBuddy)
    mlocked = 1 << 11
    writeback = 1 << 12
    head = 1 << 13
    anon_exclusive = 1 << 14  # PageAnonExclusive: only this mm maps the anonymous page
    readahead = 1 << 15  # PG_readahead: reaching this page-cache page starts the next read-ahead

    @classmethod
    def names(cls, flags: int) -> list[str]:
        """The names of the bits set in `flags`, lowest first."""
        bits = [(v, k) for k, v in vars(cls).items() if isinstance(v, int) and not k.startswith("_")]
        return [name for value, name in sorted(bits) if flags & value]


class MemMap:
    """mem_map: a struct page per frame, stored column-wise.

    Each counter column is one buffer seen two ways: a numpy array
    (`refcount`, ...) for whole-table operations such as fork, and a
    memoryview (`refcount_mv`, ...) whose item access returns plain Python
    ints, for the per-page fault path where numpy scalars would be slow.
    """

    def __init__(self, nr_frames: int) -> None:
        self.nr_frames = nr_frames
        self.refcount, self.refcount_mv = _column(nr_frames, np.int32, "i")
        self.mapcount, self.mapcount_mv = _column(nr_frames, np.int32, "i")
        self.flags, self.flags_mv = _column(nr_frames, np.uint32, "I")
        self.index, self.index_mv = _column(nr_frames, np.int64, "q")
        self.mapping: list[object | None] = [None] * nr_frames

    def page(self, pfn: int) -> Page:
        return Page(self, pfn)

    def set_flags(self, pfn: int, flags: int) -> None:
        self.flags_mv[pfn] |= flags

    def clear_flags(self, pfn: int, flags: int) -> None:
        self.flags_mv[pfn] &= ~np.uint32(flags)

    def test_flags(self, pfn: int, flags: int) -> bool:
        return bool(self.flags_mv[pfn] & flags)


def folio_mark_accessed(flags: memoryview, pfn: int, unevictable: bool = False) -> None:
    """folio_mark_accessed() (mm/swap.c), two-list LRU: one more use of the page.

    An unreferenced page becomes referenced; a referenced inactive page is
    activated and loses its referenced flag (so a second use clears what
    smaps shows as Referenced); an active page just becomes referenced again.
    An unevictable (mlocked) page that is already referenced is left as it
    is. vmsim has no per-CPU LRU batches: activation is immediate.
    """
    f = flags[pfn]
    if not f & PG.referenced:
        flags[pfn] = f | PG.referenced
    elif not f & PG.active and not unevictable:
        flags[pfn] = (f | PG.active) & ~PG.referenced


def _column(n: int, dtype: type, code: str) -> tuple[np.ndarray, memoryview]:
    buf = bytearray(n * np.dtype(dtype).itemsize)
    return np.frombuffer(buf, dtype=dtype), memoryview(buf).cast(code)


class Page:
    """A view of one struct page: `page.refcount`, `page.flags`, ..."""

    __slots__ = ("mem_map", "pfn")

    def __init__(self, mem_map: MemMap, pfn: int) -> None:
        self.mem_map = mem_map
        self.pfn = pfn

    @property
    def refcount(self) -> int:
        return int(self.mem_map.refcount_mv[self.pfn])

    @property
    def mapcount(self) -> int:
        return int(self.mem_map.mapcount_mv[self.pfn])

    @property
    def flags(self) -> int:
        return int(self.mem_map.flags_mv[self.pfn])

    @property
    def mapping(self) -> object | None:
        return self.mem_map.mapping[self.pfn]

    @property
    def index(self) -> int:
        return int(self.mem_map.index_mv[self.pfn])

    def __repr__(self) -> str:
        return (f"Page(pfn={self.pfn:#x}, refcount={self.refcount}, mapcount={self.mapcount}, "
                f"flags={'|'.join(PG.names(self.flags))}, index={self.index})")


class BuddyAllocator:
    """The binary buddy allocator of mm/page_alloc.c, orders 0..MAX_ORDER.

    Free blocks of each order sit in an insertion-ordered dict (the free
    list); allocation takes the most recently freed block first, like the
    kernel's hot per-cpu lists. A freed block merges with its buddy
    (pfn ^ 1 << order) while the buddy is free at the same order.
    Allocation failure returns None: the caller turns it into VM_FAULT_OOM.
    """

    def __init__(self, mem_map: MemMap, first_pfn: int, end_pfn: int) -> None:
        self.mem_map = mem_map
        self.free_area: list[dict[int, None]] = [{} for _ in range(MAX_ORDER + 1)]
        self.free_order = memoryview(bytearray(b"\xff" * mem_map.nr_frames)).cast("b")
        self.managed_pages = end_pfn - first_pfn
        self.nr_free = 0
        pfn = first_pfn
        while pfn < end_pfn:
            order = MAX_ORDER
            while order and (pfn & ((1 << order) - 1) or pfn + (1 << order) > end_pfn):
                order -= 1
            self._add(pfn, order)
            pfn += 1 << order

    def _add(self, pfn: int, order: int) -> None:
        self.free_area[order][pfn] = None
        self.free_order[pfn] = order
        self.mem_map.flags_mv[pfn] = PG.buddy
        self.nr_free += 1 << order

    def _take(self, pfn: int, order: int) -> None:
        del self.free_area[order][pfn]
        self.free_order[pfn] = -1
        self.mem_map.flags_mv[pfn] = 0
        self.nr_free -= 1 << order

    def nr_free_per_order(self) -> list[int]:
        """Free block counts per order, as /proc/buddyinfo prints them."""
        return [len(area) for area in self.free_area]

    def alloc_pages(self, order: int = 0) -> int | None:
        """__alloc_pages: a block of 2**order frames with refcount 1, or None."""
        current = order
        while current <= MAX_ORDER and not self.free_area[current]:
            current += 1
        if current > MAX_ORDER:
            return None
        pfn, _ = self.free_area[current].popitem()
        self.free_order[pfn] = -1
        self.mem_map.flags_mv[pfn] = 0
        self.nr_free -= 1 << current
        while current > order:  # expand(): give back the upper halves
            current -= 1
            self._add(pfn + (1 << current), current)
        mm = self.mem_map
        mm.refcount_mv[pfn] = 1
        mm.mapcount_mv[pfn] = 0
        mm.index_mv[pfn] = 0
        mm.mapping[pfn] = None
        return pfn

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """__free_pages: return a block; merge with free buddies."""
        mm = self.mem_map
        if mm.flags_mv[pfn] & PG.buddy:
            raise AssertionError(f"free_pages: double free of pfn {pfn:#x}")
        if mm.mapcount_mv[pfn]:
            raise AssertionError(f"free_pages: pfn {pfn:#x} is still mapped {mm.mapcount_mv[pfn]} times")
        mm.refcount_mv[pfn] = 0
        mm.mapping[pfn] = None
        while order < MAX_ORDER:
            buddy = pfn ^ (1 << order)
            if buddy >= mm.nr_frames or self.free_order[buddy] != order:
                break
            self._take(buddy, order)
            pfn &= ~(1 << order)
            order += 1
        self._add(pfn, order)
