"""vmsim's i386, i386-pae and x86_64-la57 walker against an independent MMU: Unicorn's x86
CPU (QEMU's MMU, ``UC_TLB_CPU``) walking the same tables in the same RAM -- in 32-bit
protected mode with CR4.PSE or CR4.PAE, and in long mode with CR4.LA57 (5-level paging;
Unicorn's Icelake-Server model, whose CPUID advertises LA57; QEMU honours CR4.LA57 in
its walker even on the default qemu64 model).

For each mode and seed, random tables are built in a vmsim `PhysMem` (entries in the
mode's real format: 32-bit PDE/PTE with PSE 4 MiB leaves; the PAE PDPT, 64-bit PMD/PTE
entries with NX and 2 MiB leaves; random present/RW/US/A/D/NX bits on every level,
misaligned large leaves, swap entries). Then every address is probed by a load, a
store and a fetch at CPL 3 and CPL 0, and the two must agree exactly: the same
physical address (the bytes Unicorn loaded, stored or executed are at vmsim's
address), or #PF with the same CR2 and error code; and afterwards every entry on the
walked paths holds the accessed/dirty bits vmsim's translate would have written.

Known, deliberate gaps (the generator avoids them): in a 4 MiB PDE QEMU implements
PSE-36 (bits 20:13 are physical-address bits 39:32, only bit 21 is reserved) where
vmsim treats bits 21:13 as reserved (a 32-bit physical address space); and in a PAE
PDPTE QEMU does not check the reserved bits 1, 2, 5-8 (a real CPU refuses them when
CR3 is loaded), so PDPTEs are written as Linux writes them: P alone.
"""

from __future__ import annotations

import random
import struct
from collections import Counter

import pytest
from unicorn.x86_const import UC_CPU_X86_ICELAKE_SERVER

from vmsim.arch import get_mode
from vmsim.arch.paging import Access, PagingMode, translate, walk
from vmsim.cpu.x86_mmu import CR4_LA57, PROBE_CODE, VEC_PF, Outcome, X86Mmu
from vmsim.cpu.x86_mmu32 import PROBE_CODE32, X86Mmu32
from vmsim.mm.physmem import PhysMem

MODES32 = ("i386", "i386-pae")
MODES_HW = (*MODES32, "x86_64-la57")
RAM = 16 << 20
DATA_LO, DATA_HI = 4 << 20, 12 << 20  # leaves point here; the tables live below
CODE_VA = 0x0804_8000
CODE_PHYS = 0x3F_F000
P, RW, US, A, D, PS, G = 1, 2, 4, 0x20, 0x40, 0x80, 0x100
NX = 1 << 63
ACCESS = {"load": Access.READ, "store": Access.WRITE, "fetch": Access.EXEC}


def word(tag: int) -> bytes:
    """8 bytes that are also code: ``mov eax, tag`` + 3 nops."""
    return b"\xb8" + struct.pack("<I", tag & 0xFFFF_FFFF) + b"\x90\x90\x90"


class Shadow:
    """A PhysAccess over RAM that keeps `translate`'s A/D writes to itself."""

    def __init__(self, phys: PhysMem) -> None:
        self.phys = phys
        self.writes: dict[int, int] = {}

    def read_entry(self, phys: int, size: int) -> int:
        return self.writes[phys] if phys in self.writes else self.phys.read_entry(phys, size)

    def write_entry(self, phys: int, size: int, value: int) -> None:
        self.writes[phys] = value


