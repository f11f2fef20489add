"""VMA operations against the number of VMAs: mmap/munmap, get_unmapped_area, find_vma.

For N = 10, 1,000, 10,000 and 100,000 VMAs (vm.max_map_count raised through
`m.kmem.sysctl.max_map_count`), the address space holds N one-page VMAs
separated by one-page holes (an mmap of 2N pages with every other page
unmapped), so none can merge. With them present this times:

* mmap(NULL, 2 pages)/munmap pairs. No hole fits 2 pages, so the top-down
  gap search must pass all N holes to the free space below the lowest VMA:
  O(log N) with the tree's gap augmentation, O(N) without;
* the same pairs at that address with MAP_FIXED (no gap search), and
  get_unmapped_area() called directly (the gap search alone);
* find_vma (`p.mm.mm_rb.find_vma`) at random addresses in the area, and at
  the same addresses in ascending order: neighbouring lookups share most of
  their tree path, so the sorted run keeps more nodes in the CPU caches, and
  the random run pays more cache misses as the tree outgrows them.

The host helper does the same mmap/munmap pairs where vm.max_map_count allows
(65530 by default, so not at 100,000), after filling the gaps around its
shared libraries so that its mmap(NULL) also has to pass all N holes.

Per-op cost should grow like log N: the script fits cost = a + b*log2(N) and
prints how far each point is off, next to the number of tree nodes find_vma
visits (the algorithmic cost, free of cache effects).

    python benchmarks/bench_vma.py [--quick] [--reps N] [--wall]
"""

from __future__ import annotations

import gc
import math
import random
from pathlib import Path

import numpy as np

from _common import (
    fmt,
    fmt_ratio,
    header,
    median,
    now,
    parse_args,
    ratio,
    run_host,
    summary_row,
    table,
    write_summary,
)
from vmsim import Machine
from vmsim.kernel.task import Process
from vmsim.mm import mman
from vmsim.mm.mmap import get_unmapped_area

PAGE = 4096
FLAGS = mman.MAP_PRIVATE | mman.MAP_ANONYMOUS


def host_max_map_count() -> int:
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return 65530


def build(n: int) -> tuple[Machine, Process, int, float]:
    """A process with n one-page VMAs and one-page holes between; (machine, proc, base, s/VMA)."""
    m = Machine(memory="16M", seed=1)
    m.kmem.sysctl.max_map_count = max(m.kmem.sysctl.max_map_count, 2 * n + 100)
    p = m.spawn()
    t0 = now()
    base = p.mmap(None, 2 * n * PAGE, "r--", "private|anonymous")
    assert base > 0, base
    munmap = p.munmap
    for i in range(1, 2 * n, 2):
        if munmap(base + i * PAGE, PAGE) != 0:
            raise AssertionError(f"munmap of hole {i} failed")
    dt = now() - t0
    if p.mm.map_count != n:
        raise AssertionError(f"{p.mm.map_count} VMAs, wanted {n}")
    gc.collect()  # collect the setup's garbage now, not inside a timed window
    return m, p, base, dt / n


def mean_depth(p: Process, addrs: list[int]) -> float:
    """Mean number of tree nodes find_vma visits (the search path length)."""
    total = 0
    for addr in addrs:
        t = p.mm.mm_rb.root
        while t is not None:
            total += 1
            t = t._left if t.vm_end > addr else t._right
    return total / len(addrs)


def time_pairs(p: Process, ops: int, base: int) -> float:
    mmap_, munmap = p.mmap, p.munmap
    t0 = now()
    for _ in range(ops):
        a = mmap_(None, 2 * PAGE, "r-x", "private|anonymous")
        munmap(a, 2 * PAGE)
    dt = now() - t0
    if not 0 < a < base:
        raise AssertionError(f"mmap(NULL) returned {a:#x}, not below the VMAs at {base:#x}")
    return dt / ops


def time_fixed_pairs(p: Process, ops: int, addr: int) -> float:
    mmap_, munmap = p.mmap, p.munmap
    t0 = now()
    for _ in range(ops):
        a = mmap_(addr, 2 * PAGE, "r-x", "private|anonymous|fixed")
        munmap(a, 2 * PAGE)
    dt = now() - t0
    if a != addr:
        raise AssertionError(f"MAP_FIXED mmap returned {a:#x}, not {addr:#x}")
    return dt / ops


def time_gua(p: Process, ops: int) -> float:
    mm = p.mm
    t0 = now()
    for _ in range(ops):
        get_unmapped_area(mm, None, 0, 2 * PAGE, 0, FLAGS)
    return (now() - t0) / ops


def time_find(p: Process, addrs: list[int]) -> float:
    find = p.mm.mm_rb.find_vma
    t0 = now()
    for addr in addrs:
        find(addr)
    return (now() - t0) / len(addrs)


