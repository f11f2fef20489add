"""ARMv8-A (AArch64) stage-1 translation tables as data, as Linux uses them.

Descriptor bits from arch/arm64/include/asm/pgtable-hwdef.h: bit 0 valid, bit 1
table (levels 0-2) or page (level 3; a level-3 descriptor with bit 1 clear is
invalid), AttrIndx[4:2], AP[2:1] at bits 7:6 (AP[1] = EL0 access, PTE_USER;
AP[2] = read-only, PTE_RDONLY), SH[9:8], AF bit 10, nG bit 11, DBM bit 51,
PXN bit 53, UXN bit 54. Linux's software bits (pgtable-prot.h): PTE_WRITE is
PTE_DBM, PTE_DIRTY bit 55, PTE_SPECIAL bit 56, and PROT_NONE is
PTE_PRESENT_INVALID = nG with the valid bit clear.

Linux's dirty tracking: a writable clean page is PTE_WRITE|PTE_RDONLY; with
hardware dirty management (FEAT_HAFDBS, TCR_EL1.HD) the first write clears
AP[2] (PTE_RDONLY) instead of faulting, and pte_dirty() is PTE_DIRTY or
(PTE_WRITE and not PTE_RDONLY). With TCR_EL1.HA the walker sets AF. Those are
the semantics of these modes (`hw_ad`); `without_hw_ad` gives a CPU without
FEAT_HAFDBS (an AF-clear leaf or a read-only write is a fault, for software).

Table descriptors carry APTable/UXNTable/PXNTable (Linux sets only PXNTable in
user tables); the walker does not take them into account (`rights=False`).
"""

from __future__ import annotations

import dataclasses

from vmsim.arch.paging import Level, PagingMode, PteBits

PTE_VALID = 1 << 0
PTE_TABLE_BIT = 1 << 1  # table descriptor (levels 0-2) / page descriptor (level 3)
PTE_TYPE_PAGE = 3
PMD_TYPE_TABLE = 3
PMD_TYPE_SECT = 1
PTE_USER = 1 << 6  # AP[1]
PTE_RDONLY = 1 << 7  # AP[2]
PTE_SHARED = 3 << 8  # SH[1:0], inner shareable
PTE_AF = 1 << 10  # Access Flag
PTE_NG = 1 << 11  # nG
PTE_GP = 1 << 50  # BTI guarded
PTE_DBM = 1 << 51  # Dirty Bit Management
PTE_CONT = 1 << 52
PTE_PXN = 1 << 53  # Privileged XN
PTE_UXN = 1 << 54  # User XN
PTE_WRITE = PTE_DBM  # pgtable-prot.h: same as DBM (51)
PTE_DIRTY = 1 << 55
PTE_SPECIAL = 1 << 56
PTE_DEVMAP = 1 << 57
PTE_PRESENT_INVALID = PTE_NG  # only when !PTE_VALID
PMD_TABLE_PXN = 1 << 59

# pgtable-prot.h: _PAGE_DEFAULT = _PROT_DEFAULT | PTE_ATTRINDX(MT_NORMAL = 0).
_PAGE_DEFAULT = PTE_TYPE_PAGE | PTE_AF | PTE_SHARED
PAGE_NONE = ((_PAGE_DEFAULT & ~PTE_VALID) | PTE_PRESENT_INVALID | PTE_RDONLY | PTE_NG
             | PTE_PXN | PTE_UXN)
PAGE_SHARED = _PAGE_DEFAULT | PTE_USER | PTE_RDONLY | PTE_NG | PTE_PXN | PTE_UXN | PTE_WRITE
PAGE_SHARED_EXEC = _PAGE_DEFAULT | PTE_USER | PTE_RDONLY | PTE_NG | PTE_PXN | PTE_WRITE
PAGE_READONLY = _PAGE_DEFAULT | PTE_USER | PTE_RDONLY | PTE_NG | PTE_PXN | PTE_UXN
PAGE_READONLY_EXEC = _PAGE_DEFAULT | PTE_USER | PTE_RDONLY | PTE_NG | PTE_PXN
PAGE_EXECONLY = _PAGE_DEFAULT | PTE_RDONLY | PTE_NG | PTE_PXN

# arch/arm64/mm/mmap.c protection_map[16] (PAGE_EXECONLY only with Enhanced PAN: not used).
ARM64_PROTECTION_MAP: tuple[int, ...] = (
    PAGE_NONE, PAGE_READONLY, PAGE_READONLY, PAGE_READONLY,
    PAGE_READONLY_EXEC, PAGE_READONLY_EXEC, PAGE_READONLY_EXEC, PAGE_READONLY_EXEC,
    PAGE_NONE, PAGE_READONLY, PAGE_SHARED, PAGE_SHARED,
    PAGE_READONLY_EXEC, PAGE_READONLY_EXEC, PAGE_SHARED_EXEC, PAGE_SHARED_EXEC,
)

