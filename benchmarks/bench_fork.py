"""fork() time against resident size: vmsim against the host kernel, in the same run.

For 1, 16 and 256 MiB of populated private anonymous memory (MAP_POPULATE
on vmsim; one written byte per page, MADV_NOHUGEPAGE, on the host) time
fork() on the parent's side, and the child's first write to a page (a
copy-on-write break) per page. vmsim forks the same parent once per
repetition (the child exits in between); the host helper forks a freshly
populated process. vmsim's RAM is pre-faulted on the host (madvise
MADV_POPULATE_WRITE) and the host helper backs memory once before its COW
run, so neither side's figure includes the hypervisor's first touch of
guest memory. vmsim's child exit (zapping its page tables) is timed too.

Target (the issue): at 256 MiB, vmsim's fork costs at most 10x the host's per MiB.

    python benchmarks/bench_fork.py [--quick] [--reps N] [--wall] [--profile]
"""

from __future__ import annotations

import contextlib
import mmap

from _common import (
    fmt,
    fmt_ratio,
    header,
    median,
    now,
    parse_args,
    profile,
    ratio,
    run_host,
    spread,
    summary_row,
    table,
    verdict,
    write_summary,
)
from vmsim import Machine
from vmsim.kernel.task import Process

PAGE = 4096
FORK_TARGET = 10.0
TARGET_MIB = 256
COW_SAMPLE = 2048  # the child writes this many pages (spread evenly) per repetition
MADV_POPULATE_WRITE = 23


def new_machine() -> Machine:
    m = Machine(memory="1G", seed=1, prefault=True)
    # Back all of the simulated RAM with host memory now, not in a timed section (vmsim's
    # PhysMem may already map it MAP_POPULATE; then this costs nothing).
    with contextlib.suppress(OSError, AttributeError):  # before Linux 5.14: EINVAL
        m.kmem.phys.buf.madvise(getattr(mmap, "MADV_POPULATE_WRITE", MADV_POPULATE_WRITE))
    return m


def populate(m: Machine, mib: int) -> tuple[Process, int, float]:
    p = m.spawn()
    t0 = now()
    a = p.mmap(None, mib << 20, "rw-", "private|anonymous|populate")
    dt = now() - t0
    assert a > 0, a
    assert p.mm.get_mm_rss() == mib << 20 >> 12, p.mm.get_mm_rss()
    return p, a, dt


