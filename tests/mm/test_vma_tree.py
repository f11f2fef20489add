"""The augmented VMA tree against a brute-force model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vmsim.mm.vma import VM_GROWSDOWN, VM_READ, Vma, VmaTree

PAGE = 4096
GUARD = 4 * PAGE


def _brute_topdown(vmas: list[Vma], length: int, low: int, high: int) -> int | None:
    """Highest page-aligned a with [a, a+len) free of VMAs and guard gaps, within limits."""
    taken = [((v.vm_start - GUARD) if v.vm_flags & VM_GROWSDOWN else v.vm_start, v.vm_end)
             for v in vmas]
    a = high - length
    while a >= low:
        if all(a + length <= s or a >= e for s, e in taken):
            return a
        a -= PAGE
    return None


def _brute_bottomup(vmas: list[Vma], length: int, low: int, high: int) -> int | None:
    taken = [((v.vm_start - GUARD) if v.vm_flags & VM_GROWSDOWN else v.vm_start, v.vm_end)
             for v in vmas]
    a = low
    while a + length <= high:
        if all(a + length <= s or a >= e for s, e in taken):
            return a
        a += PAGE
    return None


slots = st.lists(st.tuples(st.integers(0, 63), st.integers(1, 4), st.booleans()), max_size=25)


def _build(spec: list[tuple[int, int, bool]]) -> tuple[VmaTree, list[Vma]]:
    tree = VmaTree(GUARD, seed=3)
    vmas: list[Vma] = []
    for slot, pages, grows in spec:
        start = (slot * 4 + 8) * PAGE
        end = start + pages * PAGE
        if any(start < v.vm_end and v.vm_start < end for v in vmas):
            continue
        vma = Vma(start, end, VM_READ | (VM_GROWSDOWN if grows else 0))
        tree.insert(vma)
        vmas.append(vma)
    return tree, vmas


@settings(max_examples=200, deadline=None)
@given(slots, st.integers(1, 12), st.integers(0, 40), st.integers(0, 300))
def test_gap_search_matches_brute_force(spec: list[tuple[int, int, bool]], pages: int,
                                        low_pg: int, high_pg: int) -> None:
    tree, vmas = _build(spec)
    assert tree.check() == []
    low, high = low_pg * PAGE, (low_pg + high_pg) * PAGE
    length = pages * PAGE
    assert tree.unmapped_area_topdown(length, low, high) == _brute_topdown(vmas, length, low, high)
    assert tree.unmapped_area(length, low, high) == _brute_bottomup(vmas, length, low, high)


@settings(max_examples=100, deadline=None)
@given(slots, st.lists(st.integers(0, 300 * PAGE), max_size=20), st.data())
def test_queries_and_removal_match_sorted_list(spec: list[tuple[int, int, bool]],
                                               probes: list[int], data: st.DataObject) -> None:
    tree, vmas = _build(spec)
    vmas.sort(key=lambda v: v.vm_start)
    for _ in range(data.draw(st.integers(0, len(vmas)))):
        victim = vmas.pop(data.draw(st.integers(0, len(vmas) - 1)))
        tree.remove(victim)
        assert tree.check() == []
    assert list(tree) == vmas and len(tree) == len(vmas)
    for addr in probes:
        want = next((v for v in vmas if v.vm_end > addr), None)
        assert tree.find_vma(addr) is want
        got, prev = tree.find_vma_prev(addr)
        before = [v for v in vmas if v.vm_end <= addr]
        assert prev is (before[-1] if before else None) or got is not want
        inter = [v for v in vmas if v.vm_start < addr + 3 * PAGE and v.vm_end > addr]
        assert tree.range(addr, addr + 3 * PAGE) == inter


def test_update_moves_gap_bookkeeping() -> None:
    tree = VmaTree(GUARD)
    a, b = Vma(0x10000, 0x20000, VM_READ), Vma(0x40000, 0x50000, VM_READ)
    tree.insert(a)
    tree.insert(b)
    tree.update(a, 0x10000, 0x38000, 0)
    assert tree.check() == []
    # free: [0, 0x10000) and [0x38000, 0x40000)
    assert tree.unmapped_area_topdown(0x11000, 0, 0x50000) is None
    assert tree.unmapped_area_topdown(0x8000, 0, 0x50000) == 0x38000
    assert tree.unmapped_area_topdown(0x9000, 0, 0x50000) == 0x7000
