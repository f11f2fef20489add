"""Non-present page-table entries that are not swap (include/linux/swapops.h).

A PTE marker is a swap entry of type SWP_PTE_MARKER whose offset holds
marker bits. vmsim uses the guard marker of MADV_GUARD_INSTALL (Linux
6.13): an entry that makes every access fault with SIGSEGV, costs no page
and no VMA, and is kept by MADV_DONTNEED but dropped by munmap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmsim.arch.paging import PagingMode

MAX_SWAPFILES_SHIFT = 5
SWP_PTE_MARKER = (1 << MAX_SWAPFILES_SHIFT) - 1  # the last of the non-swap types
PTE_MARKER_UFFD_WP = 1 << 0
PTE_MARKER_POISONED = 1 << 1
PTE_MARKER_GUARD = 1 << 2


def make_pte_marker(mode: PagingMode, marker: int) -> int:
    """make_pte_marker(): the entry for a marker."""
    return mode.swp_entry_to_pte(SWP_PTE_MARKER, marker)


def is_swap_pte(mode: PagingMode, entry: int) -> bool:
    """is_swap_pte(): not empty and not present (a swap entry or a marker)."""
    return entry != 0 and not mode.is_present(entry)


def is_guard_pte_marker(mode: PagingMode, entry: int) -> bool:
    """is_guard_pte_marker(): a marker carrying PTE_MARKER_GUARD."""
    return (is_swap_pte(mode, entry) and mode.pte_swp_type(entry) == SWP_PTE_MARKER
            and bool(mode.pte_swp_offset(entry) & PTE_MARKER_GUARD))
