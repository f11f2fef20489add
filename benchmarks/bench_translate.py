"""The generic walker's cost per paging mode: `translate` of a mapped 4 KiB (or 64 KiB) page
(a read, a write) and of an unmapped one, CPU time per call, best of N rounds.

    python benchmarks/bench_translate.py [--rounds 40] [--calls 5000]

Not a test: it prints a table. The x86_64 row is the figure to keep an eye on (the
software MMU's hot path); big-endian PowerPC entries and 32-bit entries take the
read_entry path instead of the inline u64 view.
"""

from __future__ import annotations

import argparse
import time

from vmsim.arch import MODES
from vmsim.arch.paging import Access, PagingMode, translate
from vmsim.mm.physmem import PhysMem


def build(mode: PagingMode, phys: PhysMem, va: int) -> int:
    """Tables for one page at `va` (shared rw protections), one table per frame; the root."""
    ps = mode.page_size
    nxt = ps
    root = nxt
    table = root
    for lvl in range(len(mode.levels) - 1):
        nxt += ps
        ptr = (mode.make_entry(nxt >> mode.page_shift, mode.table_entry_flags(lvl))
               if mode.table_addr is None else nxt | mode.table_entry_flags(lvl))
        mode.write_entry(phys, table + mode.index(lvl, va) * mode.entry_size, ptr)
        table = nxt
    leaf = mode.make_entry((nxt + ps) >> mode.page_shift, mode.protection_map[0xB])
    mode.write_entry(phys, table + mode.index(len(mode.levels) - 1, va) * mode.entry_size, leaf)
    translate(mode, phys, root, va, Access.WRITE)  # A and D set: later calls only read
    return root


def per_call(mode: PagingMode, phys: PhysMem, root: int, va: int, access: int, calls: int,
             rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(calls):
            translate(mode, phys, root, va, access)
        best = min(best, (time.process_time() - t0) / calls)
    return best * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args()
    print(f"{'mode':<16} {'levels':>6} {'read ns':>8} {'write ns':>9} {'unmapped ns':>12}")
    for name, mode in MODES.items():
        phys = PhysMem(1 << 22, mode.page_size)
        va = 0x1234 * mode.page_size
        root = build(mode, phys, va)
        other = va + (mode.page_size if mode.ptrs_per[-1] > 0x1235 % mode.ptrs_per[-1] + 1 else 0)
        assert translate(mode, phys, root, va, Access.READ)[0] >= 0, name
        figures = [per_call(mode, phys, root, a, acc, args.calls, args.rounds)
                   for a, acc in ((va, Access.READ), (va, Access.WRITE), (other, Access.READ))]
        print(f"{name:<16} {len(mode.levels):>6} " + " ".join(
            f"{f:>{w}.0f}" for f, w in zip(figures, (8, 9, 12), strict=True)))


if __name__ == "__main__":
    main()
