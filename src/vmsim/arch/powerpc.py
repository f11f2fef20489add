"""PowerPC page-table formats as data: 32-bit book3s (hash) and 64-bit book3s hash.

On these CPUs the MMU does not walk Linux's tables: it searches a hashed page
table (HPT), and on a miss Linux's ``hash_page`` walks the software tree, checks
the access against the software PTE bits and sets _PAGE_ACCESSED / _PAGE_DIRTY
before inserting an HPTE (arch/powerpc/mm/book3s32/hash_low.S,
arch/powerpc/mm/book3s64/hash_utils.c). vmsim's walker plays that part, so the
"hardware" semantics here are those of hash_page: read needs _PAGE_READ,
write _PAGE_WRITE (and _PAGE_READ), fetch _PAGE_EXEC; on 64-bit a
_PAGE_PRIVILEGED page refuses user accesses. Entries are stored big-endian, as
the kernel keeps them (``__be64 pte`` on book3s/64, a big-endian CPU on 32-bit).
"""

from __future__ import annotations

import dataclasses

from vmsim.arch.paging import Level, PagingMode, PteBits

# ---- 32-bit book3s: arch/powerpc/include/asm/book3s/32/pgtable.h -----------------------
PPC32_PAGE_PRESENT = 0x001  # software: pte contains a translation
PPC32_PAGE_HASHPTE = 0x002  # hash_page has made an HPTE for this pte
PPC32_PAGE_READ = 0x004  # software: read access allowed
PPC32_PAGE_GUARDED = 0x008  # G: prohibit speculative access
PPC32_PAGE_COHERENT = 0x010  # M: enforce memory coherence
PPC32_PAGE_NO_CACHE = 0x020  # I: cache inhibit
PPC32_PAGE_WRITETHRU = 0x040  # W: cache write-through
PPC32_PAGE_DIRTY = 0x080  # C: page changed
PPC32_PAGE_ACCESSED = 0x100  # R: page referenced
PPC32_PAGE_EXEC = 0x200  # software: exec allowed
PPC32_PAGE_WRITE = 0x400  # software: user write access allowed
PPC32_PAGE_SPECIAL = 0x800  # software: special page
PPC32_PAGE_MASK = 0xFFFF_F000
#: _PMD_PRESENT is 0: a PMD (= PGD, 2-level) entry is __pa(pte table) alone and is present
#: when its address bits are non-zero (_PMD_PRESENT_MASK = PAGE_MASK).
PPC32_PMD_PRESENT = 0

_PPC32_BASE = PPC32_PAGE_PRESENT | PPC32_PAGE_ACCESSED | PPC32_PAGE_COHERENT  # _PAGE_BASE
# arch/powerpc/include/asm/pgtable-masks.h: PAGE_NONE, PAGE_READONLY, ...
_R, _W, _X = PPC32_PAGE_READ, PPC32_PAGE_WRITE, PPC32_PAGE_EXEC


def _ppc_protection_map(base: int, r: int, w: int, x: int) -> tuple[int, ...]:
    """protection_map[16] of arch/powerpc/mm/pgtable.c (PAGE_EXECONLY_X for exec-only)."""
    none, ro, rox, rw, rwx, xo = base, base | r, base | r | x, base | r | w, base | r | w | x, base | x
    return (none, ro, ro, ro, xo, rox, rox, rox,
            none, ro, rw, rw, xo, rox, rwx, rwx)


PPC32_PROTECTION_MAP = _ppc_protection_map(_PPC32_BASE, _R, _W, _X)

PPC32_BITS = PteBits(
    present=PPC32_PAGE_PRESENT, write=PPC32_PAGE_WRITE, user=0, accessed=PPC32_PAGE_ACCESSED,
    dirty=PPC32_PAGE_DIRTY, special=PPC32_PAGE_SPECIAL, read=PPC32_PAGE_READ,
    exec=PPC32_PAGE_EXEC,
)