class Tables:
    """Random x86 tables in a PhysMem, built top-down for a set of addresses."""

    def __init__(self, mode: PagingMode, rng: random.Random) -> None:
        self.mode = mode
        self.rng = rng
        self.phys = PhysMem(RAM)
        self.next = 0x1000
        self.root = self.alloc(0)
        for off in range(DATA_LO, DATA_HI, 8):
            self.phys.write(off, word(off >> 3))
        self.phys.write(CODE_PHYS, PROBE_CODE if mode.va_bits > 32 else PROBE_CODE32)
        self.map(CODE_VA, CODE_PHYS, P | US | A)  # user, read-only, executable

    def alloc(self, level: int) -> int:
        size = max(self.mode.table_sizes[level], 32)
        addr = -(-self.next // size) * size
        self.next = addr + max(size, 4096)
        assert self.next <= CODE_PHYS
        return addr

    def slot(self, table: int, level: int, va: int) -> int:
        return table + self.mode.index(level, va) * self.mode.entry_size

    def get(self, addr: int) -> int:
        return self.phys.read_entry(addr, self.mode.entry_size)

    def put(self, addr: int, value: int) -> None:
        self.phys.write_entry(addr, self.mode.entry_size, value)

    def map(self, va: int, frame: int, flags: int) -> None:
        """A plain 4 KiB mapping with full-rights tables (for the probe code)."""
        mode = self.mode
        table = self.root
        for lvl in range(len(mode.levels) - 1):
            s = self.slot(table, lvl, va)
            if not self.get(s):
                nxt = self.alloc(lvl + 1)
                self.put(s, nxt | mode.table_entry_flags(lvl))
            table = self.get(s) & mode.pfn_mask
        self.put(self.slot(table, len(mode.levels) - 1, va), frame | flags)

    def random_flags(self, table: bool) -> int:
        rng = self.rng
        flags = P if rng.random() < 0.93 else 0
        for bit, p in ((RW, 0.6), (US, 0.75), (A, 0.5), (D, 0.4), (G, 0.1)):
            if rng.random() < p:
                flags |= bit
        if self.mode.bits.nx and rng.random() < (0.15 if table else 0.4):
            flags |= NX
        return flags

    def random_leaf(self, level: int) -> int:
        mode, rng = self.mode, self.rng
        last = level == len(mode.levels) - 1
        span = mode.level_span(level) if not last else 4096
        base = rng.randrange(DATA_LO, DATA_HI, span)
        entry = base | self.random_flags(False)
        if not last:
            entry |= PS
            r = rng.random()
            if r < 0.15:
                entry |= 1 << 12  # PAT: not reserved
            elif r < 0.4:  # a reserved bit below the large page's alignment
                entry |= 1 << (21 if mode.name == "i386" else rng.randrange(13, 21))
        return entry

    def build(self, vas: list[int]) -> None:
        mode, rng = self.mode, self.rng
        last = len(mode.levels) - 1
        for va in vas:
            if va >> 12 == CODE_VA >> 12:
                continue
            table = self.root
            for lvl in range(last + 1):
                s = self.slot(table, lvl, va)
                entry = self.get(s)
                if entry:
                    if not entry & P or (lvl < last and entry & PS) or lvl == last:
                        break
                    table = entry & mode.pfn_mask
                    continue
                pdpte = mode.name == "i386-pae" and lvl == 0
                r = rng.random()
                if lvl < last and (r < 0.6 or pdpte):
                    nxt = self.alloc(lvl + 1)
                    flags = (P if rng.random() < 0.97 else 0) if pdpte else self.random_flags(True)
                    self.put(s, nxt | flags)
                    if not flags & P:
                        break
                    table = nxt
                    continue
                if lvl == last or (mode.levels[lvl].leaf_ok and r < 0.9
                                   and mode.level_span(lvl) <= 4 << 20):
                    if rng.random() < 0.08:
                        self.put(s, mode.swp_entry_to_pte(1, rng.randrange(1, 1 << 16)))
                    else:
                        self.put(s, self.random_leaf(lvl))
                break


def random_vas(rng: random.Random, n: int, va_bits: int = 32) -> list[int]:
    """8-aligned addresses in clusters (so tables are shared), user and kernel halves
    (canonical ones for a 64-bit mode)."""
    out = []
    while len(out) < n:
        base = rng.randrange(0, 1 << va_bits, 1 << 22)
        if va_bits > 32 and base >> (va_bits - 1):
            base |= ((1 << 64) - 1) ^ ((1 << va_bits) - 1)  # sign-extend: the kernel half
        for _ in range(6):
            out.append((base + rng.randrange(0, 1 << 22)) & ~7)
    return out[:n]


class Rig:
    def __init__(self, name: str, seed: int) -> None:
        self.mode = get_mode(name)
        self.rng = random.Random(f"{name}/{seed}")
        self.tables = Tables(self.mode, self.rng)
        phys = self.tables.phys
        self.phys = phys
        self.width = 8 if self.mode.va_bits > 32 else 4
        self.cpu: X86Mmu | X86Mmu32 = X86Mmu32(name, phys.address, phys.size, keepalive=phys) if (
            self.width == 4) else X86Mmu(phys.address, phys.size, keepalive=phys,
                                         cpu_model=UC_CPU_X86_ICELAKE_SERVER, cr4_set=CR4_LA57)
        self.tally: Counter[str] = Counter()
        self.serial = 0

    def crosscheck(self, va: int, kind: str, user: bool) -> Outcome:
        mode, phys, root = self.mode, self.phys, self.tables.root
        accesses = [] if kind == "fetch" else [(CODE_VA, Access.EXEC)]
        accesses.append((va, ACCESS[kind]))
        shadow = Shadow(phys)
        results = [translate(mode, shadow, root, a, acc, user=user) for a, acc in accesses]
        assert results[0][0] >= 0 or kind == "fetch", "vmsim cannot fetch the probe code"
        want, err = results[-1]
        entries = sorted({s.entry_addr for a, _ in accesses for s in walk(mode, phys, root, a).steps})
        expected = {e: shadow.writes.get(e, self.get(e)) for e in entries}
        where = f"{mode.name} cpl{3 if user else 0} {kind} {va:#x}"
        self.serial += 1
        value = 0x5000_0000 | self.serial
        if kind == "load":
            out = self.cpu.load(root, CODE_VA, va, user)
        elif kind == "store":
            out = self.cpu.store(root, CODE_VA, va, value, user)
        else:
            out = self.cpu.fetch(root, va, user)
        if want >= 0:
            assert out.ok, f"{where}: vmsim maps it to {want:#x}, Unicorn raised {out}"
            if kind == "load":
                data = int.from_bytes(phys.read(want, self.width), "little")
                assert out.rax == data, f"{where}: Unicorn read {out.rax:#x}, vmsim's {want:#x} holds {data:#x}"
            elif kind == "store":
                data = int.from_bytes(phys.read(want, self.width), "little")
                assert data == value, f"{where}: stored {value:#x}, vmsim's {want:#x} holds {data:#x}"
            elif phys.read(want, 1) == b"\xb8" and self.rng.random() < 0.2:
                ran = self.cpu.fetch(root, va, user, execute=True)
                imm = int.from_bytes(phys.read(want + 1, 4), "little")
                assert ran.ok and ran.rax == imm, f"{where}: executed {ran}, vmsim's frame says {imm:#x}"
                self.tally["fetch executed"] += 1
        else:
            assert out.vector == VEC_PF, f"{where}: vmsim faults ({err:#x}), Unicorn gave {out}"
            assert out.cr2 == va, f"{where}: CR2 {out.cr2:#x}"
            assert out.error_code == err, f"{where}: error code Unicorn {out.error_code:#x}, vmsim {err:#x}"
        wrong = {e: (mode.describe(v), mode.describe(self.get(e))) for e, v in expected.items()
                 if self.get(e) != v}
        assert not wrong, f"{where}: A/D bits differ (vmsim, Unicorn): {wrong}"
        outcome = "ok" if want >= 0 else ("rsvd" if err & 8 else "prot" if err & 1 else "not-present")
        self.tally[f"{kind} {outcome}"] += 1
        return out

    def get(self, addr: int) -> int:
        return self.phys.read_entry(addr, self.mode.entry_size)


@pytest.mark.parametrize("name", MODES32)
def test_cpu_is_in_the_32bit_paging_mode(name: str) -> None:
    """CPL 3 / CPL 0 contexts in protected mode with CR0.PG|WP, and CR4.PSE (i386) or
    CR4.PAE + EFER.NXE (PAE); never long mode."""
    rig = Rig(name, 0)
    for user, cs in ((True, 0x73), (False, 0x60)):
        regs = rig.cpu.control(user)
        assert regs["cs"] == cs
        assert regs["cr0"] & (1 << 31 | 1 << 16 | 1) == (1 << 31 | 1 << 16 | 1)
        assert not regs["efer"] & (1 << 8 | 1 << 10), "LME/LMA set: not 32-bit paging"
        if name == "i386":
            assert regs["cr4"] & (1 << 4) and not regs["cr4"] & (1 << 5)
        else:
            assert regs["cr4"] & (1 << 5) and regs["efer"] & (1 << 11)


def test_la57_is_walked_by_unicorn() -> None:
    """Long mode with CR4.LA57 on the Icelake-Server model: 5-level walks (an address with
    bit 52 set translates through the PML5 entry vmsim wrote)."""
    rig = Rig("x86_64-la57", 0)
    regs = rig.cpu.control()
    assert regs["cr4"] & CR4_LA57 and regs["efer"] & (1 << 10)  # LA57, LMA
    va = (1 << 52) | 0x1234_5008
    rig.tables.map(va & ~0xFFF, DATA_LO, P | RW | US)
    out = rig.crosscheck(va, "load", True)
    assert out.ok and out.rax == int.from_bytes(word(DATA_LO + 8 >> 3), "little")
    assert walk(rig.mode, rig.phys, rig.tables.root, va).steps[0].index == 16  # bits 56:48
    out = rig.crosscheck(va ^ (1 << 50), "load", True)
    assert out.vector == VEC_PF and out.cr2 == va ^ (1 << 50)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", MODES_HW)
def test_random_tables_crosscheck(name: str, seed: int) -> None:
    """Random tables, 240 addresses, each loaded, stored and fetched at CPL 3 and CPL 0:
    Unicorn and vmsim agree on every probe; the mix covers every outcome."""
    rig = Rig(name, seed)
    vas = random_vas(rig.rng, 240, rig.mode.va_bits)
    rig.tables.build(vas)
    for va in vas:
        for user in (True, False):
            for kind in ("load", "fetch", "store"):
                rig.crosscheck(va, kind, user)
    tally = rig.tally
    for outcome in ("load ok", "load not-present", "load prot", "store ok", "store prot",
                    "fetch ok", "fetch not-present"):
        assert tally[outcome] >= 3, sorted(tally.items())
    assert sum(tally[f"{kind} rsvd"] for kind in ACCESS) >= 1, sorted(tally.items())
    if name != "i386":
        assert tally["fetch prot"] >= 3, dict(tally)  # NX


@pytest.mark.parametrize("name", MODES_HW)
def test_large_leaf_and_linux_style_tables(name: str) -> None:
    """A large leaf (4 MiB PSE / 2 MiB PAE) and Linux's own protections: PAGE_COPY refuses
    a user store with P|W|U; PAGE_SHARED takes it and sets D; PAGE_NONE is not present."""
    rig = Rig(name, 99)
    mode = rig.mode
    va = 0x4000_0000
    span = mode.level_span(len(mode.levels) - 2)
    t = rig.tables
    pmd_level = len(mode.levels) - 2
    table = t.root
    for lvl in range(pmd_level):
        s = t.slot(table, lvl, va)
        if not t.get(s):
            t.put(s, t.alloc(lvl + 1) | mode.table_entry_flags(lvl))
        table = t.get(s) & mode.pfn_mask
    t.put(t.slot(table, pmd_level, va), DATA_LO | P | RW | US | PS)
    for off in (0, 8, span - 8, span // 2 + 0x123 * 8):
        assert rig.crosscheck(va + off, "load", True).ok
    assert rig.crosscheck(va + span - 8, "store", True).ok
    assert t.get(t.slot(table, pmd_level, va)) & (A | D) == A | D
    pm = mode.protection_map
    base = 0x1000_0000
    for i, (vm_flags, store_ok) in enumerate(((0x3, False), (0xB, True), (0x0, None))):
        t.map(base + i * 4096, DATA_LO + i * 4096, pm[vm_flags])
        out = rig.crosscheck(base + i * 4096 + 16, "store", True)
        if store_ok is None:
            assert out.error_code == 6  # PAGE_NONE: not present, user write
        else:
            assert out.ok == store_ok and (store_ok or out.error_code == 7)
