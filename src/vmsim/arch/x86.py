"""x86 paging formats as data (arch/x86/include/asm/pgtable_types.h, pgtable_64_types.h,
pgtable-2level_types.h, pgtable-3level_types.h).

Four modes: i386 2-level paging with PSE (32-bit entries, 4 MiB leaves in the
PDE, no NX), i386 PAE (64-bit entries, a 4-entry PDPT whose entries hold P
alone, 2 MiB leaves in the PMD, NX), x86-64 4-level and x86-64 5-level (LA57).

Bit positions follow Linux's ``_PAGE_BIT_*`` names. ``_PAGE_PROTNONE`` shares
bit 8 with ``_PAGE_GLOBAL``: it means PROT_NONE only when PRESENT is clear,
which is how Linux keeps a PROT_NONE page "present" to itself while every
hardware access faults.
"""

from __future__ import annotations

import dataclasses

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

# x86-64 5-level paging (CONFIG_X86_5LEVEL, CR4.LA57): PGD 9 / P4D 9 / PUD 9 / PMD 9 / PTE 9 + 12,
# a 57-bit virtual address (arch/x86/include/asm/pgtable_64_types.h: PGDIR_SHIFT 48,
# P4D_SHIFT 39). User space stays below 47 bits unless mmap is given a hint above it
# (arch/x86/include/asm/processor.h: DEFAULT_MAP_WINDOW) -- a policy of the mm core.
X86_64_LA57 = dataclasses.replace(
    X86_64,
    name="x86_64-la57",
    levels=(
        Level("pgd", 9),
        Level("p4d", 9),
        Level("pud", 9, leaf_ok=True),
        Level("pmd", 9, leaf_ok=True),
        Level("pte", 9),
    ),
    va_bits=57,
)
TASK_SIZE_X86_64_LA57 = (1 << 56) - 4096

# ---- 32-bit x86 -------------------------------------------------------------------
# Without PAE, _PAGE_NX is 0 (pgtable_types.h) and so is _PAGE_SOFT_DIRTY (x86-64 only).
_I386_BITS = dataclasses.replace(X86_BITS, nx=0, soft_dirty=0)
I386_PROTECTION_MAP: tuple[int, ...] = tuple(p & ~_PAGE_NX for p in X86_PROTECTION_MAP)

#: TASK_SIZE of both 32-bit modes: __PAGE_OFFSET with the default 3G/1G split
#: (arch/x86/include/asm/page_32_types.h, CONFIG_PAGE_OFFSET 0xC0000000).
TASK_SIZE_I386 = 0xC000_0000

# i386 2-level paging (arch/x86/include/asm/pgtable-2level_types.h): PGDIR_SHIFT 22,
# PTRS_PER_PGD 1024, PTRS_PER_PTE 1024, 32-bit entries, __PHYSICAL_MASK_SHIFT 32.
# With CR4.PSE a PDE with PS set is a 4 MiB leaf. Bits 21:13 of such a PDE are
# treated as reserved (a CPU with MAXPHYADDR 32; with PSE-36 bits 20:13 would
# extend the physical address above 4 GiB, which vmsim's RAM never reaches).
# Swap entries (pgtable-2level.h): type in bits 1..5, offset from bit 9.
I386 = PagingMode(
    name="i386",
    levels=(
        Level("pgd", 10, leaf_ok=True),
        Level("pte", 10),
    ),
    page_shift=12,
    entry_size=4,
    pfn_shift=12,
    pfn_bits=20,
    bits=_I386_BITS,
    table_flags=_PAGE_TABLE,
    va_bits=32,
    protection_map=I386_PROTECTION_MAP,
    swp_type_shift=1,
    swp_type_bits=5,
    swp_offset_shift=9,
    swp_offset_bits=23,
    canonical_rule="zero",
    fetch_error_bit=False,
)

# i386 PAE (arch/x86/include/asm/pgtable-3level_types.h): PGDIR_SHIFT 30, PTRS_PER_PGD 4,
# PMD_SHIFT 21, PTRS_PER_PMD 512, PTRS_PER_PTE 512, 64-bit entries, __PHYSICAL_MASK_SHIFT 52
# (page_32_types.h). The PDPT entries are special: everything but P (and PWT/PCD) is
# reserved there, so Linux's pud_populate writes __pa(pmd) | _PAGE_PRESENT
# (arch/x86/include/asm/pgalloc.h) and the entry takes no part in permissions or the
# accessed bit. Swap entries as on x86-64 (pgtable-3level.h: type at the top, the
# offset inverted from bit 9).
I386_PAE = PagingMode(
    name="i386-pae",
    levels=(
        Level("pgd", 2, rights=False, table_flags=_PAGE_PRESENT),
        Level("pmd", 9, leaf_ok=True),
        Level("pte", 9),
    ),
    page_shift=12,
    entry_size=8,
    pfn_shift=12,
    pfn_bits=40,
    bits=dataclasses.replace(X86_BITS, soft_dirty=0),
    table_flags=_PAGE_TABLE,
    va_bits=32,
    protection_map=X86_PROTECTION_MAP,
    swp_type_shift=59,
    swp_type_bits=5,
    swp_offset_shift=9,
    swp_offset_bits=50,
    swp_offset_inverted=True,
    canonical_rule="zero",
)
