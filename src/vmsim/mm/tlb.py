"""TLB shootdown (include/asm-generic/tlb.h, arch/x86/mm/tlb.c): tell translation caches.

vmsim's scripted accesses walk the tables every time, but a CPU engine
caches translations; it registers a hook on the mm and is told exactly
where Linux would flush.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmsim.mm.mm_struct import MmStruct


def flush_tlb_range(mm: MmStruct, start: int, end: int) -> None:
    """flush_tlb_range(): tell whoever caches translations (a CPU engine) to drop them."""
    kmem = mm.kmem
    kmem.vm_event["tlb_flush"] += 1
    for fn in mm.tlb_flush_hooks:
        fn(start, end)
    if kmem.events.active:
        kmem.events.emit("tlb_flush", mm=mm.owner_pid, start=start, end=end)
