"""A test helper: the raw page-table entry that maps an address in a process."""

from __future__ import annotations

from vmsim.kernel.task import Process
from vmsim.mm.pgtable import pte_offset


def pte_of(p: Process, addr: int) -> int:
    """The last-level entry for addr (0 when no table covers it)."""
    kmem = p.machine.kmem
    slot = pte_offset(kmem, p.mm.pgd, addr)
    return 0 if slot < 0 else kmem.phys.read_entry(slot, kmem.mode.entry_size)
