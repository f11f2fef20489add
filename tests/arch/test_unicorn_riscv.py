"""vmsim's RISC-V walker against an independent MMU: Unicorn's RV64 hart (QEMU's Sv39/Sv48
walker, ``UC_TLB_CPU``) on the same tables in the same RAM, in U-mode (see
src/vmsim/cpu/riscv_mmu.py).

Random tables (pointers, leaves at every level including superpages, misaligned
superpages, W-without-R and pointer-at-the-last-level reserved encodings, random
R/W/X/U/G/A/D/RSW bits, swap entries) are probed by U-mode loads, stores and fetches;
vmsim and QEMU must agree on every probe: the same physical address (loaded or stored
bytes at vmsim's address) or a page fault of the access's kind, and the same A/D
updates (both set them in hardware). Sv39, Sv48 and Sv57 all walk.

Outside the generator: RISC-V reserves PTE bits 63:54 (Svpbmt/Svnapot) and raises a
page fault when they are set; neither QEMU 5 nor vmsim checks them, so random
"pointers" into data pages (whose words would carry such bits) are not generated.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from vmsim.arch import get_mode
from vmsim.arch.paging import Access, translate, walk
from vmsim.cpu.riscv_mmu import (
    CAUSE_FETCH,
    CAUSE_LOAD,
    CAUSE_STORE,
    PROBE_CODE,
    RiscvMmu,
)
from vmsim.mm.physmem import PhysMem

RAM = 16 << 20
DATA_LO, DATA_HI = 8 << 20, 14 << 20
CODE_PHYS = 7 << 20
CODE_VA = 0x40_0000
V, R, W, X, U, G, A, D = 1, 2, 4, 8, 16, 32, 64, 128
ACCESS = {"load": Access.READ, "store": Access.WRITE, "fetch": Access.EXEC}
CAUSE = {"load": CAUSE_LOAD, "store": CAUSE_STORE, "fetch": CAUSE_FETCH}


class Shadow:
    def __init__(self, phys: PhysMem) -> None:
        self.phys = phys
        self.writes: dict[int, int] = {}

    def read_entry(self, phys: int, size: int) -> int:
        return self.writes.get(phys, self.phys.read_entry(phys, size))

    def write_entry(self, phys: int, size: int, value: int) -> None:
        self.writes[phys] = value


class Rig:
    def __init__(self, name: str, seed: int) -> None:
        self.mode = get_mode(name)
        self.rng = random.Random(f"{name}/{seed}")
        self.phys = PhysMem(RAM)
        self.next = 0x1000
        self.root = self.alloc()
        for off in range(DATA_LO, DATA_HI, 8):  # a nop (addi x0, x0, 0), then a tag
            self.phys.write_entry(off, 8, off << 32 | 0x13)
        self.phys.write(CODE_PHYS, PROBE_CODE)
        self.map(CODE_VA, CODE_PHYS, V | R | X | U | A)
        self.cpu = RiscvMmu(name, self.phys.address, self.phys.size, keepalive=self.phys)
        self.tally: Counter[str] = Counter()
        self.serial = 0

    def alloc(self) -> int:
        addr = self.next
        self.next += 0x1000
        assert self.next <= CODE_PHYS
        return addr

    def slot(self, table: int, lvl: int, va: int) -> int:
        return table + self.mode.index(lvl, va) * 8

    def pointer(self, table: int) -> int:
        return self.mode.make_entry(table >> 12, self.mode.table_flags)

    def map(self, va: int, frame: int, flags: int) -> None:
        mode = self.mode
        table = self.root
        for lvl in range(len(mode.levels) - 1):
            s = self.slot(table, lvl, va)
            if not self.phys.read_entry(s, 8):
                self.phys.write_entry(s, 8, self.pointer(self.alloc()))
            table = mode.table_phys(self.phys.read_entry(s, 8))
        self.phys.write_entry(self.slot(table, len(mode.levels) - 1, va), 8,
                              mode.make_entry(frame >> 12, flags))

    def random_leaf(self, lvl: int) -> int:
        mode, rng = self.mode, self.rng
        last = lvl == len(mode.levels) - 1
        span = mode.level_span(lvl) if not last else 4096
        base = rng.randrange(DATA_LO, DATA_HI, span)
        if not last and rng.random() < 0.2:
            base |= 4096 * rng.randrange(1, 8)  # a misaligned superpage: a page fault
        flags = V
        for bit, p in ((R, 0.8), (W, 0.5), (X, 0.45), (U, 0.85), (G, 0.1), (A, 0.6), (D, 0.5),
                       (1 << 8, 0.2)):
            if rng.random() < p:
                flags |= bit
        if not flags & (R | W | X) and (not last or rng.random() < 0.7):
            flags |= R  # above the last level R|W|X = 0 would be a pointer (into data pages)
        return mode.make_entry(base >> 12, flags)

    def build(self, vas: list[int]) -> None:
        mode, rng = self.mode, self.rng
        last = len(mode.levels) - 1
        for va in vas:
            if va >> 12 == CODE_VA >> 12:
                continue
            table = self.root
            for lvl in range(last + 1):
                s = self.slot(table, lvl, va)
                entry = self.phys.read_entry(s, 8)
                if entry:
                    if lvl == last or not entry & V or entry & (R | W | X):
                        break
                    table = mode.table_phys(entry)
                    continue
                r = rng.random()
                if lvl < last and r < 0.7:
                    nxt = self.alloc()
                    self.phys.write_entry(s, 8, self.pointer(nxt))
                    table = nxt
                    continue
                if lvl == last or mode.level_span(lvl) <= DATA_HI - DATA_LO:
                    if rng.random() < 0.08:
                        self.phys.write_entry(s, 8, mode.swp_entry_to_pte(1, rng.randrange(1, 999)))
                    else:
                        self.phys.write_entry(s, 8, self.random_leaf(lvl))
                break

    def crosscheck(self, va: int, kind: str) -> None:
        mode, phys, root = self.mode, self.phys, self.root
        shadow = Shadow(phys)
        accesses = [] if kind == "fetch" else [(CODE_VA, Access.EXEC)]
        accesses.append((va, ACCESS[kind]))
        results = [translate(mode, shadow, root, a, acc) for a, acc in accesses]
        want, _err = results[-1]
        entries = sorted({s.entry_addr for a, _ in accesses for s in walk(mode, phys, root, a).steps})
        expected = {e: shadow.writes.get(e, phys.read_entry(e, 8)) for e in entries}
        self.serial += 1
        value = 0x5A00_0000_0000_0000 | self.serial
        where = f"{mode.name} U-mode {kind} {va:#x}"
        if kind == "load":
            out = self.cpu.load(root, CODE_VA, va)
        elif kind == "store":
            out = self.cpu.store(root, CODE_VA, va, value)
        else:
            out = self.cpu.fetch(root, va)
        if want >= 0:
            assert out.ok, f"{where}: vmsim maps it to {want:#x}, QEMU raised cause {out.cause}"
            if kind == "load":
                assert out.a1 == phys.read_entry(want, 8), f"{where}: loaded {out.a1:#x}"
            elif kind == "store":
                assert phys.read_entry(want, 8) == value, f"{where}: the store is not at {want:#x}"
        else:
            assert out.cause == CAUSE[kind], f"{where}: vmsim faults, QEMU gave {out}"
        wrong = {e: (mode.describe(v), mode.describe(phys.read_entry(e, 8)))
                 for e, v in expected.items() if phys.read_entry(e, 8) != v}
        assert not wrong, f"{where}: A/D bits differ (vmsim, QEMU): {wrong}"
        self.tally[f"{kind} {'ok' if want >= 0 else 'fault'}"] += 1


def random_vas(rng: random.Random, va_bits: int, n: int) -> list[int]:
    out = []
    while len(out) < n:
        base = rng.randrange(0, 1 << (va_bits - 1), 1 << 24)
        for _ in range(6):
            out.append((base + rng.randrange(0, 1 << 24)) & ~7)
    return out[:n]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", ["riscv-sv39", "riscv-sv48", "riscv-sv57"])
def test_random_tables_crosscheck(name: str, seed: int) -> None:
    rig = Rig(name, seed)
    vas = random_vas(rig.rng, rig.mode.va_bits, 240)
    rig.build(vas)
    for va in vas:
        for kind in ("load", "fetch", "store"):
            rig.crosscheck(va, kind)
    for outcome in ("load ok", "load fault", "store ok", "store fault", "fetch ok", "fetch fault"):
        assert rig.tally[outcome] >= 3, sorted(rig.tally.items())
