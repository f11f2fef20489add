"""Page-fault throughput: vmsim against the host kernel, in the same run.

Anonymous write faults: a fresh private anonymous mapping, one one-byte
`store` per page (each a demand-zero fault; `p.min_flt` must advance by
exactly the page count), against `host_bench anon` (mmap + MADV_NOHUGEPAGE,
one written byte per page, getrusage proving one fault per page). Each side
does it twice: "cold" is the first mapping of a new process/machine, "warm"
a second fresh mapping after the first is unmapped. On a VM the host's cold
figure includes the hypervisor backing never-touched guest memory, so the
target is judged on the warm figures. A last pass over the warm mapping
times a store that does not fault.

File read faults: a private read-only mapping of a file whose page cache is
warm, one one-byte `load` per page, against `host_bench file` on the very
same file. Both kernels fault around (64 KiB: 16 pages per fault), so the
figures are given per page and per fault. vmsim's cold first pass (major
faults and read-ahead) is shown for information.

Target (the issue): a vmsim anonymous fault costs at most 3x the host's.

    python benchmarks/bench_faults.py [--quick] [--reps N] [--wall] [--profile]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
from vmsim.mm.kmem import Sysctl

PAGE = 4096
ANON_TARGET = 3.0


def _touch(p: Process, pages: int, data: bytes) -> float:
    """Seconds for one store per page of a fresh mapping; checks one minor fault per page."""
    a = p.mmap(None, pages * PAGE, "rw-", "private|anonymous")
    assert a > 0, a
    store = p.store
    addrs = range(a, a + pages * PAGE, PAGE)
    flt0 = p.min_flt
    t0 = now()
    for addr in addrs:
        store(addr, data)
    dt = now() - t0
    if p.min_flt - flt0 != pages:
        raise AssertionError(f"vmsim: {p.min_flt - flt0} minor faults for {pages} pages")
    return dt


def vmsim_anon(pages: int) -> dict[str, float]:
    """Seconds per fault (cold: first mapping of a new machine; warm: the next one) and per
    store that does not fault (a second pass over the warm mapping)."""
    m = Machine(memory="128M", seed=1, prefault=True)
    p = m.spawn()
    cold = _touch(p, pages, b"x")
    first = p.mm.mm_rb.first()
    assert first is not None
    assert p.munmap(first.vm_start, pages * PAGE) == 0
    warm = _touch(p, pages, b"x")
    store = p.store
    vma = p.mm.mm_rb.first()
    assert vma is not None
    flt0 = p.min_flt
    t0 = now()
    for addr in range(vma.vm_start, vma.vm_end, PAGE):
        store(addr, b"y")
    hit = now() - t0
    if p.min_flt != flt0:
        raise AssertionError("vmsim: the second pass over a mapped area faulted")
    m.check()
    return {"cold": cold / pages, "warm": warm / pages, "hit": hit / pages}


def make_file(directory: Path, pages: int) -> Path:
    """A file of random bytes, written 4 KiB at a time.

    Small writes give the host 4 KiB page-cache folios. (A single large
    write lets ext4 cache the file in 2 MiB folios, and Linux 6.18+ then maps a
    whole folio per read fault, 512 pages, instead of the fault-around window.)
    """
    path = directory / "data.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(pages):
            os.write(fd, os.urandom(PAGE))
    finally:
        os.close(fd)
    return path


def vmsim_file(root: Path, pages: int) -> dict[str, float]:
    """Cold pass (fills the page cache), then the timed warm pass on a new mapping."""
    m = Machine(memory="64M", seed=1, root=root)
    p = m.spawn()
    fd = p.open("/data.bin", 0)
    assert fd >= 0, fd
    length = pages * PAGE
    load = p.load
    out: dict[str, float] = {}
    for label in ("cold", "warm"):
        a = p.mmap(None, length, "r--", "private", fd, 0)
        assert a > 0, a
        min0, maj0 = p.min_flt, p.maj_flt
        t0 = now()
        for addr in range(a, a + length, PAGE):
            load(addr, 1)
        dt = now() - t0
        faults = (p.min_flt - min0) + (p.maj_flt - maj0)
        out[f"{label}_s_per_page"] = dt / pages
        out[f"{label}_faults"] = faults
        out[f"{label}_majors"] = p.maj_flt - maj0
        out[f"{label}_s_per_fault"] = dt / faults if faults else 0.0
        assert p.munmap(a, length) == 0
    m.check()
    return out


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], profile=True)
    anon_pages = 2_000 if args.quick else 20_000  # 78 MiB: fits the 128 MiB machine
    file_pages = 256 if args.quick else 1024  # 1 MiB / 4 MiB
    header("bench_faults: page faults, vmsim vs host", args)

    # ---- anonymous write faults
    v: dict[str, list[float]] = {"cold": [], "warm": [], "hit": []}
    h: dict[str, list[float]] = {"cold": [], "warm": []}
    h_minflt: set[int] = set()
    for _ in range(args.reps):
        for key, value in vmsim_anon(anon_pages).items():
            v[key].append(value)
        host = run_host("anon", anon_pages)
        if host is not None:
            h["warm"].append(host["ns_per_fault"] * 1e-9)
            h["cold"].append(host["cold_ns_per_fault"] * 1e-9)
            h_minflt |= {int(host["minflt"]), int(host["cold_minflt"])}
    vmed = {k: median(x) for k, x in v.items()}
    hmed = {k: (median(x) if x else None) for k, x in h.items()}
    r_anon = ratio(vmed["warm"], hmed["warm"])
    r_cold = ratio(vmed["cold"], hmed["cold"])

    def us(x: float | None, unit: str = "") -> str:
        return fmt(x * 1e6 if x else None, ".2f", unit)

    def per_s(x: float | None) -> str:
        return fmt(1 / x if x else None, ",.0f")

    def rng(xs: list[float]) -> str:
        return spread([x * 1e6 for x in xs]) if xs else "n/a"

    print(f"\nanonymous write faults: {anon_pages} pages, one store per page of a fresh "
          f"private mapping\n(vmsim min_flt advanced by exactly {anon_pages} every pass; "
          f"host getrusage minflt deltas {sorted(h_minflt)})")
    print("cold = the first mapping of a new process/machine (on this VM the host's figure\n"
          "then includes the hypervisor backing fresh guest memory); warm = a second fresh\n"
          "mapping after the first was unmapped: the kernel's fault path alone")
    print(table(
        ["", "us/fault", "faults/s", "range us"],
        [("vmsim warm", us(vmed["warm"]), per_s(vmed["warm"]), rng(v["warm"])),
         ("host warm", us(hmed["warm"]), per_s(hmed["warm"]), rng(h["warm"])),
         ("vmsim cold", us(vmed["cold"]), per_s(vmed["cold"]), rng(v["cold"])),
         ("host cold", us(hmed["cold"]), per_s(hmed["cold"]), rng(h["cold"])),
         ("vmsim store, no fault", us(vmed["hit"]), per_s(vmed["hit"]), rng(v["hit"]))]))
    print(f"ratio vmsim/host, time per anonymous fault: warm {fmt_ratio(r_anon)}, "
          f"cold {fmt_ratio(r_cold)}")
    print(f"target: vmsim anonymous fault <= {ANON_TARGET:g}x host (warm): "
          f"{verdict(r_anon, ANON_TARGET)}")

    # ---- file read faults (warm page cache)
    with tempfile.TemporaryDirectory(prefix="vmsim-bench-root-") as tmp:
        root = Path(tmp)
        path = make_file(root, file_pages)
        vres: list[dict[str, float]] = []
        hres: list[dict[str, float]] = []
        for _ in range(args.reps):
            vres.append(vmsim_file(root, file_pages))
            host = run_host("file", path, file_pages)
            if host is not None:
                hres.append(host)

    def vfm(key: str) -> float:
        return median(r[key] for r in vres)

    def hfm(key: str) -> float | None:
        return median(r[key] for r in hres) if hres else None

    h_page = hfm("ns_per_page")
    h_fault_ns = hfm("ns_per_fault")
    h_faults = hfm("faults")
    v_page = vfm("warm_s_per_page")
    v_fault_s = vfm("warm_s_per_fault")
    r_file_page = ratio(v_page, h_page * 1e-9 if h_page else None)
    r_file_fault = ratio(v_fault_s, h_fault_ns * 1e-9 if h_fault_ns else None)
    print(f"\nfile read faults, {file_pages} pages ({file_pages * PAGE >> 20} MiB file), "
          "MAP_PRIVATE read-only, one load per page, page cache warm")
    print(table(
        ["", "us/page", "pages/s", "faults", "pages/fault", "us/fault", "faults/s"],
        [("vmsim", fmt(v_page * 1e6, ".2f"), fmt(1 / v_page, ",.0f"),
          fmt(vfm("warm_faults"), ".0f"), fmt(file_pages / vfm("warm_faults"), ".1f"),
          fmt(v_fault_s * 1e6, ".2f"), fmt(1 / v_fault_s, ",.0f")),
         ("host", fmt(h_page / 1e3 if h_page else None, ".2f"),
          fmt(1e9 / h_page if h_page else None, ",.0f"), fmt(h_faults, ".0f"),
          fmt(file_pages / h_faults if h_faults else None, ".1f"),
          fmt(h_fault_ns / 1e3 if h_fault_ns else None, ".2f"),
          fmt(1e9 / h_fault_ns if h_fault_ns else None, ",.0f")),
         ("vmsim cold (1st pass)", fmt(vfm("cold_s_per_page") * 1e6, ".2f"),
          fmt(1 / vfm("cold_s_per_page"), ",.0f"), fmt(vfm("cold_faults"), ".0f"),
          fmt(file_pages / vfm("cold_faults"), ".1f"),
          fmt(vfm("cold_s_per_fault") * 1e6, ".2f"), fmt(1 / vfm("cold_s_per_fault"), ",.0f"))]))
    print(f"vmsim cold pass: {vfm('cold_majors'):.0f} major faults, each reading a window of "
          f"{Sysctl().ra_pages} pages (read-ahead); the other faults map cached pages around")
    print(f"ratio vmsim/host, warm file: per page {fmt_ratio(r_file_page)}, "
          f"per fault {fmt_ratio(r_file_fault)}")

    rows = [
        summary_row("faults", f"anon write fault, warm ({anon_pages} pages)",
                    us(vmed["warm"], " us"), us(hmed["warm"], " us"), fmt_ratio(r_anon),
                    f"<= {ANON_TARGET:g}x", verdict(r_anon, ANON_TARGET)),
        summary_row("faults", "anon write fault, cold (first mapping)",
                    us(vmed["cold"], " us"), us(hmed["cold"], " us"), fmt_ratio(r_cold)),
        summary_row("faults", "store that does not fault", us(vmed["hit"], " us"), "-", "-"),
        summary_row("faults", f"file read, per page ({file_pages} pages, warm)",
                    f"{v_page * 1e6:.2f} us", fmt(h_page / 1e3 if h_page else None, ".2f", " us"),
                    fmt_ratio(r_file_page)),
        summary_row("faults", f"file read, per fault ({file_pages / vfm('warm_faults'):.1f} "
                    "pages each)",
                    f"{v_fault_s * 1e6:.2f} us",
                    fmt(h_fault_ns / 1e3 if h_fault_ns else None, ".2f", " us"),
                    fmt_ratio(r_file_fault)),
    ]
    write_summary(args, rows)

    if args.profile:
        profile_anon(anon_pages)


def profile_anon(pages: int) -> None:
    """cProfile the warm fault pass, then the non-faulting pass, without the setup."""
    m = Machine(memory="128M", seed=1, prefault=True)
    p = m.spawn()
    _touch(p, pages, b"x")
    first = p.mm.mm_rb.first()
    assert first is not None
    assert p.munmap(first.vm_start, pages * PAGE) == 0
    a = p.mmap(None, pages * PAGE, "rw-", "private|anonymous")
    assert a > 0, a
    addrs = range(a, a + pages * PAGE, PAGE)
    store = p.store

    def run() -> None:
        for addr in addrs:
            store(addr, b"x")

    profile(run, f"vmsim anonymous write faults, {pages} pages (warm), store loop only")
    profile(run, f"vmsim stores that do not fault, {pages} pages")


if __name__ == "__main__":
    main()
