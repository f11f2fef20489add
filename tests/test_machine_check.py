"""machine.check() must catch each broken fact it claims to verify."""

from __future__ import annotations

import numpy as np
import pytest

from vmsim import Machine
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pte_offset

PS = 4096


def _setup(machine: Machine) -> tuple:  # type: ignore[type-arg]
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "rw-", "private|anonymous")
    for i in range(4):
        p.store(a + i * PS, b"x")
    machine.check()
    return p, a


def test_detects_wrong_mapcount(machine: Machine) -> None:
    p, a = _setup(machine)
    pfn = p.translate(a) // PS
    machine.kmem.mem_map.mapcount[pfn] += 1
    with pytest.raises(AssertionError, match="mapcount"):
        machine.check()


def test_detects_entry_mapping_a_free_frame(machine: Machine) -> None:
    p, a = _setup(machine)
    kmem = machine.kmem
    free_pfn = int(np.flatnonzero(kmem.mem_map.flags & PG.buddy)[0])
    slot = pte_offset(kmem, p.mm.pgd, a)
    kmem.phys.write_entry(slot, 8, kmem.mode.make_entry(free_pfn, kmem.phys.read_entry(slot, 8)))
    with pytest.raises(AssertionError, match="free or table frame"):
        machine.check()


def test_detects_rss_drift_and_leaks(machine: Machine) -> None:
    p, _ = _setup(machine)
    p.mm.rss_stat[1] += 1
    with pytest.raises(AssertionError, match="rss anon"):
        machine.check()
    p.mm.rss_stat[1] -= 1
    machine.kmem.buddy.alloc_pages(0)  # a frame nobody accounts for
    with pytest.raises(AssertionError, match="frame leak"):
        machine.check()


def test_detects_overlapping_vmas(machine: Machine) -> None:
    p, a = _setup(machine)
    vma = p.mm.mm_rb.find_vma(a)
    b = p.mmap(None, PS, "r--", "private|anonymous")
    other = p.mm.mm_rb.find_vma(b)
    other.vm_end = vma.vm_start + PS if b < a else other.vm_end
    other.vm_start = vma.vm_start if b > a else other.vm_start
    with pytest.raises(AssertionError):
        machine.check()