ARM64_BITS = PteBits(
    present=PTE_VALID, write=PTE_WRITE, user=PTE_USER, accessed=PTE_AF, dirty=PTE_DIRTY,
    special=PTE_SPECIAL, protnone=PTE_PRESENT_INVALID, rdonly=PTE_RDONLY, uxn=PTE_UXN,
    pxn=PTE_PXN, dbm=PTE_DBM,
)
_NAMES = (("VALID", PTE_VALID), ("TABLE", PTE_TABLE_BIT), ("USER", PTE_USER),
          ("RDONLY", PTE_RDONLY), ("SHARED", PTE_SHARED), ("AF", PTE_AF), ("NG", PTE_NG),
          ("GP", PTE_GP), ("DBM", PTE_DBM), ("CONT", PTE_CONT), ("PXN", PTE_PXN),
          ("UXN", PTE_UXN), ("DIRTY", PTE_DIRTY), ("SPECIAL", PTE_SPECIAL),
          ("DEVMAP", PTE_DEVMAP), ("PXNTable", PMD_TABLE_PXN))

#: VA_BITS of these modes (CONFIG_ARM64_VA_BITS_48).
ARM64_VA_BITS = 48


def _arm64(name: str, page_shift: int, levels: tuple[Level, ...]) -> PagingMode:
    """A 48-bit-VA geometry for one translation granule: bits per level = page_shift - 3.

    The output address is bits [49:page_shift] of a descriptor (PTE_ADDR_LOW without
    LPA/LPA2); a level-3 descriptor needs bit 1 set; block descriptors may sit only at
    the levels marked leaf_ok (their low output-address bits are ignored, RES0).
    """
    assert sum(level.bits for level in levels) + page_shift == ARM64_VA_BITS
    return PagingMode(
        name=name,
        levels=(*levels[:-1], dataclasses.replace(levels[-1], bad=((PTE_TABLE_BIT, 0),))),
        page_shift=page_shift,
        entry_size=8,
        pfn_shift=page_shift,
        pfn_bits=50 - page_shift,
        bits=ARM64_BITS,
        table_flags=PMD_TYPE_TABLE | PMD_TABLE_PXN,  # __pmd_populate for a user table
        va_bits=ARM64_VA_BITS,
        protection_map=ARM64_PROTECTION_MAP,
        # pgtable.h: __SWP_TYPE_SHIFT 6, __SWP_TYPE_BITS 5, __SWP_OFFSET_SHIFT 12, 50 bits.
        swp_type_shift=6,
        swp_type_bits=5,
        swp_offset_shift=12,
        swp_offset_bits=50,
        table_test=(PTE_TABLE_BIT, PTE_TABLE_BIT),
        # The tables of a process are TTBR0_EL1's: they translate only VA[63:48] == 0; the
        # upper half goes through TTBR1_EL1 (the kernel's tables), never through these.
        canonical_rule="zero",
        misaligned_leaf_faults=False,
        exec_needs_user=False,
        bit_names=_NAMES,
    )


def _tables(*levels: tuple[str, int, bool]) -> tuple[Level, ...]:
    return tuple(Level(name, bits, leaf_ok=block, rights=False) for name, bits, block in levels)


# 4K granule (pgtable-hwdef.h with CONFIG_PGTABLE_LEVELS 4): PGDIR_SHIFT 39, PUD_SHIFT 30
# (1 GiB blocks), PMD_SHIFT 21 (2 MiB blocks), 512 entries per table.
ARM64_4K = _arm64("arm64-4k", 12, _tables(("pgd", 9, False), ("pud", 9, True),
                                          ("pmd", 9, True), ("pte", 9, False)))
# 16K granule, 48-bit VA, 4 levels: a 2-entry level-0 table (PGDIR_SHIFT 47), PUD_SHIFT 36
# (no 64 GiB blocks without LPA2), PMD_SHIFT 25 (32 MiB blocks), 2048 entries per table.
ARM64_16K = _arm64("arm64-16k", 14, _tables(("pgd", 1, False), ("pud", 11, False),
                                            ("pmd", 11, True), ("pte", 11, False)))
# 64K granule, 48-bit VA, 3 levels: a 64-entry level-1 table (PGDIR_SHIFT 42, no 4 TiB
# blocks without 52-bit PA), PMD_SHIFT 29 (512 MiB blocks), 8192 entries per table.
ARM64_64K = _arm64("arm64-64k", 16, _tables(("pgd", 6, False), ("pmd", 13, True),
                                            ("pte", 13, False)))


def without_hw_ad(mode: PagingMode) -> PagingMode:
    """The same format on a CPU without FEAT_HAFDBS (TCR_EL1.HA/HD clear): an access to a
    leaf with AF clear is an access-flag fault, a write to a read-only (AP[2]) page a
    permission fault whatever DBM says; software (Linux's fault handler) sets them."""
    return dataclasses.replace(mode, name=mode.name + "-nohafdbs", hw_ad=False)
