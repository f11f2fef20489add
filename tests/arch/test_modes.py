"""Every paging mode of issue 4: its geometry against the kernel's headers, and the one
generic walker (`translate`) against an independent reference decoder per family,
on randomly built tables.

The reference decoders below are written from the architecture documents (Intel SDM
vol. 3 ch. 4, the ARMv8-A ARM D5 "VMSAv8-64 translation", the RISC-V privileged
spec "Sv39/48/57", and for PowerPC the rules of Linux's hash_page, which is the
"hardware" walking Linux's tree there). They use literal bit values, not the
PagingMode declarations, so a wrong declaration shows up as a disagreement.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from vmsim.arch import MODES, get_mode
from vmsim.arch.paging import Access, MmuFault, PagingMode, translate, walk
from vmsim.arch.x86 import TASK_SIZE_I386

# ---- geometry ----------------------------------------------------------------------------------
# name -> (PAGE_SHIFT, shifts top first, PTRS_PER_* top first, entry size, VA bits)
GEOMETRY: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], int, int]] = {
    # arch/x86/include/asm/pgtable-2level_types.h: PGDIR_SHIFT 22, PTRS_PER_PGD 1024,
    # PTRS_PER_PTE 1024 (32-bit pte_t).
    "i386": (12, (22, 12), (1024, 1024), 4, 32),
    # arch/x86/include/asm/pgtable-3level_types.h: PGDIR_SHIFT 30, PTRS_PER_PGD 4,
    # PMD_SHIFT 21, PTRS_PER_PMD 512, PTRS_PER_PTE 512 (64-bit pte_t).
    "i386-pae": (12, (30, 21, 12), (4, 512, 512), 8, 32),
    # arch/x86/include/asm/pgtable_64_types.h: PGDIR_SHIFT 39 (4-level) / 48 (5-level),
    # P4D_SHIFT 39, PUD_SHIFT 30, PMD_SHIFT 21, PTRS_PER_* 512; __VIRTUAL_MASK_SHIFT 47 / 56.
    "x86_64": (12, (39, 30, 21, 12), (512,) * 4, 8, 48),
    "x86_64-la57": (12, (48, 39, 30, 21, 12), (512,) * 5, 8, 57),
    # arch/powerpc/include/asm/book3s/32/pgtable.h: PTE_INDEX_SIZE = PTE_SHIFT = 10,
    # PGDIR_SHIFT = PAGE_SHIFT + PTE_INDEX_SIZE = 22, PGD_INDEX_SIZE = 32 - PGDIR_SHIFT.
    "ppc32": (12, (22, 12), (1024, 1024), 4, 32),
    # arch/powerpc/include/asm/book3s/64/hash-4k.h: H_PTE_INDEX_SIZE 9, H_PMD_INDEX_SIZE 7,
    # H_PUD_INDEX_SIZE 9, H_PGD_INDEX_SIZE 9; book3s/64/pgtable.h: PMD_SHIFT = PAGE_SHIFT +
    # PTE_INDEX_SIZE, PUD_SHIFT = PMD_SHIFT + PMD_INDEX_SIZE, PGDIR_SHIFT = PUD_SHIFT +
    # PUD_INDEX_SIZE; H_PGTABLE_EADDR_SIZE = the sum + PAGE_SHIFT = 46.
    "ppc64-4k": (12, (37, 28, 21, 12), (512, 512, 128, 512), 8, 46),
    # arch/powerpc/include/asm/book3s/64/hash-64k.h: 8 / 10 / 10 / 8 + 16 (52-bit EA).
    "ppc64-64k": (16, (44, 34, 24, 16), (256, 1024, 1024, 256), 8, 52),
    # Linux 3.x arch/powerpc/include/asm/pgtable-ppc64-64k.h: PTE_INDEX_SIZE 12,
    # PMD_INDEX_SIZE 12, PUD_INDEX_SIZE 0, PGD_INDEX_SIZE 6 (the lecture's figure).
    "ppc64-64k-2012": (16, (40, 28, 16), (64, 4096, 4096), 8, 46),
    # arch/riscv/include/asm/pgtable-64.h: PGDIR_SHIFT_L3 30 / _L4 39 / _L5 48, P4D_SHIFT 39,
    # PUD_SHIFT 30, PMD_SHIFT 21; PTRS_PER_* = PAGE_SIZE / sizeof(entry) = 512.
    "riscv-sv39": (12, (30, 21, 12), (512,) * 3, 8, 39),
    "riscv-sv48": (12, (39, 30, 21, 12), (512,) * 4, 8, 48),
    "riscv-sv57": (12, (48, 39, 30, 21, 12), (512,) * 5, 8, 57),
}


def _arm64_geometry(page_shift: int, levels: int) -> tuple[int, tuple[int, ...], tuple[int, ...], int, int]:
    """arch/arm64/include/asm/pgtable-hwdef.h, for VA_BITS 48:
    ARM64_HW_PGTABLE_LEVEL_SHIFT(n) = (PAGE_SHIFT - 3) * (4 - n) + 3, PMD_SHIFT = ..._SHIFT(2),
    PUD_SHIFT = ..._SHIFT(1), PGDIR_SHIFT = ..._SHIFT(4 - CONFIG_PGTABLE_LEVELS),
    PTRS_PER_PTE/PMD/PUD = 1 << (PAGE_SHIFT - 3), PTRS_PER_PGD = 1 << (VA_BITS - PGDIR_SHIFT)."""
    def level_shift(n: int) -> int:
        return (page_shift - 3) * (4 - n) + 3
    shifts = tuple(level_shift(n) for n in range(4 - levels, 4))  # level 3's is PAGE_SHIFT
    ptrs = (1 << (48 - shifts[0]),) + (1 << (page_shift - 3),) * (levels - 1)
    return page_shift, shifts, ptrs, 8, 48


# CONFIG_PGTABLE_LEVELS for 48-bit VA: 4K -> 4, 16K -> 4, 64K -> 3 (arch/arm64/Kconfig).
GEOMETRY["arm64-4k"] = _arm64_geometry(12, 4)
GEOMETRY["arm64-16k"] = _arm64_geometry(14, 4)
GEOMETRY["arm64-64k"] = _arm64_geometry(16, 3)


def test_every_mode_of_the_issue_is_registered() -> None:
    assert set(MODES) == set(GEOMETRY)
    for name, mode in MODES.items():
        assert get_mode(name) is mode and mode.name == name


@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_geometry_matches_kernel_headers(name: str) -> None:
    page_shift, shifts, ptrs, entry_size, va_bits = GEOMETRY[name]
    mode = get_mode(name)
    assert mode.page_shift == page_shift and mode.page_size == 1 << page_shift
    assert mode.shifts == shifts, "PGDIR_SHIFT ... PAGE_SHIFT"
    assert mode.ptrs_per == ptrs, "PTRS_PER_PGD ... PTRS_PER_PTE"
    assert mode.entry_size == entry_size
    assert mode.table_sizes == tuple(n * entry_size for n in ptrs)
    assert mode.va_bits == va_bits == shifts[0] + ptrs[0].bit_length() - 1
    for lvl, shift in enumerate(shifts):
        assert mode.level_span(lvl) == 1 << shift
        assert mode.index(lvl, (len(ptrs) and (ptrs[lvl] - 1)) << shift) == ptrs[lvl] - 1


def test_arm64_levels_are_page_shift_minus_3() -> None:
    for name, levels in (("arm64-4k", 4), ("arm64-16k", 4), ("arm64-64k", 3)):
        mode = get_mode(name)
        assert len(mode.levels) == levels
        assert all(lv.bits == mode.page_shift - 3 for lv in mode.levels[1:])


def test_table_sizes_named_in_hash_headers() -> None:
    # hash-4k.h comments: PTE 4KB, PMD 1KB, PUD 4KB, PGD 4KB; hash-64k.h: 2KB, 8KB, 8KB, 2KB.
    assert get_mode("ppc64-4k").table_sizes == (4096, 4096, 1024, 4096)
    assert get_mode("ppc64-64k").table_sizes == (2048, 8192, 8192, 2048)
    # PAE: the PDPT is 4 entries, 32 bytes.
    assert get_mode("i386-pae").table_sizes[0] == 32


def test_frame_number_fields() -> None:
    # PTE_PFN_MASK: x86-64/PAE __PHYSICAL_MASK_SHIFT 52, i386 32.
    assert get_mode("x86_64").pfn_mask == ((1 << 52) - 1) & ~0xFFF
    assert get_mode("i386-pae").pfn_mask == ((1 << 52) - 1) & ~0xFFF
    assert get_mode("i386").pfn_mask == 0xFFFF_F000
    # RISC-V _PAGE_PFN_SHIFT 10, 44-bit PPN.
    assert get_mode("riscv-sv48").pfn_mask == ((1 << 44) - 1) << 10
    # book3s/64 PTE_RPN_MASK = ((1 << _PAGE_PA_MAX(53)) - 1) & PAGE_MASK
    assert get_mode("ppc64-64k").pfn_mask == ((1 << 53) - 1) & ~0xFFFF
    # arm64 PTE_ADDR_LOW = ((1 << (50 - PAGE_SHIFT)) - 1) << PAGE_SHIFT
    for name, ps in (("arm64-4k", 12), ("arm64-16k", 14), ("arm64-64k", 16)):
        assert get_mode(name).pfn_mask == ((1 << (50 - ps)) - 1) << ps


def test_entry_bits_match_headers() -> None:
    # arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h
    b = get_mode("arm64-4k").bits
    assert (b.present, b.user, b.rdonly, b.accessed) == (1, 1 << 6, 1 << 7, 1 << 10)
    assert (b.dbm, b.write, b.pxn, b.uxn, b.dirty) == (1 << 51, 1 << 51, 1 << 53, 1 << 54, 1 << 55)
    assert b.protnone == 1 << 11  # PTE_PRESENT_INVALID = PTE_NG
    # arch/riscv/include/asm/pgtable-bits.h: V R W X U G A D
    b = get_mode("riscv-sv39").bits
    assert (b.present, b.read, b.write, b.exec, b.user, b.global_, b.accessed, b.dirty) == (
        1, 2, 4, 8, 16, 32, 64, 128)
    assert get_mode("riscv-sv39").pfn_shift == 10
    # arch/powerpc/include/asm/book3s/32/pgtable.h
    b = get_mode("ppc32").bits
    assert (b.present, b.read, b.dirty, b.accessed, b.exec, b.write, b.special) == (
        0x1, 0x4, 0x80, 0x100, 0x200, 0x400, 0x800)
    # arch/powerpc/include/asm/book3s/64/pgtable.h
    b = get_mode("ppc64-4k").bits
    assert (b.exec, b.write, b.read, b.privileged, b.dirty, b.accessed) == (1, 2, 4, 8, 0x80, 0x100)
    assert b.present == 1 << 63 and b.huge == 1 << 62  # _PAGE_PTE marks a leaf
    # i386 without PAE has no NX (_PAGE_NX is 0), PAE has bit 63.
    assert get_mode("i386").bits.nx == 0 and get_mode("i386-pae").bits.nx == 1 << 63


@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_swap_entries_round_trip_and_are_not_present(name: str) -> None:
    mode = get_mode(name)
    rng = random.Random(name)
    for _ in range(200):
        typ = rng.randrange(1 << mode.swp_type_bits)
        off = rng.randrange(1 << min(mode.swp_offset_bits, 20))
        entry = mode.swp_entry_to_pte(typ, off)
        assert entry < 1 << (8 * mode.entry_size)
        assert (mode.pte_swp_type(entry), mode.pte_swp_offset(entry)) == (typ, off)
        assert not mode.is_present(entry)


def test_swap_layouts_match_headers() -> None:
    # pgtable-2level.h: type at bit 1 (_PAGE_BIT_PRESENT + 1), offset at bit 9.
    assert get_mode("i386").swp_entry_to_pte(3, 5) == (3 << 1) | (5 << 9)
    # book3s/32/pgtable.h: __swp_entry_to_pte(x) = x.val << 3, x.val = type | offset << 5.
    assert get_mode("ppc32").swp_entry_to_pte(3, 5) == (3 | 5 << 5) << 3
    # arm64 pgtable.h: type << 6 | offset << 12; riscv: type << 7 | offset << 12.
    assert get_mode("arm64-4k").swp_entry_to_pte(3, 5) == 3 << 6 | 5 << 12
    assert get_mode("riscv-sv39").swp_entry_to_pte(3, 5) == 3 << 7 | 5 << 12
    # book3s/64: type | offset << PAGE_SHIFT, then | _PAGE_PTE.
    assert get_mode("ppc64-64k").swp_entry_to_pte(3, 5) == 3 | 5 << 16 | 1 << 62


@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_protection_map_shape(name: str) -> None:
    """PROT_NONE is not accessible, private writable maps are read-only (COW), shared
    writable ones writable, in every mode (checked through translate on a one-page table)."""
    mode = get_mode(name)
    pm = mode.protection_map
    assert len(pm) == 16
    outcomes = {}
    for vm_flags in (0x0, 0x1, 0x3, 0x4, 0xB, 0xF):
        ram = Ram(mode)
        va = 0x40_0000
        ram.map_page(va, 0x123, pm[vm_flags])
        outcomes[vm_flags] = tuple(translate(mode, ram, ram.root, va, acc)[0] >= 0
                                   for acc in (Access.READ, Access.WRITE, Access.EXEC))
    assert outcomes[0x0] == (False, False, False)
    assert outcomes[0x1][:2] == (True, False)
    assert outcomes[0x3][:2] == (True, False)  # private writable: COW, read-only entry
    assert outcomes[0x4][2] is True
    assert outcomes[0xB][:2] == (True, True)  # shared writable
    assert outcomes[0xF] == (True, True, True)
    if mode.bits.nx or mode.bits.exec or mode.bits.uxn:
        assert outcomes[0x1][2] is False  # no PROT_EXEC, no fetch


def test_i386_task_size() -> None:
    assert TASK_SIZE_I386 == 0xC000_0000


# ---- a small RAM and table builder -------------------------------------------------------------
class Ram:
    """A bytearray physical memory with a bump allocator for tables (aligned to their size)."""

    def __init__(self, mode: PagingMode, size: int = 1 << 22) -> None:
        self.mode = mode
        self.mem = bytearray(size)
        self.next = 0x1000
        self.root = self.alloc(0)
        self.written: list[int] = []  # addresses of the walker's entry writes

    def read_entry(self, phys: int, size: int) -> int:
        return int.from_bytes(self.mem[phys:phys + size], "little")

    def write_entry(self, phys: int, size: int, value: int) -> None:
        self.mem[phys:phys + size] = value.to_bytes(size, "little")
        self.written.append(phys)

    def get(self, phys: int) -> int:
        """The entry at phys in the mode's byte order (what the reference decoders read)."""
        es = self.mode.entry_size
        return int.from_bytes(self.mem[phys:phys + es], self.mode.byteorder)

    def put(self, phys: int, value: int) -> None:
        es = self.mode.entry_size
        self.mem[phys:phys + es] = value.to_bytes(es, self.mode.byteorder)

    def alloc(self, level: int) -> int:
        size = max(self.mode.table_sizes[level], 256)
        addr = -(-self.next // size) * size
        self.next = addr + size
        assert self.next <= len(self.mem), "Ram: out of table space"
        return addr

    def pointer(self, level: int, table: int) -> int:
        """A table-pointer entry as Linux writes it (pXd_populate)."""
        mode = self.mode
        return mode.make_entry(table >> mode.page_shift, mode.table_entry_flags(level)) if (
            mode.table_addr is None) else table | mode.table_entry_flags(level)

    def map_page(self, va: int, pfn: int, flags: int) -> None:
        mode = self.mode
        table = self.root
        for lvl in range(len(mode.levels) - 1):
            slot = table + mode.index(lvl, va) * mode.entry_size
            entry = self.get(slot)
            if not entry:
                nxt = self.alloc(lvl + 1)
                self.put(slot, self.pointer(lvl, nxt))
                table = nxt
            else:
                table = mode.table_phys(entry)
        self.put(table + mode.index(len(mode.levels) - 1, va) * mode.entry_size,
                 mode.make_entry(pfn, flags))


# ---- reference decoders, one per family --------------------------------------------------------
OK, NOT_PRESENT, PROT, MALFORMED = "ok", "not-present", "protection", "malformed"


@dataclass
class Ref:
    """A reference decoder's answer: outcome, physical address, and the entry updates."""

    outcome: str
    phys: int = -1
    writes: dict[int, int] = field(default_factory=dict)


def ref_x86(ram: Ram, va: int, access: int, user: bool, name: str) -> Ref:
    """Intel SDM vol. 3, 4.3 (32-bit paging, CR4.PSE), 4.4 (PAE, EFER.NXE), 4.5 (4/5-level).

    4.8: a paging-structure entry used to reach the next level gets its accessed
    flag whatever the outcome; the leaf's A (and D for a write) only when allowed.
    """
    bits = {"i386": (10, 10), "i386-pae": (2, 9, 9), "x86_64": (9, 9, 9, 9),
            "x86_64-la57": (9, 9, 9, 9, 9)}[name]
    es = 4 if name == "i386" else 8
    large = {"i386": {0}, "i386-pae": {1}, "x86_64": {1, 2}, "x86_64-la57": {2, 3}}[name]
    addr_mask = 0xFFFF_F000 if es == 4 else 0x000F_FFFF_FFFF_F000
    nx_bit = 0 if name == "i386" else 1 << 63
    if name.startswith("x86_64"):
        width = 48 if name == "x86_64" else 57
        top = va >> (width - 1)
        if top not in (0, (1 << (65 - width)) - 1):
            return Ref(NOT_PRESENT)  # #GP; translate reports a plain fault
    elif va >> 32:
        return Ref(NOT_PRESENT)
    shift = 12 + sum(bits)
    table = ram.root
    rw = us = True
    nx = False
    used: dict[int, int] = {}
    for i, b in enumerate(bits):
        shift -= b
        slot = table + ((va >> shift) & ((1 << b) - 1)) * es
        e = ram.get(slot)
        if not e & 1:
            return Ref(NOT_PRESENT, writes=used)
        if name == "i386-pae" and i == 0:  # PDPTE: address only; PS (bit 7) is reserved there
            if e & 0x80:
                return Ref(MALFORMED, writes=used)
            table = e & addr_mask
            continue
        last = i == len(bits) - 1
        rw &= bool(e & 2)
        us &= bool(e & 4)
        nx |= bool(e & nx_bit)
        if last or e & 0x80:
            size = 1 << shift
            if not last and (i not in large or e & addr_mask & (size - 1) & ~0x1FFF):
                return Ref(MALFORMED, writes=used)  # PS where reserved, or frame bits below the size
            if (user and not us) or (access == Access.WRITE and not rw) or (
                    access == Access.EXEC and nx):
                return Ref(PROT, writes=used)
            want = e | 0x20 | (0x40 if access == Access.WRITE else 0)
            if want != e:
                used[slot] = want
            return Ref(OK, (e & addr_mask & ~(size - 1)) | (va & (size - 1)), used)
        if not e & 0x20:
            used[slot] = e | 0x20
        table = e & addr_mask
    raise AssertionError


def ref_arm64(ram: Ram, va: int, access: int, user: bool, page_shift: int, levels: int,
              block_levels: set[int]) -> Ref:
    """ARMv8-A VMSAv8-64 stage 1, TTBR0 region of a 48-bit VA, EL0 (user) accesses, with
    FEAT_HAFDBS hardware AF and dirty-state (DBM) management enabled."""
    if va >> 48:
        return Ref(NOT_PRESENT)  # outside TTBR0's range: a level-0 translation fault
    stride = page_shift - 3
    first = 4 - levels
    table = ram.root
    for lvl in range(first, 4):
        shift = page_shift + stride * (3 - lvl)
        nbits = min(stride, 48 - shift)
        slot = table + ((va >> shift) & ((1 << nbits) - 1)) * 8
        d = ram.get(slot)
        out = d & ((1 << 50) - 1) & ~((1 << page_shift) - 1)
        if not d & 1:
            return Ref(NOT_PRESENT)
        if lvl < 3 and d & 2:
            table = out
            continue
        if lvl < 3 and lvl not in block_levels:
            return Ref(MALFORMED)
        if lvl == 3 and not d & 2:
            return Ref(MALFORMED)
        size = 1 << shift
        ap1, ap2, dbm = bool(d >> 6 & 1), bool(d >> 7 & 1), bool(d >> 51 & 1)
        writable = not ap2 or dbm
        if user:
            ok = {Access.READ: ap1, Access.WRITE: ap1 and writable,
                  Access.EXEC: not d >> 54 & 1}[Access(access)]
        else:
            ok = {Access.READ: True, Access.WRITE: writable,
                  Access.EXEC: not d >> 53 & 1}[Access(access)]
        if not ok:
            return Ref(PROT)
        new = d | 1 << 10
        if access == Access.WRITE:
            new &= ~(1 << 7)
        return Ref(OK, (out & ~(size - 1)) | (va & (size - 1)), {slot: new} if new != d else {})
    raise AssertionError


def ref_riscv(ram: Ram, va: int, access: int, user: bool, levels: int) -> Ref:
    """The RISC-V privileged spec's translation algorithm (Sv39/48/57), with hardware A/D
    updating (Svadu) and user accesses."""
    width = 12 + 9 * levels
    top = va >> (width - 1)
    if top not in (0, (1 << (65 - width)) - 1):
        return Ref(NOT_PRESENT)
    a = ram.root
    for i in range(levels - 1, -1, -1):
        slot = a + ((va >> (12 + 9 * i)) & 511) * 8
        pte = ram.get(slot)
        v, r, w, x = pte & 1, pte >> 1 & 1, pte >> 2 & 1, pte >> 3 & 1
        if not v:
            return Ref(NOT_PRESENT)
        if not r and w:
            return Ref(MALFORMED)
        ppn = pte >> 10 & ((1 << 44) - 1)
        if not (r or x):
            if i == 0:
                return Ref(MALFORMED)
            a = ppn << 12
            continue
        if i > 0 and ppn & ((1 << (9 * i)) - 1):
            return Ref(MALFORMED)  # misaligned superpage
        u = pte >> 4 & 1
        need = {Access.READ: r, Access.WRITE: w, Access.EXEC: x}[Access(access)]
        if not need or (user and not u):
            return Ref(PROT)
        new = pte | 1 << 6 | (1 << 7 if access == Access.WRITE else 0)
        size = 1 << (12 + 9 * i)
        return Ref(OK, ((ppn << 12) & ~(size - 1)) | (va & (size - 1)),
                   {slot: new} if new != pte else {})
    raise AssertionError


def ref_ppc(ram: Ram, va: int, access: int, user: bool, name: str) -> Ref:
    """Linux's hash_page over the software tree (book3s/32 hash_low.S, book3s/64
    hash_utils.c / hash_4k.c / hash_64k.c): big-endian entries, rights from the PTE's
    software bits, _PAGE_ACCESSED (and _PAGE_DIRTY for a store) set on success."""
    if name == "ppc32":
        if va >> 32:
            return Ref(NOT_PRESENT)
        pmd = ram.get(ram.root + (va >> 22) * 4)
        if not pmd & 0xFFFF_F000:
            return Ref(NOT_PRESENT)
        slot = (pmd & 0xFFFF_F000) + ((va >> 12) & 1023) * 4
        pte = ram.get(slot)
        if not pte & 1:
            return Ref(NOT_PRESENT)
        need = {Access.READ: 0x4, Access.WRITE: 0x404, Access.EXEC: 0x200}[Access(access)]
        if pte & need != need:
            return Ref(PROT)
        new = pte | 0x100 | (0x80 if access == Access.WRITE else 0)
        return Ref(OK, (pte & 0xFFFF_F000) | (va & 0xFFF), {slot: new} if new != pte else {})
    geometry = {"ppc64-4k": (12, (9, 9, 7, 9), set()), "ppc64-64k": (16, (8, 10, 10, 8), {2}),
                "ppc64-64k-2012": (16, (6, 12, 12), set())}
    page_shift, bits, huge_levels = geometry[name]
    if va >> (page_shift + sum(bits)):
        return Ref(NOT_PRESENT)
    shift = page_shift + sum(bits)
    table = ram.root
    for i, b in enumerate(bits):
        shift -= b
        slot = table + ((va >> shift) & ((1 << b) - 1)) * 8
        e = ram.get(slot)
        if not e >> 63:
            return Ref(NOT_PRESENT)
        last = i == len(bits) - 1
        if not last and not e >> 62 & 1:
            table = e & ((1 << 53) - 1) & ~0xFF
            continue
        if not last and i not in huge_levels:
            return Ref(MALFORMED)
        if user and e & 0x8:
            return Ref(PROT)
        need = {Access.READ: 0x4, Access.WRITE: 0x6, Access.EXEC: 0x1}[Access(access)]
        if e & need != need:
            return Ref(PROT)
        new = e | 0x100 | (0x80 if access == Access.WRITE else 0)
        size = 1 << shift
        rpn = e & ((1 << 53) - 1) & ~((1 << page_shift) - 1)
        return Ref(OK, (rpn & ~(size - 1)) | (va & (size - 1)), {slot: new} if new != e else {})
    raise AssertionError


def reference(name: str, ram: Ram, va: int, access: int, user: bool) -> Ref:
    if name in ("i386", "i386-pae", "x86_64", "x86_64-la57"):
        return ref_x86(ram, va, access, user, name)
    if name.startswith("arm64"):
        ps, levels, blocks = {"arm64-4k": (12, 4, {1, 2}), "arm64-16k": (14, 4, {2}),
                              "arm64-64k": (16, 3, {2})}[name]
        return ref_arm64(ram, va, access, user, ps, levels, blocks)
    if name.startswith("riscv"):
        return ref_riscv(ram, va, access, user, {"riscv-sv39": 3, "riscv-sv48": 4,
                                                  "riscv-sv57": 5}[name])
    return ref_ppc(ram, va, access, user, name)


# ---- random tables ---------------------------------------------------------------------------------
#: The bits a random entry of each family may carry (besides its frame number).
FLAG_POOLS: dict[str, tuple[int, ...]] = {
    "x86": (1, 2, 4, 0x20, 0x40, 0x100, 1 << 63),
    "arm64": (1 << 6, 1 << 7, 1 << 10, 1 << 11, 1 << 51, 1 << 53, 1 << 54, 1 << 55),
    "riscv": (2, 4, 8, 16, 32, 64, 128),
    "ppc32": (0x4, 0x80, 0x100, 0x200, 0x400, 0x800),
    "ppc64": (1, 2, 4, 8, 0x80, 0x100),
}


def family(name: str) -> str:
    if name.startswith(("i386", "x86")):
        return "x86"
    return name.split("-")[0] if not name.startswith("ppc64") else "ppc64"


def random_leaf(rng: random.Random, name: str, mode: PagingMode, level: int) -> int:
    """A random leaf entry for `level` (a large leaf above the last), sometimes misaligned."""
    fam = family(name)
    flags = 0
    for bit in FLAG_POOLS[fam]:
        if rng.random() < 0.6:
            flags |= bit
    if fam == "i386":
        flags &= ~(1 << 63)
    span_pages = 1 << (mode.shifts[level] - mode.page_shift)
    pfn = rng.randrange(1, 1 << 18) * span_pages
    if rng.random() < 0.2:  # misaligned frame bits, possibly the x86 PAT bit
        pfn |= rng.randrange(1, span_pages) if span_pages > 1 else 0
    last = level == len(mode.levels) - 1
    if fam == "x86":
        entry = mode.make_entry(pfn, flags | (0x80 if not last else 0)) | rng.choice((0, 1))
        if name == "i386":
            entry &= 0xFFFF_FFFF
        return entry
    if fam == "arm64":
        kind = 3 if last else 1
        if rng.random() < 0.1:
            kind ^= 2  # a table-looking block / a level-3 descriptor with bit 1 clear
        return mode.make_entry(pfn, flags | kind)
    if fam == "riscv":
        entry = mode.make_entry(pfn, flags | 1)
        if not entry & 0xE and rng.random() < 0.8:
            entry |= 2
        return entry
    if fam == "ppc32":
        return mode.make_entry(pfn, flags | 1)
    return mode.make_entry(pfn, flags) | 1 << 63 | 1 << 62


def build_random(rng: random.Random, name: str, vas: list[int]) -> Ram:
    """Tables covering `vas`: at each level a fresh slot becomes a table (mostly), a leaf,
    a non-present entry, or junk that looks present."""
    mode = get_mode(name)
    ram = Ram(mode, size=1 << 23)
    last = len(mode.levels) - 1
    for va in vas:
        table = ram.root
        for lvl in range(last + 1):
            slot = table + mode.index(lvl, va) * mode.entry_size
            entry = ram.get(slot)
            if entry:
                if not entry & mode.level_present(lvl) or not mode.is_table(lvl, entry):
                    break
                table = mode.table_phys(entry)
                continue
            r = rng.random()
            if lvl < last and (r < 0.8 or mode.ptrs_per[lvl] <= 4):
                nxt = ram.alloc(lvl + 1)
                ptr = ram.pointer(lvl, nxt)
                if family(name) == "x86" and not (name == "i386-pae" and lvl == 0):
                    ptr &= ~rng.choice((0, 0, 0, 2, 4, 0x20, 1 << 63 if name != "i386" else 0))
                ram.put(slot, ptr)
                table = nxt
                continue
            if r < 0.93 or lvl == last:
                if rng.random() < 0.1:
                    ram.put(slot, mode.swp_entry_to_pte(1, rng.randrange(1 << 16)))
                else:
                    ram.put(slot, random_leaf(rng, name, mode, lvl))
            break
    return ram


def random_vas(rng: random.Random, mode: PagingMode, n: int) -> list[int]:
    """Clustered addresses: a few random regions, several pages in each, a few odd ones."""
    limit = TASK_SIZE_I386 if mode.va_bits == 32 else 1 << (mode.va_bits - 1)
    out = []
    for _ in range(n // 8):
        base = rng.randrange(limit) & ~((1 << mode.shifts[-2]) - 1)
        for _ in range(8):
            out.append(base + rng.randrange(1 << mode.shifts[-2]))
    if mode.canonical_rule == "sign":
        out += [rng.randrange(1 << 64) for _ in range(4)]  # mostly non-canonical
        out.append((1 << 64) - mode.page_size)  # canonical, upper half
    else:
        out += [1 << mode.va_bits, (1 << 64) - 1]
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_translate_agrees_with_reference_decoder(name: str, seed: int) -> None:
    """Random tables and addresses: translate's physical address, fault kind and every
    A/D update (on the leaf and up the walked path) equal the reference decoder's."""
    mode = get_mode(name)
    rng = random.Random(f"{name}/{seed}")
    vas = random_vas(rng, mode, 160)
    ram = build_random(rng, name, vas)
    users = (True, False) if family(name) == "x86" else (True,)
    seen: dict[str, int] = {}
    for va in vas * 2:
        for user in users:
            access = rng.choice((Access.READ, Access.WRITE, Access.EXEC))
            ref = reference(name, ram, va, access, user)
            ram.written.clear()
            phys, err = translate(mode, ram, ram.root, va, access, user=user)
            got = OK if phys >= 0 else MALFORMED if err & MmuFault.RSVD else (
                PROT if err & MmuFault.PROT else NOT_PRESENT)
            where = f"{name} va={va:#x} {access!r} user={user}"
            assert got == ref.outcome, f"{where}: translate {got} ({err:#x}), reference {ref.outcome}"
            assert phys == ref.phys, f"{where}: phys {phys:#x} vs {ref.phys:#x}"
            if family(name) == "x86" and phys < 0:
                want = (MmuFault.USER if user else 0) | (MmuFault.WRITE if access == Access.WRITE
                                                         else 0) | (
                    MmuFault.INSTR if access == Access.EXEC and name != "i386" else 0) | (
                    MmuFault.PROT if ref.outcome in (PROT, MALFORMED) else 0) | (
                    MmuFault.RSVD if ref.outcome == MALFORMED else 0)
                assert err == want, f"{where}: error code {err:#x}, want {want:#x}"
            changed = {a: ram.get(a) for a in ram.written}
            assert changed == ref.writes, f"{where}: entry updates {changed} vs {ref.writes}"
            seen[got] = seen.get(got, 0) + 1
            if phys >= 0:
                w = walk(mode, ram, ram.root, va)
                assert w.phys == phys
    assert seen.get(OK, 0) >= 20 and seen.get(PROT, 0) >= 5 and seen.get(NOT_PRESENT, 0) >= 5, seen


@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_large_leaves_translate_at_their_level(name: str) -> None:
    """A well-formed large leaf at every level that may hold one maps its whole span."""
    mode = get_mode(name)
    for lvl, level in enumerate(mode.levels[:-1]):
        if not level.leaf_ok:
            continue
        ram = Ram(mode)
        va = 5 << mode.shifts[lvl] if mode.va_bits > 32 else 1 << mode.shifts[lvl]
        span = 1 << mode.shifts[lvl]
        table = ram.root
        for upper in range(lvl):
            nxt = ram.alloc(upper + 1)
            ram.put(table + mode.index(upper, va) * mode.entry_size, ram.pointer(upper, nxt))
            table = nxt
        rw = mode.protection_map[0xF]  # shared rwx
        leaf = mode.make_entry(7 * (span >> mode.page_shift), rw)
        fam = family(name)
        leaf |= {"x86": 0x80, "arm64": 0, "riscv": 0, "ppc32": 0, "ppc64": 1 << 62}[fam]
        if fam == "arm64":
            leaf &= ~2  # a block descriptor
        slot = table + mode.index(lvl, va) * mode.entry_size
        ram.put(slot, leaf)
        for off in (0, mode.page_size + 8, span - 8):
            phys, err = translate(mode, ram, ram.root, va + off, Access.WRITE)
            assert (phys, err) == (7 * span + off, 0), f"{name} level {lvl}"
        w = walk(mode, ram, ram.root, va + 8)
        assert (w.leaf_level, w.page_size, w.phys) == (lvl, span, 7 * span + 8)
        assert ram.get(slot) & mode.bits.accessed


def test_arm64_dbm_write_clears_rdonly_and_without_hafdbs_faults() -> None:
    from vmsim.arch.arm64 import ARM64_4K, PAGE_SHARED, PTE_AF, PTE_RDONLY, without_hw_ad
    ram = Ram(ARM64_4K)
    ram.map_page(0x40_0000, 0x55, PAGE_SHARED)  # PTE_WRITE (DBM) | PTE_RDONLY: clean
    slot = walk(ARM64_4K, ram, ram.root, 0x40_0000).steps[-1].entry_addr
    nohw = without_hw_ad(ARM64_4K)
    assert translate(nohw, ram, ram.root, 0x40_0000, Access.WRITE)[0] == -1
    assert translate(ARM64_4K, ram, ram.root, 0x40_0000, Access.WRITE) == (0x55000, 0)
    assert not ram.get(slot) & PTE_RDONLY  # hardware-dirty
    ram.put(slot, ram.get(slot) & ~PTE_AF)
    assert translate(nohw, ram, ram.root, 0x40_0000, Access.READ)[0] == -1  # access-flag fault
    assert translate(ARM64_4K, ram, ram.root, 0x40_0000, Access.READ)[0] == 0x55000
    assert ram.get(slot) & PTE_AF


def test_big_endian_entries_in_ram() -> None:
    """PowerPC entries are stored big-endian: the present bit 63 is the first byte's top bit."""
    mode = get_mode("ppc64-4k")
    ram = Ram(mode)
    ram.map_page(0x1000_0000, 0x42, mode.protection_map[0x3])
    slot = walk(mode, ram, ram.root, 0x1000_0000).steps[-1].entry_addr
    assert ram.mem[slot] & 0x80 and ram.mem[slot] & 0x40  # _PAGE_PRESENT | _PAGE_PTE
    assert translate(mode, ram, ram.root, 0x1000_0123, Access.READ) == (0x42123, 0)


def test_la57_canonical_rule() -> None:
    la57, x64 = get_mode("x86_64-la57"), get_mode("x86_64")
    assert la57.canonical(1 << 50) and not x64.canonical(1 << 50)
    assert not la57.canonical(1 << 56) and la57.canonical(0xFF00_0000_0000_0000)
    assert get_mode("i386").canonical(0xFFFF_F000) and not get_mode("i386").canonical(1 << 32)