def log_fit(ns: list[int], costs: list[float]) -> tuple[float, float, list[float]]:
    """Least squares cost = a + b*log2(n); (a, b, relative residual per point)."""
    x = np.log2(np.array(ns, dtype=float))
    y = np.array(costs)
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b), [float(r) for r in (y - (a + b * x)) / y]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    counts = [10, 1_000] if args.quick else [10, 1_000, 10_000, 100_000]
    ops = 300 if args.quick else 1_000
    lookups = 5_000 if args.quick else 20_000
    header("bench_vma: VMA operations against the number of VMAs", args)
    host_limit = host_max_map_count()
    rng = random.Random(1)
    res: dict[int, dict[str, float | None]] = {}
    for n in counts:
        _m, p, base, setup = build(n)
        gap_addr = base - 2 * PAGE
        addrs = [base + rng.randrange(2 * n * PAGE) for _ in range(lookups)]
        addrs_sorted = sorted(addrs)
        r: dict[str, list[float]] = {"pair": [], "fixed": [], "gua": [], "find": [],
                                     "find_sorted": [], "host": []}
        for _ in range(args.reps):
            r["pair"].append(time_pairs(p, ops, base))
            r["fixed"].append(time_fixed_pairs(p, ops, gap_addr))
            r["gua"].append(time_gua(p, ops))
            r["find"].append(time_find(p, addrs))
            r["find_sorted"].append(time_find(p, addrs_sorted))
            if n + 100 <= host_limit:
                host = run_host("vma", n, ops)
                if host is not None:
                    if host["below"] != ops:
                        raise AssertionError(f"host: only {host['below']:.0f} of {ops} areas "
                                             "were placed below the VMAs")
                    r["host"].append(host["ns_per_pair"] * 1e-9)
        if p.mm.map_count != n:
            raise AssertionError("the pairs left VMAs behind")
        _m.check()
        res[n] = {k: (median(v) if v else None) for k, v in r.items()}
        res[n]["setup"] = setup
        res[n]["depth"] = mean_depth(p, addrs[:2000])
        print(f"  {n:>7} VMAs built ({setup * 1e6:.1f} us per VMA by munmap splitting)", flush=True)

    def us(x: float | None) -> str:
        return fmt(x * 1e6 if x is not None else None, ".2f")

    def kops(x: float | None) -> str:
        return fmt(1 / x if x else None, ",.0f")

    print(f"\nper-operation cost with N VMAs present ({ops} ops and {lookups} lookups "
          "per repetition; us = microseconds)")
    print(table(
        ["N VMAs", "mmap+munmap us", "pairs/s", "MAP_FIXED pair us", "get_unmapped_area us",
         "get_unmapped_area/s"],
        [(f"{n:,}", us(x["pair"]), kops(x["pair"]), us(x["fixed"]), us(x["gua"]), kops(x["gua"]))
         for n, x in res.items()]))
    print("(the MAP_FIXED pair skips the gap search; get_unmapped_area is called directly)")
    print("\nfind_vma (path len = tree nodes visited per lookup; a treap's expected depth is "
          "about 1.39*log2 N)")
    print(table(
        ["N VMAs", "random us", "random/s", "sorted us", "sorted/s", "path len", "1.39*log2 N",
         "random ns/node", "sorted ns/node"],
        [(f"{n:,}", us(x["find"]), kops(x["find"]), us(x["find_sorted"]),
          kops(x["find_sorted"]), f"{x['depth']:.1f}", f"{1.39 * math.log2(n):.1f}",
          f"{x['find'] * 1e9 / x['depth']:.0f}",  # type: ignore[operator]
          f"{x['find_sorted'] * 1e9 / x['depth']:.0f}")  # type: ignore[operator]
         for n, x in res.items()]))

    print("\nmmap(NULL, 2 pages)+munmap pairs, vmsim vs host "
          f"(host vm.max_map_count = {host_limit})")
    print(table(
        ["N VMAs", "vmsim us", "host us", "ratio"],
        [(f"{n:,}", us(x["pair"]), us(x["host"]), fmt_ratio(ratio(x["pair"], x["host"])))
         for n, x in res.items()]))

    ns = list(res)
    growth = []
    if len(ns) >= 3:
        lo, hi = ns[1], ns[-1]
        print("\ngrowth with N: least-squares fit cost = a + b*log2(N) over all N; residual = "
              "how far\neach point is off the fit (a in us, b in ns per doubling of N; for the "
              "path length, in nodes)")
        fit_rows = []
        for key, label in (("pair", "mmap+munmap"), ("gua", "get_unmapped_area"),
                           ("find_sorted", "find_vma, sorted"), ("find", "find_vma, random"),
                           ("depth", "find_vma path length")):
            values = [float(res[n][key] or 0.0) for n in ns]
            a, b, resid = log_fit(ns, values)
            grow = values[-1] / values[1]
            growth.append((label, grow))
            nodes = key == "depth"
            fit_rows.append((label, f"{a:.2f}" if nodes else f"{a * 1e6:.2f}",
                             f"{b:.2f}" if nodes else f"{b * 1e9:.0f}",
                             " ".join(f"{x:+.0%}" for x in resid),
                             f"{grow:.2f}x", f"{math.log2(hi) / math.log2(lo):.2f}x",
                             f"{hi / lo:,.0f}x"))
        print(table(["operation", "a", "b", "residuals", f"{hi:,} vs {lo:,}",
                     "log predicts", "linear predicts"], fit_rows))

    rows = []
    for n, x in res.items():
        rows.append(summary_row("vma", f"mmap+munmap pair, {n:,} VMAs", f"{us(x['pair'])} us",
                                fmt(x["host"] * 1e6 if x["host"] else None, ".2f", " us"),
                                fmt_ratio(ratio(x["pair"], x["host"]))))
    for n, x in res.items():
        rows.append(summary_row("vma", f"find_vma, {n:,} VMAs", f"{us(x['find'])} us", "-", "-"))
    for label, grow in growth:
        rows.append(summary_row("vma", f"{label} cost {ns[-1]:,} vs {ns[1]:,} VMAs",
                                f"{grow:.2f}x", "-", "-",
                                f"log N: {math.log2(ns[-1]) / math.log2(ns[1]):.2f}x"))
    write_summary(args, rows)


if __name__ == "__main__":
    main()
