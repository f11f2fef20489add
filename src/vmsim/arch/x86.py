"""x86 paging formats as data (arch/x86/include/asm/pgtable_types.h, pgtable_64_types.h).

Bit positions follow Linux's ``_PAGE_BIT_*`` names. ``_PAGE_PROTNONE`` shares
bit 8 with ``_PAGE_GLOBAL``: it means PROT_NONE only when PRESENT is clear,
which is how Linux keeps a PROT_NONE page "present" to itself while every
hardware access faults.
"""

from __future__ import annotations

from vmsim.arch.paging import Level, PagingMode, PteBits

_PAGE_PRESENT = 1 << 0
_PAGE_RW = 1 << 1
_PAGE_USER = 1 << 2
_PAGE_PWT = 1 << 3
_PAGE_PCD = 1 << 4
_PAGE_ACCESSED = 1 << 5
_PAGE_DIRTY = 1 << 6
_PAGE_PSE = 1 << 7
_PAGE_GLOBAL = 1 << 8
_PAGE_SPECIAL = 1 << 9  # _PAGE_BIT_SOFTW1
_PAGE_SOFT_DIRTY = 1 << 11  # _PAGE_BIT_SOFTW3
_PAGE_NX = 1 << 63
_PAGE_PROTNONE = _PAGE_GLOBAL
_PAGE_PAT_LARGE = 1 << 12  # PAT bit position in a 2 MiB / 1 GiB leaf

# _PAGE_TABLE: what Linux writes into a PGD/P4D/PUD/PMD entry pointing at a table.
_PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY

# The page protections of arch/x86/include/asm/pgtable_types.h (without _PAGE_GLOBAL
# for user pages; PAGE_NONE carries PROTNONE, which is the global bit).
PAGE_NONE = _PAGE_PROTNONE | _PAGE_ACCESSED
PAGE_SHARED = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_SHARED_EXEC = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED
PAGE_COPY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_COPY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
PAGE_READONLY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_READONLY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED

# protection_map[VM_READ|VM_WRITE|VM_EXEC|VM_SHARED] (arch/x86/mm/pgprot.c).
X86_PROTECTION_MAP: tuple[int, ...] = (
    PAGE_NONE, PAGE_READONLY, PAGE_COPY, PAGE_COPY,
    PAGE_READONLY_EXEC, PAGE_READONLY_EXEC, PAGE_COPY_EXEC, PAGE_COPY_EXEC,
    PAGE_NONE, PAGE_READONLY, PAGE_SHARED, PAGE_SHARED,
    PAGE_READONLY_EXEC, PAGE_READONLY_EXEC, PAGE_SHARED_EXEC, PAGE_SHARED_EXEC,
)

X86_BITS = PteBits(
    present=_PAGE_PRESENT, write=_PAGE_RW, user=_PAGE_USER, accessed=_PAGE_ACCESSED,
    dirty=_PAGE_DIRTY, huge=_PAGE_PSE, nx=_PAGE_NX, global_=_PAGE_GLOBAL, pwt=_PAGE_PWT,
    pcd=_PAGE_PCD, special=_PAGE_SPECIAL, soft_dirty=_PAGE_SOFT_DIRTY, protnone=_PAGE_PROTNONE,
    huge_pat=_PAGE_PAT_LARGE,
)

# x86-64 4-level paging: PGD 9 / PUD 9 / PMD 9 / PTE 9 + 12 (P4D folded).
# 1 GiB leaves at the PUD, 2 MiB leaves at the PMD; __PHYSICAL_MASK_SHIFT = 52.
X86_64 = PagingMode(
    name="x86_64",
    levels=(
        Level("pgd", 9),
        Level("pud", 9, leaf_ok=True),
        Level("pmd", 9, leaf_ok=True),
        Level("pte", 9),
    ),
    page_shift=12,
    entry_size=8,
    pfn_shift=12,
    pfn_bits=40,
    bits=X86_BITS,
    table_flags=_PAGE_TABLE,
    va_bits=48,
    protection_map=X86_PROTECTION_MAP,
    # arch/x86/include/asm/pgtable_64.h: SWP_TYPE_BITS 5 at the top, the offset inverted
    # from bit _PAGE_BIT_PROTNONE + 1 = 9 up to the type.
    swp_type_shift=59,
    swp_type_bits=5,
    swp_offset_shift=9,
    swp_offset_bits=50,
    swp_offset_inverted=True,
)

# User address-space geometry for x86-64 (arch/x86/include/asm/page_64_types.h).
TASK_SIZE_X86_64 = (1 << 47) - 4096