# PTE_INDEX_SIZE = PTE_SHIFT = 10, PGD_INDEX_SIZE = 32 - PGDIR_SHIFT = 10, PGDIR_SHIFT 22;
# PTE_RPN_SHIFT = PAGE_SHIFT. Swap entries: __swp_entry_to_pte(x) = x.val << 3 with the
# type in the low 5 bits of x.val: type at bit 3, offset at bit 8.
# There is no user bit: book3s/32 tells user from kernel by address (segment keys).
PPC32 = PagingMode(
    name="ppc32",
    levels=(
        Level("pgd", 10, present=PPC32_PAGE_MASK, rights=False),
        Level("pte", 10),
    ),
    page_shift=12,
    entry_size=4,
    pfn_shift=12,
    pfn_bits=20,
    bits=PPC32_BITS,
    table_flags=PPC32_PMD_PRESENT,
    va_bits=32,
    protection_map=PPC32_PROTECTION_MAP,
    swp_type_shift=3,
    swp_type_bits=5,
    swp_offset_shift=8,
    swp_offset_bits=24,
    byteorder="big",
    canonical_rule="zero",
    bit_names=(("PRESENT", PPC32_PAGE_PRESENT), ("HASHPTE", PPC32_PAGE_HASHPTE),
               ("READ", PPC32_PAGE_READ), ("GUARDED", PPC32_PAGE_GUARDED),
               ("COHERENT", PPC32_PAGE_COHERENT), ("NO_CACHE", PPC32_PAGE_NO_CACHE),
               ("WRITETHRU", PPC32_PAGE_WRITETHRU), ("DIRTY", PPC32_PAGE_DIRTY),
               ("ACCESSED", PPC32_PAGE_ACCESSED), ("EXEC", PPC32_PAGE_EXEC),
               ("WRITE", PPC32_PAGE_WRITE), ("SPECIAL", PPC32_PAGE_SPECIAL)),
)
TASK_SIZE_PPC32 = 0xB000_0000  # arch/powerpc/Kconfig TASK_SIZE default for book3s/32

# ---- 64-bit book3s: arch/powerpc/include/asm/book3s/64/pgtable.h ---------------------------
PPC64_PAGE_EXEC = 0x00001
PPC64_PAGE_WRITE = 0x00002
PPC64_PAGE_READ = 0x00004
PPC64_PAGE_PRIVILEGED = 0x00008  # kernel access only
PPC64_PAGE_SAO = 0x00010
PPC64_PAGE_NON_IDEMPOTENT = 0x00020
PPC64_PAGE_DIRTY = 0x00080  # C: page changed
PPC64_PAGE_ACCESSED = 0x00100  # R: page referenced
PPC64_PAGE_SOFT_DIRTY = 0x00200  # _RPAGE_SW3
PPC64_PAGE_SPECIAL = 0x00400  # _RPAGE_SW2
PPC64_PAGE_DEVMAP = 0x00800  # _RPAGE_SW1
PPC64_PAGE_INVALID = 1 << 61  # _RPAGE_SW0
PPC64_PAGE_PTE = 1 << 62  # distinguishes PTEs from pointers
PPC64_PAGE_PRESENT = 1 << 63  # pte contains a translation
PPC64_PAGE_PA_MAX = 53  # _PAGE_PA_MAX: PTE_RPN_MASK = ((1 << 53) - 1) & PAGE_MASK
#: HASH_{PGD,PUD,PMD}_VAL_BITS (book3s/64/hash.h): a table pointer is __pa(table) | _PAGE_PRESENT.
PPC64_TABLE_VAL_BITS = PPC64_PAGE_PRESENT

_PPC64_BASE = PPC64_PAGE_PRESENT | PPC64_PAGE_ACCESSED | PPC64_PAGE_PTE  # _PAGE_BASE; pfn_pte adds _PAGE_PTE
PPC64_PROTECTION_MAP = _ppc_protection_map(_PPC64_BASE, PPC64_PAGE_READ, PPC64_PAGE_WRITE,
                                           PPC64_PAGE_EXEC)