def fork_once(p: Process, a: int, mib: int, cow: bool = True) -> dict[str, float]:
    """Fork p, optionally COW-write a sample of pages in the child, let the child exit."""
    t0 = now()
    c = p.fork()
    t1 = now()
    assert isinstance(c, Process), c
    out = {"fork": t1 - t0}
    if cow:
        pages = mib << 20 >> 12
        step = max(pages // COW_SAMPLE, 1)
        addrs = range(a, a + pages * PAGE, step * PAGE)
        store = c.store
        copies0 = p.machine.kmem.vm_event["cow_copy"]
        t2 = now()
        for addr in addrs:
            store(addr, b"c")
        t3 = now()
        copied = p.machine.kmem.vm_event["cow_copy"] - copies0
        if copied != len(addrs):
            raise AssertionError(f"vmsim: {copied} COW copies for {len(addrs)} first writes")
        if p.load(a, 1) == c.load(a, 1):
            raise AssertionError("vmsim: parent sees the child's write")
        out["cow"] = (t3 - t2) / len(addrs)
        out["cow_pages"] = len(addrs)
    t4 = now()
    c.exit()
    out["exit"] = now() - t4
    return out


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], profile=True)
    sizes = [1, 16] if args.quick else [1, 16, TARGET_MIB]
    header("bench_fork: fork and copy-on-write, vmsim vs host", args)
    m = new_machine()
    results = []
    rows = []
    for mib in sizes:
        p, a, pop_s = populate(m, mib)
        v: dict[str, list[float]] = {"fork": [], "cow": [], "exit": []}
        h: dict[str, list[float]] = {"fork": [], "cow": []}
        cow_pages = 0.0
        for _ in range(args.reps):
            res = fork_once(p, a, mib)
            for key in v:
                v[key].append(res[key])
            cow_pages = res["cow_pages"]
            hf = run_host("fork", mib)
            if hf is not None:
                h["fork"].append(hf["ns"] * 1e-9)
            hc = run_host("cow", mib)
            if hc is not None:
                h["cow"].append(hc["ns_per_page"] * 1e-9)
        m.check()
        p.exit()
        vm = {k: median(x) for k, x in v.items()}
        hm = {k: (median(x) if x else None) for k, x in h.items()}
        r_fork = ratio(vm["fork"], hm["fork"])
        r_cow = ratio(vm["cow"], hm["cow"])
        results.append((mib, vm, hm, v, h, r_fork, r_cow, pop_s, cow_pages))

    print("\nfork() time, parent side (vmsim: Process.fork(); host: fork() until it returns)")
    print(table(
        ["MiB", "vmsim ms", "vmsim ms/MiB", "host ms", "host ms/MiB", "ratio", "vmsim range ms",
         "host range ms"],
        [(mib, fmt(vm["fork"] * 1e3, ".3f"), fmt(vm["fork"] * 1e3 / mib, ".4f"),
          fmt(hm["fork"] * 1e3 if hm["fork"] else None, ".3f"),
          fmt(hm["fork"] * 1e3 / mib if hm["fork"] else None, ".4f"), fmt_ratio(r_fork),
          spread([x * 1e3 for x in v["fork"]]),
          spread([x * 1e3 for x in h["fork"]]) if h["fork"] else "n/a")
         for mib, vm, hm, v, h, r_fork, _r, _p, _c in results]))

    print("\nchild's first write to a page (copy-on-write break), per page "
          f"(vmsim: {COW_SAMPLE} pages spread over the area per repetition; host: every page)")
    print(table(
        ["MiB", "vmsim us/page", "host us/page", "ratio", "vmsim pages", "vmsim range us",
         "host range us"],
        [(mib, fmt(vm["cow"] * 1e6, ".2f"), fmt(hm["cow"] * 1e6 if hm["cow"] else None, ".2f"),
          fmt_ratio(r_cow), f"{c:.0f}", spread([x * 1e6 for x in v["cow"]]),
          spread([x * 1e6 for x in h["cow"]]) if h["cow"] else "n/a")
         for mib, vm, hm, v, h, _r, r_cow, _p, c in results]))

    print("\nvmsim only: populating (MAP_POPULATE) and the child's exit after its COW writes")
    print(table(
        ["MiB", "populate ms", "populate us/page", "child exit ms", "exit ms/MiB"],
        [(mib, fmt(pop * 1e3, ".1f"), fmt(pop * 1e6 / (mib << 8), ".2f"),
          fmt(vm["exit"] * 1e3, ".1f"), fmt(vm["exit"] * 1e3 / mib, ".3f"))
         for mib, vm, _hm, _v, _h, _r, _rc, pop, _c in results]))

    target = next((r for r in results if r[0] == TARGET_MIB), None)
    if target is not None:
        print(f"\ntarget: vmsim fork at {TARGET_MIB} MiB <= {FORK_TARGET:g}x host per MiB: "
              f"{fmt_ratio(target[5])} -> {verdict(target[5], FORK_TARGET)}")
    else:
        print(f"\ntarget (fork at {TARGET_MIB} MiB <= {FORK_TARGET:g}x host): "
              "not measured in --quick mode")

    for mib, vm, hm, _v, _h, r_fork, _r_cow, _p, _c in results:
        is_target = mib == TARGET_MIB
        rows.append(summary_row(
            "fork", f"fork {mib} MiB, per MiB", f"{vm['fork'] * 1e3 / mib:.4f} ms",
            fmt(hm["fork"] * 1e3 / mib if hm["fork"] else None, ".4f", " ms"), fmt_ratio(r_fork),
            f"<= {FORK_TARGET:g}x" if is_target else "",
            verdict(r_fork, FORK_TARGET) if is_target else ""))
    for mib, vm, hm, _v, _h, _r, r_cow, _p, _c in results:
        rows.append(summary_row(
            "fork", f"child COW write {mib} MiB, per page", f"{vm['cow'] * 1e6:.2f} us",
            fmt(hm["cow"] * 1e6 if hm["cow"] else None, ".2f", " us"), fmt_ratio(r_cow)))
    last = results[-1]
    rows.append(summary_row("fork", f"child exit {last[0]} MiB (vmsim only)",
                            f"{last[1]['exit'] * 1e3:.1f} ms", "-", "-"))
    write_summary(args, rows)

    if args.profile:
        mib = sizes[-1]
        pm = new_machine()
        pp, pa, _ = populate(pm, mib)
        fork_once(pp, pa, mib, cow=False)  # one unprofiled fork: later forks see read-only PTEs
        profile(lambda: [fork_once(pp, pa, mib, cow=False) for _ in range(3)],
                f"vmsim fork of {mib} MiB + child exit, 3 times")
        child = pp.fork()
        assert isinstance(child, Process)
        pages = mib << 8
        step = max(pages // COW_SAMPLE, 1)
        profile(lambda: [child.store(x, b"c") for x in range(pa, pa + pages * PAGE, step * PAGE)],
                f"vmsim child COW writes, {min(pages, COW_SAMPLE)} pages")
        profile(lambda: pp.fork(), f"vmsim fork of {mib} MiB, once (no exit)")


if __name__ == "__main__":
    main()
