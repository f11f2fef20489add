"""RISC-V Sv39 / Sv48 / Sv57 page tables as data (the privileged spec, "Virtual-Memory
System"; Linux's arch/riscv/include/asm/pgtable-bits.h, pgtable-64.h, pgtable.h).

A PTE: V bit 0, R 1, W 2, X 3, U 4, G 5, A 6, D 7, RSW 9:8 (Linux: _PAGE_SPECIAL
bit 8, _PAGE_DEVMAP bit 9), PPN from bit 10 (_PAGE_PFN_SHIFT). A valid PTE with
R|W|X = 0 points at the next table; any other valid PTE is a leaf, at any level
(a superpage above the last, whose low PPN bits must be zero, else a page
fault); W without R is reserved; a pointer at the last level is a fault. Only
leaves carry permissions and A/D. The walker sets A and D itself (Svadu; Linux
handles both that and software A/D). PROT_NONE is _PAGE_PROT_NONE = _PAGE_GLOBAL
with V clear.
"""

from __future__ import annotations

from vmsim.arch.paging import Level, PagingMode, PteBits

_PAGE_PRESENT = 1 << 0
_PAGE_READ = 1 << 1
_PAGE_WRITE = 1 << 2
_PAGE_EXEC = 1 << 3
_PAGE_USER = 1 << 4
_PAGE_GLOBAL = 1 << 5
_PAGE_ACCESSED = 1 << 6
_PAGE_DIRTY = 1 << 7
_PAGE_SPECIAL = 1 << 8
_PAGE_DEVMAP = 1 << 9
_PAGE_TABLE = _PAGE_PRESENT
_PAGE_PROT_NONE = _PAGE_GLOBAL
_PAGE_LEAF = _PAGE_READ | _PAGE_WRITE | _PAGE_EXEC
_PAGE_PFN_SHIFT = 10

# arch/riscv/include/asm/pgtable.h
_PAGE_BASE = _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_USER
PAGE_NONE = _PAGE_PROT_NONE | _PAGE_READ
PAGE_READ = _PAGE_BASE | _PAGE_READ
PAGE_WRITE = _PAGE_BASE | _PAGE_READ | _PAGE_WRITE
PAGE_EXEC = _PAGE_BASE | _PAGE_EXEC
PAGE_READ_EXEC = _PAGE_BASE | _PAGE_READ | _PAGE_EXEC
PAGE_WRITE_EXEC = _PAGE_BASE | _PAGE_READ | _PAGE_EXEC | _PAGE_WRITE
PAGE_COPY, PAGE_COPY_EXEC = PAGE_READ, PAGE_READ_EXEC
PAGE_SHARED, PAGE_SHARED_EXEC = PAGE_WRITE, PAGE_WRITE_EXEC

# arch/riscv/mm/init.c protection_map[16]
RISCV_PROTECTION_MAP: tuple[int, ...] = (
    PAGE_NONE, PAGE_READ, PAGE_COPY, PAGE_COPY,
    PAGE_EXEC, PAGE_READ_EXEC, PAGE_COPY_EXEC, PAGE_COPY_EXEC,
    PAGE_NONE, PAGE_READ, PAGE_SHARED, PAGE_SHARED,
    PAGE_EXEC, PAGE_READ_EXEC, PAGE_SHARED_EXEC, PAGE_SHARED_EXEC,
)

RISCV_BITS = PteBits(
    present=_PAGE_PRESENT, write=_PAGE_WRITE, user=_PAGE_USER, accessed=_PAGE_ACCESSED,
    dirty=_PAGE_DIRTY, global_=_PAGE_GLOBAL, special=_PAGE_SPECIAL, protnone=_PAGE_PROT_NONE,
    read=_PAGE_READ, exec=_PAGE_EXEC,
)
_NAMES = (("V", _PAGE_PRESENT), ("R", _PAGE_READ), ("W", _PAGE_WRITE), ("X", _PAGE_EXEC),
          ("U", _PAGE_USER), ("G", _PAGE_GLOBAL), ("A", _PAGE_ACCESSED), ("D", _PAGE_DIRTY),
          ("SPECIAL", _PAGE_SPECIAL), ("DEVMAP", _PAGE_DEVMAP))

#: W without R is reserved at every level; at the last level a pointer (R|W|X = 0) is too.
_RESERVED_WRITE_ONLY = ((_PAGE_READ | _PAGE_WRITE, _PAGE_WRITE),)
_POINTER_AT_LAST = ((_PAGE_LEAF, 0),)


def _sv(name: str, names: tuple[str, ...]) -> PagingMode:
    """An Sv(12 + 9 * levels) mode: 9 index bits per level, 44-bit PPN at bit 10."""
    n = len(names)
    levels = tuple(Level(lvl, 9, leaf_ok=True, rights=False,
                         bad=_RESERVED_WRITE_ONLY + (_POINTER_AT_LAST if i == n - 1 else ()))
                   for i, lvl in enumerate(names))
    return PagingMode(
        name=name,
        levels=levels,
        page_shift=12,
        entry_size=8,
        pfn_shift=_PAGE_PFN_SHIFT,
        pfn_bits=44,
        bits=RISCV_BITS,
        table_flags=_PAGE_TABLE,
        va_bits=12 + 9 * n,
        protection_map=RISCV_PROTECTION_MAP,
        # pgtable.h: __SWP_TYPE_SHIFT 7, 5 type bits, the offset above them (bit 12 up).
        swp_type_shift=7,
        swp_type_bits=5,
        swp_offset_shift=12,
        swp_offset_bits=52,
        table_test=(_PAGE_LEAF, 0),
        bit_names=_NAMES,
    )


# pgtable-64.h: PGDIR_SHIFT_L3 30, _L4 39, _L5 48; P4D_SHIFT 39, PUD_SHIFT 30, PMD_SHIFT 21;
# PTRS_PER_* = PAGE_SIZE / sizeof(entry) = 512.
RISCV_SV39 = _sv("riscv-sv39", ("pgd", "pmd", "pte"))
RISCV_SV48 = _sv("riscv-sv48", ("pgd", "pud", "pmd", "pte"))
RISCV_SV57 = _sv("riscv-sv57", ("pgd", "p4d", "pud", "pmd", "pte"))
