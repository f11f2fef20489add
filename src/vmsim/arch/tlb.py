"""A translation lookaside buffer in front of the page walker.

Like a hardware TLB it caches successful translations per virtual page
and keeps serving them until it is told to flush: an entry is created by a
walk (which sets the accessed bit, and the dirty bit for a write) and
remembers which kinds of access that walk proved allowed. An access the
entry does not cover (a first write through a read-filled entry, say)
walks again, which is how the hardware sets a dirty bit or notices a
permission the kernel upgraded. A permission downgrade is only seen after
a flush, exactly as on a real CPU, so the kernel code must flush where
Linux flushes.

Ranges larger than `full_flush_ceiling` pages flush everything, as
Linux's tlb_single_page_flush_ceiling (33) does on x86.
"""

from __future__ import annotations

from vmsim.arch.paging import Access, PagingMode, PhysAccess, translate

_WRITE = int(Access.WRITE)
_EXEC = int(Access.EXEC)


class Tlb:
    """Per-address-space TLB: virtual page number -> (frame base, allowed-access mask)."""

    def __init__(self, mode: PagingMode, mem: PhysAccess, size: int = 1536,
                 full_flush_ceiling: int = 33) -> None:
        self.mode = mode
        self.mem = mem
        self.size = size
        self.full_flush_ceiling = full_flush_ceiling
        self.entries: dict[int, tuple[int, int]] = {}
        self.hits = 0
        self.fills = 0
        self.flushes = 0

    def lookup(self, root: int, va: int, access: int) -> tuple[int, int]:
        """The physical address for an access: (phys, 0), or (-1, error code) as a walk gives.

        `access` is a plain int Access value. A miss, or a hit that does not
        cover this kind of access, walks the tables and refills the entry.
        """
        shift = self.mode.page_shift
        vpn = va >> shift
        hit = self.entries.get(vpn)
        need = 1 << access  # bit 0: read, bit 1: write, bit 2: exec
        if hit is not None and hit[1] & need:
            self.hits += 1
            return hit[0] | (va & ((1 << shift) - 1)), 0
        phys, err = translate(self.mode, self.mem, root, va, access)
        if phys < 0:
            return phys, err
        allowed = need | 1 | (hit[1] if hit is not None else 0)
        if hit is None and len(self.entries) >= self.size:
            del self.entries[next(iter(self.entries))]  # evict the oldest fill
        self.entries[vpn] = (phys & ~((1 << shift) - 1), allowed)
        self.fills += 1
        return phys, 0

    def flush_range(self, start: int, end: int) -> None:
        """flush_tlb_range(): drop the translations of [start, end)."""
        self.flushes += 1
        shift = self.mode.page_shift
        first, last = start >> shift, (end + (1 << shift) - 1) >> shift
        if last - first > self.full_flush_ceiling:
            self.entries.clear()
            return
        for vpn in range(first, last):
            self.entries.pop(vpn, None)

    def flush_all(self) -> None:
        """flush_tlb_mm(): everything (a context switch without PCID, for example)."""
        self.flushes += 1
        self.entries.clear()
