"""Shared plumbing of the benchmark scripts: the host helper, repetitions, medians, tables.

Benchmarks are not tests: each script prints its figures. Host and vmsim
are measured in the same run, interleaved repetition by repetition, so a
noisy neighbour on the shared cores slows both; the figures reported are
medians over the repetitions, and ratios are medians of vmsim over medians
of the host.

Times are CPU time (user + system) of the measuring process by default:
`time.process_time()` here and CLOCK_PROCESS_CPUTIME_ID in host_bench.c, the
same clock. On shared cores that leaves out the time a process waits for a
core, which wall-clock time would add at random to either side. `--wall`
switches both sides to wall-clock time (perf_counter / CLOCK_MONOTONIC).
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HOST_SOURCE = HERE / "host_bench.c"
CFLAGS = ("-O2", "-Wall", "-Wl,-z,now")

_host_exe: Path | None = None
_host_reason = ""
_clock: Callable[[], float] = time.process_time
_clock_name = "cpu"


def parse_args(description: str, reps: int = 5, profile: bool = False) -> argparse.Namespace:
    """The common command line: --quick, --reps, --json (used by run_all), --profile."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="small sizes and 3 repetitions (smoke run)")
    ap.add_argument("--reps", type=int, default=None,
                    help=f"repetitions per figure (default {reps}, 3 with --quick)")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary rows here")
    ap.add_argument("--wall", action="store_true",
                    help="time with wall-clock time instead of process CPU time (both sides)")
    if profile:
        ap.add_argument("--profile", action="store_true",
                        help="profile the vmsim side with cProfile and print the hot spots")
    args = ap.parse_args()
    if args.reps is None:
        args.reps = 3 if args.quick else reps
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.wall:
        set_clock("wall")
    return args


def set_clock(name: str) -> None:
    """'cpu' (process CPU time, the default) or 'wall', for vmsim and host_bench alike."""
    global _clock, _clock_name
    _clock = time.perf_counter if name == "wall" else time.process_time
    _clock_name = name


# ---------------------------------------------------------------- the host helper
def host_exe() -> Path | None:
    """Compile host_bench.c once per process (gcc -O2, temp dir); None if impossible."""
    global _host_exe, _host_reason
    if _host_exe is not None or _host_reason:
        return _host_exe
    if platform.system() != "Linux":
        _host_reason = f"host is {platform.system()}, not Linux"
        return None
    gcc = shutil.which("gcc")
    if gcc is None:
        _host_reason = "gcc not found (apt-get install gcc libc6-dev)"
        return None
    outdir = Path(tempfile.mkdtemp(prefix="vmsim-bench-"))
    atexit.register(shutil.rmtree, outdir, True)
    exe = outdir / "host_bench"
    proc = subprocess.run([gcc, *CFLAGS, "-o", str(exe), str(HOST_SOURCE)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        _host_reason = f"compiling host_bench.c failed: {proc.stderr.strip()}"
        return None
    _host_exe = exe
    return exe


def host_unavailable_reason() -> str:
    return _host_reason


def run_host(*args: object, ok_codes: Sequence[int] = (0,)) -> dict[str, float] | None:
    """Run one host_bench subcommand; its key=value fields as floats (None if unavailable)."""
    exe = host_exe()
    if exe is None:
        return None
    env = {**os.environ, "HOST_BENCH_CLOCK": _clock_name}
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=300, env=env)
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"host_bench {' '.join(map(str, args))} exited {proc.returncode}: "
                           f"{proc.stderr.strip()}")
    if proc.returncode != 0:
        return None
    fields: dict[str, float] = {}
    for word in proc.stdout.split()[1:]:
        key, _, value = word.partition("=")
        fields[key] = float(value)
    return fields


# ---------------------------------------------------------------- timing and figures
def now() -> float:
    """Seconds on the benchmark clock (process CPU time unless --wall)."""
    return _clock()


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def spread(values: Sequence[float]) -> str:
    """min..max of the repetitions, to show how noisy a median is."""
    return f"{min(values):.4g}..{max(values):.4g}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: float | None, spec: str = ".3g", unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}{unit}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A plain text table: the first `left` columns left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.ljust(w) if i < left else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "UNKNOWN (no host figure)"
    return "MET" if value <= limit else "NOT MET"


def summary_row(bench: str, what: str, vmsim: str, host: str, ratio_text: str,
                target: str = "", status: str = "") -> dict[str, str]:
    return {"bench": bench, "what": what, "vmsim": vmsim, "host": host, "ratio": ratio_text,
            "target": target, "status": status}


def write_summary(args: argparse.Namespace, rows: list[dict[str, str]]) -> None:
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


def header(title: str, args: argparse.Namespace) -> None:
    import vmsim

    exe = host_exe()
    print(f"== {title} ==")
    print(f"python {platform.python_version()}, vmsim {getattr(vmsim, '__version__', '?')}, "
          f"host {platform.system()} {platform.release()} {platform.machine()}, "
          f"{args.reps} repetitions{' (quick)' if args.quick else ''}, medians reported, "
          + ("wall-clock time" if _clock_name == "wall" else
             "process CPU time (user+sys; waits for a shared core not counted)"))
    if exe is None:
        print(f"host figures unavailable: {host_unavailable_reason()}")
    sys.stdout.flush()


# ---------------------------------------------------------------- profiling
def profile(fn: Callable[[], Any], title: str, top: int = 15) -> None:
    """Run fn under cProfile and print the hottest functions (self time, then cumulative)."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_cc, ncalls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = _short(path, line, name)
        rows.append((tt, ct, ncalls, where))
    print(f"\n-- cProfile: {title} (total {total:.3f} s under the profiler) --")
    print("by self time:")
    print(table(["function", "self s", "self %", "cum %", "calls"],
                [(w, f"{tt:.3f}", f"{100 * tt / total:.1f}", f"{100 * ct / total:.1f}", n)
                 for tt, ct, n, w in sorted(rows, reverse=True)[:top]]))
    print("by cumulative time (vmsim functions):")
    mine = [r for r in rows if r[3].startswith("vmsim")]
    print(table(["function", "cum s", "cum %", "calls"],
                [(w, f"{ct:.3f}", f"{100 * ct / total:.1f}", n)
                 for _tt, ct, n, w in sorted(mine, key=lambda r: -r[1])[:top]]))
    sys.stdout.flush()


def _short(path: str, line: int, name: str) -> str:
    if "/vmsim/" in path:
        mod = path.split("/vmsim/", 1)[1].removesuffix(".py").replace("/", ".")
        return f"vmsim.{mod}:{name}:{line}"
    if path == "~":
        return name  # a builtin, e.g. <method 'popitem' of 'dict' objects>
    return f"{Path(path).name}:{name}:{line}"
