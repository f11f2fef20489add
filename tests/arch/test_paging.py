"""Paging-mode geometry and the generic walker, checked against the kernel's headers."""

from __future__ import annotations

import pytest

from vmsim.arch import X86_64, get_mode, x86
from vmsim.arch.paging import Access, MmuFault, translate, walk


class Ram:
    """A tiny physical memory for walker tests."""

    def __init__(self, size: int = 1 << 20) -> None:
        self.mem = bytearray(size)

    def read_entry(self, phys: int, size: int) -> int:
        return int.from_bytes(self.mem[phys:phys + size], "little")

    def write_entry(self, phys: int, size: int, value: int) -> None:
        self.mem[phys:phys + size] = value.to_bytes(size, "little")


def test_x86_64_geometry_matches_kernel_headers() -> None:
    # arch/x86/include/asm/pgtable_64_types.h: PGDIR_SHIFT 39, PUD_SHIFT 30, PMD_SHIFT 21,
    # PTRS_PER_{PGD,PUD,PMD,PTE} 512; arch/x86/include/asm/page_types.h: PAGE_SHIFT 12.
    assert X86_64.shifts == (39, 30, 21, 12)
    assert X86_64.ptrs_per == (512, 512, 512, 512)
    assert X86_64.table_sizes == (4096,) * 4
    assert X86_64.page_size == 4096
    # PTE_PFN_MASK with __PHYSICAL_MASK_SHIFT 52: bits 12..51
    assert X86_64.pfn_mask == ((1 << 52) - 1) & ~0xFFF
    assert X86_64.level_span(1) == 1 << 30 and X86_64.level_span(2) == 1 << 21


def test_x86_pte_bits_match_pgtable_types_h() -> None:
    # arch/x86/include/asm/pgtable_types.h _PAGE_BIT_* values
    b = X86_64.bits
    assert (b.present, b.write, b.user, b.pwt, b.pcd) == (1, 2, 4, 8, 16)
    assert (b.accessed, b.dirty, b.huge, b.global_) == (1 << 5, 1 << 6, 1 << 7, 1 << 8)
    assert b.special == 1 << 9 and b.soft_dirty == 1 << 11 and b.nx == 1 << 63
    assert b.protnone == b.global_
    assert x86._PAGE_TABLE == 0x67  # P|RW|US|A|D


def test_protection_map_private_write_is_copy() -> None:
    # A private writable mapping starts without RW (PAGE_COPY); shared gets PAGE_SHARED.
    pm = X86_64.protection_map
    assert pm[0x3] == x86.PAGE_COPY and not pm[0x3] & x86._PAGE_RW
    assert pm[0xB] == x86.PAGE_SHARED and pm[0xB] & x86._PAGE_RW
    assert pm[0x0] == x86.PAGE_NONE and not pm[0] & x86._PAGE_PRESENT
    assert not pm[0x5] & x86._PAGE_NX and pm[0x1] & x86._PAGE_NX


def test_get_mode_names_known_modes() -> None:
    assert get_mode("x86_64") is X86_64
    with pytest.raises(ValueError, match="x86_64"):
        get_mode("vax")


def _build(ram: Ram, va: int, leaf_level: int, frame_phys: int, flags: int) -> None:
    """Tables at 0x1000, 0x2000, ...; a leaf at leaf_level."""
    mode = X86_64
    table = 0x1000
    for lvl in range(leaf_level):
        nxt = table + 0x1000
        ram.write_entry(table + mode.index(lvl, va) * 8, 8, mode.make_entry(nxt >> 12, x86._PAGE_TABLE))
        table = nxt
    huge = x86._PAGE_PSE if leaf_level < 3 else 0
    ram.write_entry(table + mode.index(leaf_level, va) * 8, 8,
                    mode.make_entry(frame_phys >> 12, flags | huge))


@pytest.mark.parametrize(("level", "span"), [(3, 1 << 12), (2, 1 << 21), (1, 1 << 30)])
def test_walk_decodes_4k_2m_1g_leaves(level: int, span: int) -> None:
    ram = Ram()
    va = 0x7F12_3456_7000 + 0x123
    frame = 0x40000000 if level == 1 else 0x200000 * 3 if level == 2 else 0x9000
    _build(ram, va, level, frame, x86.PAGE_SHARED)
    w = walk(X86_64, ram, 0x1000, va)
    assert w.leaf_level == level and w.page_size == span
    assert w.phys == frame + (va & (span - 1))
    assert [s.name for s in w.steps] == ["pgd", "pud", "pmd", "pte"][:level + 1]


def test_translate_sets_accessed_and_dirty_like_hardware() -> None:
    ram = Ram()
    va = 0x400000
    _build(ram, va, 3, 0x9000, x86.PAGE_SHARED & ~x86._PAGE_ACCESSED)
    pte_addr = walk(X86_64, ram, 0x1000, va).steps[-1].entry_addr
    phys, err = translate(X86_64, ram, 0x1000, va, Access.READ)
    assert (phys, err) == (0x9000, 0)
    entry = ram.read_entry(pte_addr, 8)
    assert entry & x86._PAGE_ACCESSED and not entry & x86._PAGE_DIRTY
    translate(X86_64, ram, 0x1000, va, Access.WRITE)
    assert ram.read_entry(pte_addr, 8) & x86._PAGE_DIRTY


def test_translate_error_codes() -> None:
    ram = Ram()
    va = 0x400000
    _build(ram, va, 3, 0x9000, x86.PAGE_READONLY)
    assert translate(X86_64, ram, 0x1000, va + 0x1000, Access.READ) == (-1, MmuFault.USER)
    assert translate(X86_64, ram, 0x1000, va, Access.WRITE) == (
        -1, MmuFault.USER | MmuFault.WRITE | MmuFault.PROT)
    assert translate(X86_64, ram, 0x1000, va, Access.EXEC) == (
        -1, MmuFault.USER | MmuFault.INSTR | MmuFault.PROT)
    # supervisor-only entry refuses a user access
    _build(ram, 0x800000, 3, 0xA000, x86._PAGE_PRESENT | x86._PAGE_RW)
    assert translate(X86_64, ram, 0x1000, 0x800000, Access.READ)[0] == -1
    assert translate(X86_64, ram, 0x1000, 0x800000, Access.READ, user=False)[0] == 0xA000
    # non-canonical addresses never translate
    assert translate(X86_64, ram, 0x1000, 1 << 47, Access.READ)[0] == -1


def test_protnone_is_present_to_the_kernel_only() -> None:
    entry = X86_64.make_entry(5, x86.PAGE_NONE)
    assert X86_64.is_present(entry) and not X86_64.hw_present(entry)
    assert "PROTNONE" in X86_64.describe(entry)
