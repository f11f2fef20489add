"""Paging modes as data, and the one walker that serves them all.

A `PagingMode` is a declaration of a hardware page-table format: the levels
with their index bits, the entry size, where the frame number sits and which
bit means what. Everything else (shifts, masks, table sizes, the walk) is
derived. This is the style of volatility3's ``layers/intel.py``: adding a
mode must never need a new walk loop.

This module knows nothing of processes or VMAs; it reads (and, for the
accessed/dirty bits a hardware walker sets, writes) physical memory through a
`PhysAccess` object.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol


class PhysAccess(Protocol):
    """What the walker needs of physical memory: entries by physical address."""

    def read_entry(self, phys: int, size: int) -> int: ...

    def write_entry(self, phys: int, size: int, value: int) -> None: ...


class Access(enum.IntFlag):
    """The kind of a memory access, as a page-fault error code distinguishes."""

    READ = 0
    WRITE = 1
    EXEC = 2


@dataclass(frozen=True)
class Level:
    """One level of the table tree: its kernel name and index width.

    `leaf_ok` says the level may hold a large-page leaf (PS bit on x86).
    """

    name: str
    bits: int
    leaf_ok: bool = False


@dataclass(frozen=True)
class PteBits:
    """Bit positions (as masks) of one entry format; 0 means "not present in this format"."""

    present: int
    write: int
    user: int
    accessed: int
    dirty: int
    huge: int = 0
    nx: int = 0
    global_: int = 0
    pwt: int = 0
    pcd: int = 0
    special: int = 0
    soft_dirty: int = 0
    protnone: int = 0
    huge_pat: int = 0  # the PAT bit of a large-page leaf (x86 bit 12); the bits above it are reserved


@dataclass(frozen=True)
class PagingMode:
    """A page-table format: levels top first, entry size, frame-number field.

    `pfn_shift`/`pfn_bits` locate the physical frame number inside an entry;
    `table_flags` are the bits Linux sets in a non-leaf entry (x86:
    ``_PAGE_TABLE``); `protection_map` gives the leaf flags for each
    combination of VM_READ|VM_WRITE|VM_EXEC|VM_SHARED (the kernel's
    ``protection_map[16]``, what ``vm_get_page_prot`` returns).
    """

    name: str
    levels: tuple[Level, ...]
    page_shift: int
    entry_size: int
    pfn_shift: int
    pfn_bits: int
    bits: PteBits
    table_flags: int
    va_bits: int
    protection_map: tuple[int, ...] = field(default=())
    # Where a non-present entry keeps a swap entry (type, offset): the kernel's
    # __swp_entry()/__swp_type()/__swp_offset(); x86 stores the offset inverted (L1TF).
    swp_type_shift: int = 0
    swp_type_bits: int = 0
    swp_offset_shift: int = 0
    swp_offset_bits: int = 0
    swp_offset_inverted: bool = False

    # ---- derived geometry -------------------------------------------------
    @cached_property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @cached_property
    def shifts(self) -> tuple[int, ...]:
        """The address shift of each level's index, top first (PGDIR_SHIFT ... PAGE_SHIFT)."""
        out = []
        shift = self.page_shift
        for level in reversed(self.levels):
            out.append(shift)
            shift += level.bits
        return tuple(reversed(out))

    @cached_property
    def ptrs_per(self) -> tuple[int, ...]:
        """Entries per table at each level (PTRS_PER_PGD ... PTRS_PER_PTE)."""
        return tuple(1 << level.bits for level in self.levels)

    @cached_property
    def table_sizes(self) -> tuple[int, ...]:
        """Bytes per table at each level."""
        return tuple(n * self.entry_size for n in self.ptrs_per)

    @cached_property
    def pfn_mask(self) -> int:
        """Mask of the frame-number field inside an entry (PTE_PFN_MASK)."""
        return ((1 << self.pfn_bits) - 1) << self.pfn_shift

    @cached_property
    def flags_mask(self) -> int:
        return ((1 << (8 * self.entry_size)) - 1) & ~self.pfn_mask

    @cached_property
    def walk_consts(self) -> tuple:  # type: ignore[type-arg]
        """Everything `translate` reads, in one tuple (one lookup on the hot path)."""
        b = self.bits
        last = len(self.levels) - 1
        steps = tuple((self.shifts[i], self.ptrs_per[i] - 1, i == last or self.levels[i].leaf_ok,
                       self.huge_reserved(i)) for i in range(last + 1))
        return (self.entry_size, b.present, b.write, b.user, b.nx, b.huge, b.accessed, b.dirty,
                steps, last, self.pfn_mask, self.pfn_shift, self.page_shift, self.page_size,
                self.va_bits - 1, self._canonical_top)

    def huge_reserved(self, level: int) -> int:
        """Frame-field bits a large-page leaf at `level` must keep clear (below its alignment)."""
        if level == len(self.levels) - 1 or not self.levels[level].leaf_ok:
            return 0
        return ((1 << self.shifts[level]) - 1) & self.pfn_mask & ~self.bits.huge_pat

    def index(self, level: int, va: int) -> int:
        """The index of `va` in a table of level `level` (0 = top)."""
        return (va >> self.shifts[level]) & (self.ptrs_per[level] - 1)

    def level_span(self, level: int) -> int:
        """Bytes of address space one entry of `level` covers."""
        return 1 << self.shifts[level]

    def entry_pfn(self, entry: int) -> int:
        return (entry & self.pfn_mask) >> self.pfn_shift

    def entry_phys(self, entry: int) -> int:
        """The physical address an entry points to (a table or a frame)."""
        return self.entry_pfn(entry) << self.page_shift

    def make_entry(self, pfn: int, flags: int) -> int:
        return ((pfn << self.pfn_shift) & self.pfn_mask) | (flags & self.flags_mask)

    def swp_entry_to_pte(self, swp_type: int, offset: int) -> int:
        """A non-present entry holding swap entry (type, offset)."""
        omask = (1 << self.swp_offset_bits) - 1
        stored = (~offset if self.swp_offset_inverted else offset) & omask
        return (swp_type << self.swp_type_shift) | (stored << self.swp_offset_shift)

    def pte_swp_type(self, entry: int) -> int:
        return (entry >> self.swp_type_shift) & ((1 << self.swp_type_bits) - 1)

    def pte_swp_offset(self, entry: int) -> int:
        omask = (1 << self.swp_offset_bits) - 1
        stored = (entry >> self.swp_offset_shift) & omask
        return (~stored & omask) if self.swp_offset_inverted else stored

    def is_present(self, entry: int) -> bool:
        """Linux's pte_present: hardware present, or PROT_NONE (present to the kernel only)."""
        return bool(entry & (self.bits.present | self.bits.protnone))

    def hw_present(self, entry: int) -> bool:
        return bool(entry & self.bits.present)

    def is_leaf(self, level: int, entry: int) -> bool:
        """A non-last level entry is a leaf if the level allows it and the huge bit is set."""
        if level == len(self.levels) - 1:
            return True
        return self.levels[level].leaf_ok and bool(entry & self.bits.huge)

    def canonical(self, va: int) -> bool:
        """Sign-extension rule: bits above va_bits-1 equal bit va_bits-1."""
        top = va >> (self.va_bits - 1)
        return top == 0 or top == self._canonical_top

    @cached_property
    def _canonical_top(self) -> int:
        return (1 << (64 - self.va_bits + 1)) - 1

    def describe(self, entry: int) -> list[str]:
        """Names of the flag bits set in `entry` (for vtop and debugging)."""
        b = self.bits
        names = [
            ("P", b.present), ("RW", b.write), ("US", b.user), ("PWT", b.pwt),
            ("PCD", b.pcd), ("A", b.accessed), ("D", b.dirty), ("PS", b.huge),
            ("G", b.global_), ("SPECIAL", b.special), ("SOFT_DIRTY", b.soft_dirty),
            ("NX", b.nx),
        ]
        out = [n for n, m in names if m and entry & m]
        if b.protnone and entry & b.protnone and not entry & b.present:
            out.append("PROTNONE")
        return out


