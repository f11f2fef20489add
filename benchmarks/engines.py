"""The two CPU engines on the same static programs: compute-bound and page-touching.

`unicorn` (the default) lets QEMU's x86 MMU walk vmsim's tables, so Python
runs only on a page fault or a system call. `soft` walks them with vmsim's
Python walker on every miss in QEMU's TLB (``UC_TLB_VIRTUAL`` with a
``UC_HOOK_TLB_FILL`` hook): every fill is visible, and costs a Python call.

* compute: a multiply-add loop in registers; almost no TLB misses, so the
  engines should be close (the ratio shows the fixed costs);
* touch: map N MiB, touch every page once (a demand fault each), then sweep
  it again P times. The sweeps miss in QEMU's TLB whenever the working set
  exceeds it, and each miss is a Python walk on the soft engine.

Each figure is the median of --reps runs (3 by default) of a fresh machine
running the program to completion, timed with the benchmark clock (process
CPU time, or wall-clock with --wall); the ratio is soft over unicorn.

    python benchmarks/engines.py [--quick] [--reps N] [--wall]
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import fmt, header, median, now, parse_args, spread, summary_row, table, write_summary
from vmsim import Machine

COMPUTE = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  unsigned long x = 1;
  for (long i = 0; i < n; i++) x = x * 6364136223846793005ul + 1442695040888963407ul;
  printf("%lu\n", x);
  return 0;
}
"""

TOUCH = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
  long mib = argc > 1 ? atol(argv[1]) : 4, passes = argc > 2 ? atol(argv[2]) : 1;
  long n = mib << 20, sum = 0;
  volatile char *p = mmap(0, n, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  for (long i = 0; i < n; i += 4096) p[i] = 1;
  for (long pass = 0; pass < passes; pass++)
    for (long i = 0; i < n; i += 4096) sum += p[i];
  printf("%ld\n", sum);
  return 0;
}
"""

ENGINES = ("unicorn", "soft")


def build(source: str, name: str) -> Path:
    """A static executable from C source, cached by source hash under the temp directory."""
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "vmsim-bench-progs" / f"{name}-{key}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        src = out.with_suffix(".c")
        src.write_text(source)
        subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(src)], check=True)
    return out


def run_once(engine: str, prog: Path, args: list[str], memory: str) -> tuple[float, int, bytes]:
    """(seconds, TLB fills seen by the engine, stdout) of one run on a fresh machine."""
    with tempfile.TemporaryDirectory(prefix="vmsim-engines-") as tmp:
        shutil.copy2(prog, Path(tmp) / "prog")
        m = Machine(memory=memory, seed=1, root=tmp, engine=engine)
        m.get_cpu()  # the engine's one-time set-up (calibration) is not the program's cost
        start = now()
        r = m.run("/prog", ["prog", *args], timeout=600)
        elapsed = now() - start
        if r.exit_code != 0 or r.timed_out:
            raise SystemExit(f"{engine}: {prog.name} failed: {r.exit_code} {r.kernel_log}")
        return elapsed, m.stats.get("cpu.tlb_fills", 0), r.stdout


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], reps=3)
    header("CPU engines: soft MMU (vmsim's walker on every TLB miss) vs QEMU's MMU", args)
    if shutil.which("gcc") is None:
        print("gcc is needed to build the programs")
        return 1
    iters = 5_000_000 if args.quick else 300_000_000
    mib, passes = (4, 4) if args.quick else (16, 20)
    cases = [("compute", build(COMPUTE, "compute"), [str(iters)], f"{iters:,} iterations"),
             ("touch", build(TOUCH, "touch"), [str(mib), str(passes)],
              f"{mib} MiB, {passes} sweeps")]
    rows, summary = [], []
    for name, prog, prog_args, what in cases:
        times: dict[str, list[float]] = {e: [] for e in ENGINES}
        fills = 0
        outputs = set()
        for _ in range(args.reps):
            for engine in ENGINES:  # interleaved, so a noisy neighbour slows both
                t, f, out = run_once(engine, prog, prog_args, "256M")
                times[engine].append(t)
                outputs.add(out)
                fills = f or fills
        if len(outputs) != 1:
            raise SystemExit(f"{name}: the engines disagree on the output: {outputs}")
        hw, soft = median(times["unicorn"]), median(times["soft"])
        rows.append([name, what, f"{fmt(hw, '.3f')} s {spread(times['unicorn'])}",
                     f"{fmt(soft, '.3f')} s {spread(times['soft'])}", f"{soft / hw:.2f}x",
                     f"{fills:,}", fmt((soft - hw) / fills * 1e6 if fills > 1000 else None, ".3g", " µs")])
        summary.append(summary_row("engines", f"{name} ({what})", f"soft {soft:.3f} s",
                                   f"unicorn {hw:.3f} s", f"{soft / hw:.2f}x"))
    print(table(["program", "size", "unicorn", "soft", "soft/unicorn", "soft fills",
                 "extra per fill"], rows))
    print("extra per fill: (soft - unicorn) / fills, what one Python walk and fill costs "
          "(n/a when there are too few fills to tell)")
    write_summary(args, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
