"""struct page arrays and the buddy allocator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsim.mm.page import MAX_ORDER, PG, BuddyAllocator, MemMap
from vmsim.mm.physmem import PhysMem, parse_size


def test_parse_size() -> None:
    assert parse_size("256M") == 256 << 20
    assert parse_size("1G") == 1 << 30
    assert parse_size("64k") == 64 << 10
    assert parse_size(8192) == 8192
    with pytest.raises(ValueError, match="bad memory size"):
        parse_size("lots")


def test_physmem_frames_and_entries() -> None:
    ram = PhysMem(1 << 20)
    ram.write(0x1000, b"hello")
    assert ram.read(0x1000, 5) == b"hello"
    ram.copy_frame(2, 1)
    assert ram.read(0x2000, 5) == b"hello"
    ram.zero_frame(1)
    assert ram.read(0x1000, 5) == bytes(5)
    ram.write_entry(0x3008, 8, 0x8000_0000_1234_5067)
    assert ram.read_entry(0x3008, 8) == 0x8000_0000_1234_5067
    assert ram.address != 0


def test_buddy_initial_blocks_and_counts() -> None:
    mm = MemMap(4096)
    buddy = BuddyAllocator(mm, 1, 4096)
    assert buddy.nr_free == 4095
    counts = buddy.nr_free_per_order()
    assert sum(c << o for o, c in enumerate(counts)) == 4095
    assert counts[MAX_ORDER] == 3  # 1024-page blocks at 1024, 2048, 3072


def test_buddy_split_and_merge_back() -> None:
    mm = MemMap(1024)
    buddy = BuddyAllocator(mm, 0, 1024)
    assert buddy.nr_free_per_order()[MAX_ORDER] == 1
    pfn = buddy.alloc_pages(0)
    assert pfn is not None and mm.refcount[pfn] == 1
    # splitting a 1024 block for one page leaves one free block at each order 0..9
    assert buddy.nr_free_per_order() == [1] * MAX_ORDER + [0]
    buddy.free_pages(pfn, 0)
    assert buddy.nr_free_per_order()[MAX_ORDER] == 1 and buddy.nr_free == 1024


def test_buddy_out_of_memory_returns_none() -> None:
    mm = MemMap(16)
    buddy = BuddyAllocator(mm, 0, 16)
    got = [buddy.alloc_pages(0) for _ in range(16)]
    assert None not in got and len(set(got)) == 16
    assert buddy.alloc_pages(0) is None
    assert buddy.alloc_pages(3) is None


def test_buddy_double_free_is_caught() -> None:
    mm = MemMap(16)
    buddy = BuddyAllocator(mm, 0, 16)
    pfn = buddy.alloc_pages(0)
    assert pfn is not None
    buddy.free_pages(pfn)
    with pytest.raises(AssertionError, match="double free"):
        buddy.free_pages(pfn)
    assert mm.flags[pfn] & PG.buddy


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), max_size=80))
def test_buddy_random_alloc_free_conserves_frames(ops: list[tuple[bool, int]]) -> None:
    mm = MemMap(256)
    buddy = BuddyAllocator(mm, 0, 256)
    held: list[tuple[int, int]] = []
    for alloc, order in ops:
        if alloc or not held:
            pfn = buddy.alloc_pages(order)
            if pfn is not None:
                assert pfn % (1 << order) == 0
                for other, o in held:  # no overlap with any held block
                    assert pfn + (1 << order) <= other or other + (1 << o) <= pfn
                held.append((pfn, order))
        else:
            pfn, o = held.pop(len(held) // 2)
            buddy.free_pages(pfn, o)
        assert buddy.nr_free + sum(1 << o for _, o in held) == 256
    for pfn, o in held:
        buddy.free_pages(pfn, o)
    assert buddy.nr_free_per_order()[MAX_ORDER - 2] == 1  # fully merged back into 256 pages