@dataclass(frozen=True)
class WalkStep:
    """One level visited by a walk: which table, which slot, what it held."""

    level: int
    name: str
    table: int
    index: int
    entry_addr: int
    entry: int


@dataclass(frozen=True)
class Walk:
    """The outcome of a page walk.

    `phys` is the translated physical address, or None if the walk stopped at
    a non-present entry (`steps[-1]` shows where). `leaf_level` is the level
    holding the leaf (last level for normal pages, higher for large pages).
    """

    va: int
    steps: tuple[WalkStep, ...]
    phys: int | None
    leaf_level: int | None
    page_size: int

    @property
    def leaf(self) -> int | None:
        return self.steps[-1].entry if self.phys is not None else None


def walk(mode: PagingMode, mem: PhysAccess, root: int, va: int) -> Walk:
    """Walk the tables from `root` for `va`, level by level, as an MMU would.

    Reads only; stops at the first non-present entry (hardware present bit).
    Large-page leaves end the walk early, combining the entry's frame with the
    low address bits.
    """
    steps: list[WalkStep] = []
    table = root
    es = mode.entry_size
    nlevels = len(mode.levels)
    for lvl in range(nlevels):
        idx = mode.index(lvl, va)
        addr = table + idx * es
        entry = mem.read_entry(addr, es)
        steps.append(WalkStep(lvl, mode.levels[lvl].name, table, idx, addr, entry))
        if not mode.hw_present(entry):
            return Walk(va, tuple(steps), None, None, mode.page_size)
        if mode.is_leaf(lvl, entry):
            span = mode.level_span(lvl) if lvl < nlevels - 1 else mode.page_size
            base = mode.entry_phys(entry) & ~(span - 1)
            return Walk(va, tuple(steps), base | (va & (span - 1)), lvl, span)
        table = mode.entry_phys(entry)
    raise AssertionError("walk: fell off the last level")  # pragma: no cover