PPC64_BITS = PteBits(
    present=PPC64_PAGE_PRESENT, write=PPC64_PAGE_WRITE, user=0, accessed=PPC64_PAGE_ACCESSED,
    dirty=PPC64_PAGE_DIRTY, huge=PPC64_PAGE_PTE, special=PPC64_PAGE_SPECIAL,
    soft_dirty=PPC64_PAGE_SOFT_DIRTY, read=PPC64_PAGE_READ, exec=PPC64_PAGE_EXEC,
    privileged=PPC64_PAGE_PRIVILEGED,
)
_PPC64_NAMES = (("EXEC", PPC64_PAGE_EXEC), ("WRITE", PPC64_PAGE_WRITE), ("READ", PPC64_PAGE_READ),
                ("PRIVILEGED", PPC64_PAGE_PRIVILEGED), ("SAO", PPC64_PAGE_SAO),
                ("NON_IDEMPOTENT", PPC64_PAGE_NON_IDEMPOTENT), ("DIRTY", PPC64_PAGE_DIRTY),
                ("ACCESSED", PPC64_PAGE_ACCESSED), ("SOFT_DIRTY", PPC64_PAGE_SOFT_DIRTY),
                ("SPECIAL", PPC64_PAGE_SPECIAL), ("DEVMAP", PPC64_PAGE_DEVMAP),
                ("INVALID", PPC64_PAGE_INVALID), ("PTE", PPC64_PAGE_PTE),
                ("PRESENT", PPC64_PAGE_PRESENT))


def _ppc64(name: str, levels: tuple[Level, ...], page_shift: int) -> PagingMode:
    """A book3s/64 hash geometry: RPN = physical address bits page_shift..52; table pointers
    hold the table's physical address itself (tables may be smaller than a page)."""
    levels = tuple(dataclasses.replace(level, rights=False) for level in levels)
    return PagingMode(
        name=name,
        levels=levels,
        page_shift=page_shift,
        entry_size=8,
        pfn_shift=page_shift,
        pfn_bits=PPC64_PAGE_PA_MAX - page_shift,
        bits=PPC64_BITS,
        table_flags=PPC64_TABLE_VAL_BITS,
        va_bits=page_shift + sum(level.bits for level in levels),
        protection_map=PPC64_PROTECTION_MAP,
        # __swp_entry(type, offset) = type | (offset << PAGE_SHIFT) & PTE_RPN_MASK, | _PAGE_PTE.
        swp_type_shift=0,
        swp_type_bits=5,
        swp_offset_shift=page_shift,
        swp_offset_bits=PPC64_PAGE_PA_MAX - page_shift,
        swp_flags=PPC64_PAGE_PTE,
        byteorder="big",
        canonical_rule="zero",
        table_test=(PPC64_PAGE_PTE, 0),
        table_addr=(((1 << PPC64_PAGE_PA_MAX) - 1) & ~0xFF, 0, 0),
        misaligned_leaf_faults=False,
        bit_names=_PPC64_NAMES,
    )


# hash-4k.h: H_PTE_INDEX_SIZE 9, H_PMD_INDEX_SIZE 7, H_PUD_INDEX_SIZE 9, H_PGD_INDEX_SIZE 9.
PPC64_4K = _ppc64("ppc64-4k", (Level("pgd", 9), Level("pud", 9), Level("pmd", 7),
                               Level("pte", 9)), 12)
# hash-64k.h: H_PTE_INDEX_SIZE 8, H_PMD_INDEX_SIZE 10, H_PUD_INDEX_SIZE 10, H_PGD_INDEX_SIZE 8;
# 16 MiB transparent huge pages are PMD leaves (_PAGE_PTE set in a PMD).
PPC64_64K = _ppc64("ppc64-64k", (Level("pgd", 8), Level("pud", 10),
                                 Level("pmd", 10, leaf_ok=True), Level("pte", 8)), 16)
# The lecture-era geometry (arch/powerpc/include/asm/pgtable-ppc64-64k.h of Linux 3.x):
# PGD_INDEX_SIZE 6, PUD folded, PMD_INDEX_SIZE 12, PTE_INDEX_SIZE 12, 64 KiB pages -- with
# today's software PTE bits (the 3.x bit layout differed).
PPC64_64K_2012 = _ppc64("ppc64-64k-2012", (Level("pgd", 6), Level("pmd", 12), Level("pte", 12)),
                        16)
