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

    `leaf_ok` says the level may hold a large-page leaf (PS bit on x86, a
    block descriptor on ARM64, R|W|X on RISC-V); an entry that looks like a
    leaf at a level that may not hold one is a reserved-bit fault.
    `present` overrides the mode's present mask at this level (0: the mode's;
    PowerPC 32's PMD is present when its address field is non-zero).
    `rights` says the entry's permission bits count when it points at a table
    and that the walker sets its accessed bit (x86: every level but the PAE
    PDPTE; ARM64, RISC-V, PowerPC: only leaves carry rights).
    `table_flags` overrides the mode's `table_flags` for a table pointer at this
    level (-1: the mode's; the PAE PDPTE holds P alone, the rest is reserved).
    `bad` lists (mask, value) pairs that make a present entry malformed when
    ``entry & mask == value`` (a RISC-V W-without-R leaf, an ARM64 level-3
    descriptor with bit 1 clear): a reserved-bit fault.
    """

    name: str
    bits: int
    leaf_ok: bool = False
    present: int = 0
    rights: bool = True
    table_flags: int = -1
    bad: tuple[tuple[int, int], ...] = ()


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
    # Permission bits of formats other than x86's "present means readable, NX forbids":
    read: int = 0  # a positive read permission (RISC-V R, PowerPC _PAGE_READ); 0: present is readable
    exec: int = 0  # a positive execute permission (RISC-V X, PowerPC _PAGE_EXEC)
    rdonly: int = 0  # a negative write permission (ARM64 AP[2], Linux's PTE_RDONLY)
    uxn: int = 0  # ARM64 UXN: no execution at EL0
    pxn: int = 0  # ARM64 PXN: no execution at EL1
    dbm: int = 0  # ARM64 DBM (Linux's PTE_WRITE): a write clears AP[2] instead of faulting
    privileged: int = 0  # a negative user permission (PowerPC 64 _PAGE_PRIVILEGED)


@dataclass(frozen=True)
class PagingMode:
    """A page-table format: levels top first, entry size, frame-number field.

    `pfn_shift`/`pfn_bits` locate the physical frame number inside an entry;
    `table_flags` are the bits Linux sets in a non-leaf entry (x86:
    ``_PAGE_TABLE``); `protection_map` gives the leaf flags for each
    combination of VM_READ|VM_WRITE|VM_EXEC|VM_SHARED (the kernel's
    ``protection_map[16]``, what ``vm_get_page_prot`` returns).

    The fields after the swap-entry ones say how a format differs from
    x86-64's (their defaults): byte order, canonical rule, how a table pointer
    is told from a leaf and turned into an address, whether the walker sets
    A/D, whether misaligned large leaves fault. Together with `Level` and
    `PteBits` they are all the one walker needs for x86 (i386, PAE, 4- and
    5-level), PowerPC (32-bit and 64-bit hash, software PTEs), ARMv8 and RISC-V.
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
    swp_flags: int = 0  # bits every swap entry carries (PowerPC 64: _PAGE_PTE)
    # How the format differs from x86-64's (the defaults are x86-64's):
    byteorder: str = "little"  # entries as stored in RAM ("big" on PowerPC)
    canonical_rule: str = "sign"  # "sign": bits above va_bits-1 copy it; "zero": they are 0
    # An entry of a non-last level points at a table when entry & table_test[0] == table_test[1];
    # None: x86's rule, the PS bit clear.
    table_test: tuple[int, int] | None = None
    # (mask, right shift, left shift) turning a table-pointer entry into the table's physical
    # address; None: the leaf rule (frame-number field << page_shift).
    table_addr: tuple[int, int, int] | None = None
    hw_ad: bool = True  # the walker sets A/D itself; False: a leaf needing an update faults
    misaligned_leaf_faults: bool = True  # frame bits below a large leaf's size: RSVD fault, or ignored
    exec_needs_user: bool = True  # a user fetch needs the user bit (False on ARM64: UXN alone)
    # The error code's I/D bit for a fetch: x86 sets it only with NX enabled (PAE/long mode
    # with EFER.NXE) or SMEP (Intel SDM 4.7), so not in i386 2-level paging.
    fetch_error_bit: bool = True
    # Names of the entry's bits for describe()/vtop, low bit first; () : x86's names.
    bit_names: tuple[tuple[str, int], ...] = ()

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

    @cached_property
    def translate_consts(self) -> tuple:  # type: ignore[type-arg]
        """Everything the generic `translate` reads, in one tuple (one lookup on the hot path).

        `walk_consts` keeps its older x86-shaped layout for the mm core's table
        walkers; this one carries what every format needs: per level (shift,
        index mask, present mask, reserved frame bits of a leaf (-1: no leaf
        allowed), rights "keep" mask, accessed bit to set on a table entry,
        malformed patterns), the table test, and the permission masks.
        """
        b = self.bits
        last = len(self.levels) - 1
        tmask, tval = self.table_test if self.table_test is not None else (b.huge, 0)
        # A level that may not hold a leaf gets reserved = -1: any leaf-looking entry faults.
        steps = tuple(
            (self.shifts[i], self.ptrs_per[i] - 1, self.level_present(i),
             self.huge_reserved(i) if i == last or self.levels[i].leaf_ok else -1,
             0 if self.levels[i].rights else -1,
             b.accessed if self.levels[i].rights and i < last else 0,
             self.levels[i].bad)
            for i in range(last + 1))
        taddr = self.table_addr if self.table_addr is not None else (
            self.pfn_mask, self.pfn_shift, self.page_shift)
        flip, needs = self._rights_masks()
        write_set = b.dirty if not b.rdonly else 0
        write_clear = b.rdonly
        return (self.entry_size, steps, last, self.pfn_mask, self.pfn_shift, self.page_shift,
                self.page_size, self._canonical_shift, self._canonical_top, tmask, tval, taddr,
                self.byteorder == "big", flip, needs, b.accessed, write_set, write_clear,
                b.dbm if self.hw_ad else 0, self.hw_ad, b.rdonly,
                int(MmuFault.INSTR) if self.fetch_error_bit else 0)

    def _rights_masks(self) -> tuple[int, tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """(flip, needs): an entry XOR flip has a set bit for every right it grants;
        needs[user][access] is the set of rights an access of that kind requires.

        Negative bits (x86 NX, ARM64 AP[2]/UXN/PXN, PowerPC _PAGE_PRIVILEGED) are
        flipped; a mode without a bit for a right (x86 read) never requires it.
        """
        b = self.bits
        flip = b.nx | b.rdonly | b.uxn | b.pxn | b.privileged
        read = b.read
        write = (b.rdonly or b.write) | read
        user = b.user | b.privileged
        x_user = b.exec | b.nx | b.uxn
        x_sup = b.exec | b.nx | b.pxn
        sup = (read, write, x_sup)
        usr = (user | read, user | write, (user if self.exec_needs_user else 0) | x_user)
        return flip, (sup, usr)

    def level_present(self, level: int) -> int:
        """The mask whose bits make an entry of `level` present to the walker."""
        return self.levels[level].present or self.bits.present

    def table_entry_flags(self, level: int) -> int:
        """The flags Linux writes in a `level` entry pointing at a table (pXd_populate)."""
        flags = self.levels[level].table_flags
        return self.table_flags if flags == -1 else flags

    @cached_property
    def _canonical_shift(self) -> int:
        return self.va_bits - 1 if self.canonical_rule == "sign" else self.va_bits

    def huge_reserved(self, level: int) -> int:
        """Frame-field bits a large-page leaf at `level` must keep clear (below its alignment)."""
        if (level == len(self.levels) - 1 or not self.levels[level].leaf_ok
                or not self.misaligned_leaf_faults):
            return 0
        span_frames = 1 << (self.shifts[level] - self.page_shift)
        return ((span_frames - 1) << self.pfn_shift) & self.pfn_mask & ~self.bits.huge_pat

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

    def table_phys(self, entry: int) -> int:
        """The physical address of the table a non-leaf entry points to."""
        if self.table_addr is None:
            return self.entry_phys(entry)
        mask, right, left = self.table_addr
        return (entry & mask) >> right << left

    def read_entry(self, mem: PhysAccess, phys: int) -> int:
        """The entry at `phys` as a number, in this format's byte order."""
        value = mem.read_entry(phys, self.entry_size)
        return _bswap(value, self.entry_size) if self.byteorder == "big" else value

    def write_entry(self, mem: PhysAccess, phys: int, value: int) -> None:
        """Store entry `value` at `phys` in this format's byte order."""
        if self.byteorder == "big":
            value = _bswap(value, self.entry_size)
        mem.write_entry(phys, self.entry_size, value)

    def make_entry(self, pfn: int, flags: int) -> int:
        return ((pfn << self.pfn_shift) & self.pfn_mask) | (flags & self.flags_mask)

    def swp_entry_to_pte(self, swp_type: int, offset: int) -> int:
        """A non-present entry holding swap entry (type, offset)."""
        omask = (1 << self.swp_offset_bits) - 1
        stored = (~offset if self.swp_offset_inverted else offset) & omask
        return (swp_type << self.swp_type_shift) | (stored << self.swp_offset_shift) | self.swp_flags

    def pte_swp_type(self, entry: int) -> int:
        return (entry >> self.swp_type_shift) & ((1 << self.swp_type_bits) - 1)

    def pte_swp_offset(self, entry: int) -> int:
        omask = (1 << self.swp_offset_bits) - 1
        stored = (entry >> self.swp_offset_shift) & omask
        return (~stored & omask) if self.swp_offset_inverted else stored

    def is_table(self, level: int, entry: int) -> bool:
        """A present entry of a non-last `level` points at a table (not a leaf)."""
        if level == len(self.levels) - 1:
            return False
        mask, value = self.table_test if self.table_test is not None else (self.bits.huge, 0)
        return entry & mask == value

    def is_present(self, entry: int) -> bool:
        """Linux's pte_present: hardware present, or PROT_NONE (present to the kernel only)."""
        return bool(entry & (self.bits.present | self.bits.protnone))

    def hw_present(self, entry: int) -> bool:
        return bool(entry & self.bits.present)

    def is_leaf(self, level: int, entry: int) -> bool:
        """A last-level entry is a leaf; a higher one if the level allows it and it is no table."""
        if level == len(self.levels) - 1:
            return True
        return self.levels[level].leaf_ok and not self.is_table(level, entry)

    def canonical(self, va: int) -> bool:
        """The mode's canonical-address rule: bits above the VA width sign- or zero-extend it."""
        top = va >> self._canonical_shift
        return top == 0 or top == self._canonical_top

    @cached_property
    def _canonical_top(self) -> int:
        if self.canonical_rule == "zero":
            return 0
        return (1 << (64 - self.va_bits + 1)) - 1

    def describe(self, entry: int) -> list[str]:
        """Names of the flag bits set in `entry` (for vtop and debugging)."""
        b = self.bits
        names = list(self.bit_names) or [
            ("P", b.present), ("RW", b.write), ("US", b.user), ("PWT", b.pwt),
            ("PCD", b.pcd), ("A", b.accessed), ("D", b.dirty), ("PS", b.huge),
            ("G", b.global_), ("SPECIAL", b.special), ("SOFT_DIRTY", b.soft_dirty),
            ("NX", b.nx),
        ]
        out = [n for n, m in names if m and entry & m == m]
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

    Reads only; stops at the first non-present entry (the level's present
    mask). Large-page leaves end the walk early, combining the entry's frame
    with the low address bits. Permissions are not checked (see `translate`);
    an entry that looks like a leaf where none may be is reported as where the
    walk stopped (phys None).
    """
    steps: list[WalkStep] = []
    table = root
    es = mode.entry_size
    nlevels = len(mode.levels)
    for lvl in range(nlevels):
        idx = mode.index(lvl, va)
        addr = table + idx * es
        entry = mode.read_entry(mem, addr)
        steps.append(WalkStep(lvl, mode.levels[lvl].name, table, idx, addr, entry))
        if not entry & mode.level_present(lvl):
            return Walk(va, tuple(steps), None, None, mode.page_size)
        if lvl == nlevels - 1 or not mode.is_table(lvl, entry):
            if lvl < nlevels - 1 and not mode.levels[lvl].leaf_ok:
                return Walk(va, tuple(steps), None, None, mode.page_size)
            span = mode.level_span(lvl) if lvl < nlevels - 1 else mode.page_size
            base = mode.entry_phys(entry) & ~(span - 1)
            return Walk(va, tuple(steps), base | (va & (span - 1)), lvl, span)
        table = mode.table_phys(entry)
    raise AssertionError("walk: fell off the last level")  # pragma: no cover


def _bswap(value: int, size: int) -> int:
    """An entry's value with its bytes reversed (big-endian formats on a little-endian RAM view)."""
    return int.from_bytes(value.to_bytes(size, "little"), "big")


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

    The one walker of every mode, driven by `PagingMode.translate_consts`.
    Rights are the AND of every level that carries them (x86: all levels;
    ARM64, RISC-V, PowerPC: the leaf), with negative bits (NX, AP[2], UXN,
    _PAGE_PRIVILEGED) flipped so that each right is a set bit. On success it
    sets the accessed bit on every level that has one and the dirty state of
    the leaf for a write (x86/RISC-V/PowerPC: set D; ARM64 with DBM: clear
    AP[2]), exactly the bytes a hardware walker writes; with `hw_ad` False a
    needed update is a fault instead. Error codes use x86's bits (MmuFault)
    for every mode. This is the software MMU's hot path, so it works on plain ints.
    """
    (es, steps, last, pfn_mask, pfn_shift, page_shift, page_size, sign_shift, canonical_top,
     tmask, tval, taddr, big, flip, needs, accessed, write_set, write_clear, dbm, hw_ad,
     rdonly, pf_instr) = mode.translate_consts
    write = access & _ACC_WRITE
    err = (_PF_USER if user else 0) | (_PF_WRITE if write else 0) | (
        pf_instr if access & _ACC_EXEC else 0)
    top = va >> sign_shift
    if top and top != canonical_top:
        return -1, err
    # RAM that offers a u64 memoryview is read inline (the common case), else via read_entry.
    q = getattr(mem, "q", None) if es == 8 and not big else None
    tmask_addr, tshift_r, tshift_l = taddr
    table = root
    rights = -1
    lvl = 0
    for shift, mask, present, reserved, keep, tamask, bad in steps:
        addr = table + ((va >> shift) & mask) * es
        if q is not None:
            entry = q[addr >> 3]
        else:
            entry = mem.read_entry(addr, es)
            if big:
                entry = _bswap(entry, es)
        if not entry & present:
            return -1, err
        if bad:
            for bmask, bval in bad:
                if entry & bmask == bval:
                    return -1, err | _PF_PROT | _PF_RSVD
        if lvl == last or entry & tmask != tval:
            if lvl < last and entry & reserved:
                return -1, err | _PF_PROT | _PF_RSVD  # no leaf allowed here, or a misaligned frame
            rights &= entry ^ flip
            need = needs[user][access]
            new = entry | accessed
            if write:
                new = (new | write_set) & ~write_clear
            if rights & need != need:
                # ARM64 hardware dirty management: a DBM leaf whose only missing right is
                # AP[2]'s write permission becomes writable (and thereby dirty).
                if not (write and entry & dbm and (rights | rdonly) & need == need):
                    return -1, err | _PF_PROT
            if new != entry:
                if not hw_ad:
                    return -1, err | _PF_PROT  # access-flag / dirty-bit fault (A/D by software)
                _store(mem, addr, es, new, big)
            span = 1 << shift if lvl < last else page_size
            return (((entry & pfn_mask) >> pfn_shift << page_shift) & ~(span - 1)) | (
                va & (span - 1)), 0
        rights &= (entry ^ flip) | keep
        if entry & tamask != tamask:  # a table entry used to walk on gets its accessed bit
            _store(mem, addr, es, entry | tamask, big)
        table = (entry & tmask_addr) >> tshift_r << tshift_l
        lvl += 1
    raise AssertionError("translate: fell off the last level")  # pragma: no cover


def _store(mem: PhysAccess, addr: int, size: int, value: int, big: bool) -> None:
    mem.write_entry(addr, size, _bswap(value, size) if big else value)


_ACC_WRITE = int(Access.WRITE)
_ACC_EXEC = int(Access.EXEC)
_PF_PROT = int(MmuFault.PROT)
_PF_WRITE = int(MmuFault.WRITE)
_PF_USER = int(MmuFault.USER)
_PF_INSTR = int(MmuFault.INSTR)
_PF_RSVD = int(MmuFault.RSVD)