class MmuFault(enum.IntFlag):
    """The x86 page-fault error code bits (X86_PF_* in arch/x86/include/asm/trap_pf.h)."""

    PROT = 1
    WRITE = 2
    USER = 4
    RSVD = 8
    INSTR = 16


def translate(mode: PagingMode, mem: PhysAccess, root: int, va: int, access: int,
              user: bool = True) -> tuple[int, int]:
    """Translate one access as the hardware would: (phys, 0) or (-1, error_code).

    Checks present, writable, user and no-execute at every level (the x86
    rule: effective rights are the AND of all levels), and on success sets the
    accessed bit on every level and the dirty bit on the leaf for a write,
    exactly the bytes a hardware walker writes. This is the software MMU's
    hot path, so it works on plain ints.
    """
    (es, present, rw, us, nx, huge, accessed, dirty, steps, last, pfn_mask, pfn_shift,
     page_shift, page_size, sign_bit, canonical_top) = mode.walk_consts
    write = access & _ACC_WRITE
    err = (_PF_USER if user else 0) | (_PF_WRITE if write else 0) | (
        _PF_INSTR if access & _ACC_EXEC else 0)
    top = va >> sign_bit
    if top and top != canonical_top:
        return -1, err
    # RAM that offers a u64 memoryview is read inline (the common case), else via read_entry.
    q = getattr(mem, "q", None) if es == 8 else None
    table = root
    writable = user_ok = True
    noexec = False
    stale: list[tuple[int, int]] = []  # upper-level entries without the accessed bit
    lvl = 0
    for shift, mask, leaf_ok, reserved in steps:
        addr = table + ((va >> shift) & mask) * es
        entry = q[addr >> 3] if q is not None else mem.read_entry(addr, es)
        if not entry & present:
            return -1, err
        if not entry & rw:
            writable = False
        if not entry & us:
            user_ok = False
        if entry & nx:
            noexec = True
        if lvl == last or (leaf_ok and entry & huge):
            if lvl < last and entry & reserved:
                return -1, err | _PF_PROT | _PF_RSVD  # a misaligned large-page frame
            if (user and not user_ok) or (write and not writable) or (
                    access & _ACC_EXEC and noexec):
                return -1, err | _PF_PROT
            for a, e in stale:
                mem.write_entry(a, es, e | accessed)
            new = entry | accessed | (dirty if write else 0)
            if new != entry:
                mem.write_entry(addr, es, new)
            span = 1 << shift if lvl < last else page_size
            return (((entry & pfn_mask) >> pfn_shift << page_shift) & ~(span - 1)) | (
                va & (span - 1)), 0
        if not entry & accessed:
            stale.append((addr, entry))
        table = (entry & pfn_mask) >> pfn_shift << page_shift
        lvl += 1
    raise AssertionError("translate: fell off the last level")  # pragma: no cover


_ACC_WRITE = int(Access.WRITE)
_ACC_EXEC = int(Access.EXEC)
_PF_PROT = int(MmuFault.PROT)
_PF_WRITE = int(MmuFault.WRITE)
_PF_USER = int(MmuFault.USER)
_PF_INSTR = int(MmuFault.INSTR)
_PF_RSVD = int(MmuFault.RSVD)
