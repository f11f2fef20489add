"""Run every benchmark, each in its own Python process, then print one summary table.

Each script's own output is passed through as it runs; the summary collects
the headline figures (vmsim, host, ratio vmsim/host) and the issue's targets.

    python benchmarks/run_all.py [--quick] [--reps N] [--wall]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bench_faults.py", "bench_fork.py", "bench_vma.py")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, 3 repetitions")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per figure")
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of process CPU time")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _common import table

    rows: list[dict[str, str]] = []
    failed: list[str] = []
    start = time.perf_counter()
    timings: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="vmsim-run-all-") as tmp:
        for script in SCRIPTS:
            out = Path(tmp) / f"{script}.json"
            cmd = [sys.executable, str(HERE / script), "--json", str(out)]
            if args.quick:
                cmd.append("--quick")
            if args.wall:
                cmd.append("--wall")
            if args.reps is not None:
                cmd += ["--reps", str(args.reps)]
            t0 = time.perf_counter()
            sys.stdout.flush()
            proc = subprocess.run(cmd, check=False)
            timings.append((script, time.perf_counter() - t0))
            print(flush=True)
            if proc.returncode != 0 or not out.exists():
                failed.append(f"{script} (exit {proc.returncode})")
                continue
            rows += json.loads(out.read_text())
    total = time.perf_counter() - start

    print("== summary (medians; ratio = vmsim time / host time) ==")
    print(table(["benchmark", "figure", "vmsim", "host", "ratio", "target", "status"],
                [(r["bench"], r["what"], r["vmsim"], r["host"], r["ratio"], r["target"],
                  r["status"]) for r in rows], left=2))
    print("\nwall time: " + ", ".join(f"{s} {t:.0f} s" for s, t in timings)
          + f"; total {total:.0f} s")
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
