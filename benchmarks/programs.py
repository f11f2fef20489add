"""Real programs: native vs vmsim vs Qiling, and the compute-bound sample vs raw Unicorn.

For each bundled sample program, busybox's md5sum of a 10 MB file and a
compute-bound sieve, prints the median wall time of N runs natively, on
vmsim (`Machine(...).run`, machine creation included) and on Qiling (the
binary emulation framework, installed in a throw-away virtual environment
on first use: `--qiling-venv DIR`), and the ratios, all measured in one run.
The compute-bound sieve is also run on raw Unicorn with its own TLB (flat
guest memory, no page tables, only the few system calls it makes), the
baseline for the cost of walking vmsim's tables.

    python benchmarks/programs.py [--reps N] [--no-qiling]

Targets (issue 3): every program at or below Qiling's time; hello's start-up
<= 0.3 s; the sieve within 1.2x of raw Unicorn.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from vmsim.machine import Machine, samples_dir  # noqa: E402

SIEVE = r"""
#include <stdio.h>
#include <string.h>
#define N 3000000
static unsigned char composite[N];
int main(void) {
    unsigned long count = 0, sum = 0;
    for (unsigned long i = 2; i < N; i++) {
        if (composite[i]) continue;
        count++; sum += i;
        for (unsigned long j = i * i; j < N; j += i) composite[j] = 1;
    }
    printf("%lu primes below %d, sum %lu\n", count, N, sum);
    return 0;
}
"""

QILING_DRIVER = r"""
import json, statistics, sys, time
from qiling import Qiling
from qiling.const import QL_VERBOSE
argv, rootfs, reps, out = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    try:
        ql = Qiling(argv, rootfs, verbose=QL_VERBOSE.DISABLED)
        ql.run()
    except BaseException as exc:
        open(out, "w").write(json.dumps({"ok": False, "error": repr(exc)[:200]}))
        sys.exit(0)
    times.append(time.perf_counter() - t0)
open(out, "w").write(json.dumps({"ok": True, "median": statistics.median(times)}))
"""


def median_time(fn: object, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(src: str, out: Path) -> None:
    cc = shutil.which("musl-gcc") or "gcc"
    c = out.with_suffix(".c")
    c.write_text(src)
    subprocess.run([cc, "-static", "-O2", "-o", str(out), str(c)], check=True)


def qiling_python(venv: Path) -> Path | None:
    """The venv's python with qiling importable (installed on first use)."""
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(py), "-c", "import qiling"], capture_output=True, check=False)
    if probe.returncode != 0:
        print(f"installing qiling into {venv} ...", flush=True)
        inst = subprocess.run([str(py), "-m", "pip", "install", "-q", "qiling"], check=False)
        if inst.returncode != 0:
            return None
    return py


def run_qiling(py: Path, argv: list[str], root: Path, reps: int) -> float | str:
    """Qiling's median time (its argv[0] is the host path inside its rootfs), or why not."""
    result = root / ".qiling.json"
    result.unlink(missing_ok=True)
    host_argv = [str(root / argv[0].lstrip("/")), *argv[1:]]
    try:
        subprocess.run([str(py), "-c", QILING_DRIVER, json.dumps(host_argv), str(root),
                        str(reps), str(result)], capture_output=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        return "timed out"
    if not result.exists():
        return "failed (no result)"
    got = json.loads(result.read_text())
    return got["median"] if got["ok"] else f"failed ({got['error'][:60]})"


# ---- raw Unicorn: the sieve on flat memory -------------------------------------------------
def raw_unicorn_run(path: Path) -> bytes:
    """Run a static musl binary on Unicorn's default MMU (no paging), handling only the calls
    the sieve makes. Returns its stdout."""
    from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, Uc
    from unicorn import x86_const as x

    data = path.read_bytes()
    e_entry, e_phoff = struct.unpack_from("<QQ", data, 24)
    e_phnum = struct.unpack_from("<H", data, 56)[0]
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    brk = 0
    for i in range(e_phnum):
        p_type, _f, off, vaddr, _pa, filesz, memsz, _al = struct.unpack_from("<IIQQQQQQ", data,
                                                                            e_phoff + 56 * i)
        if p_type != 1:
            continue
        start, end = vaddr & ~0xFFF, (vaddr + memsz + 0xFFF) & ~0xFFF
        uc.mem_map(start, end - start)
        uc.mem_write(vaddr, data[off:off + filesz])
        brk = max(brk, end)
    stack_top = 0x7FFF_0000_0000
    uc.mem_map(stack_top - (1 << 20), 1 << 20)
    sp = stack_top - 4096
    uc.mem_write(sp, struct.pack("<QQQQQQQ", 1, sp + 64, 0, 0, 6, 4096, 0) + b"sieve\0")
    heap = [brk, brk]
    out = bytearray()

    def on_syscall(uc: Uc, _d: object) -> None:
        nr = uc.reg_read(x.UC_X86_REG_RAX)
        a = [uc.reg_read(r) for r in (x.UC_X86_REG_RDI, x.UC_X86_REG_RSI, x.UC_X86_REG_RDX)]
        ret = 0
        if nr in (60, 231):
            uc.emu_stop()
        elif nr == 158:
            uc.reg_write(x.UC_X86_REG_FS_BASE, a[1])
        elif nr == 218:
            ret = 1
        elif nr == 16:
            ret = -25 & (2**64 - 1)
        elif nr == 12:
            if a[0] > heap[1]:
                new = (a[0] + 0xFFF) & ~0xFFF
                uc.mem_map(heap[1], new - heap[1])
                heap[1] = new
            ret = max(a[0], heap[0]) if a[0] else heap[0]
        elif nr == 20:
            for i in range(a[2]):
                base, length = struct.unpack("<QQ", uc.mem_read(a[1] + 16 * i, 16))
                out.extend(uc.mem_read(base, length))
                ret += length
        elif nr == 1:
            out.extend(uc.mem_read(a[1], a[2]))
            ret = a[2]
        else:
            ret = -38 & (2**64 - 1)
        uc.reg_write(x.UC_X86_REG_RAX, ret)

    uc.hook_add(UC_HOOK_INSN, on_syscall, None, 1, 0, x.UC_X86_INS_SYSCALL)
    uc.reg_write(x.UC_X86_REG_RSP, sp)
    uc.emu_start(e_entry, 0xFFFF_8000_0000_0000 - 1)
    return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-qiling", action="store_true")
    ap.add_argument("--qiling-venv", type=Path, default=Path(tempfile.gettempdir()) / "vmsim-qiling-venv")
    args = ap.parse_args()
    py = None if args.no_qiling else qiling_python(args.qiling_venv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vmsim-programs-") as tmp:
        root = Path(tmp)
        progs: list[tuple[str, list[str]]] = []
        for sample in sorted(samples_dir().iterdir()):
            if sample.is_file() and sample.stat().st_mode & 0o111:
                shutil.copy2(sample, root / sample.name)
                progs.append((sample.name, [f"/{sample.name}"]))
        build(SIEVE, root / "sieve")
        progs.append(("sieve", ["/sieve"]))
        busybox = shutil.which("busybox") or ("/bin/busybox" if Path("/bin/busybox").exists() else None)
        if busybox:
            shutil.copy2(busybox, root / "busybox")
            (root / "data10m").write_bytes(bytes(range(256)) * (10 * 4096))
            progs.append(("busybox md5sum 10MB", ["/busybox", "md5sum", "/data10m"]))
        for name, argv in progs:
            host_argv = [str(root / argv[0].lstrip("/")), *[str(root / a.lstrip("/")) if a.startswith("/") else a for a in argv[1:]]]
            native_out = subprocess.run(host_argv, capture_output=True, cwd=root, check=False)
            native = median_time(lambda: subprocess.run(host_argv, capture_output=True, cwd=root,  # noqa: B023
                                                        check=False), args.reps)
            results = []

            def one() -> None:
                m = Machine(memory="256M", root=root, seed=1)
                results.append(m.run(argv[0], argv, timeout=600))  # noqa: B023
                m.close()

            vm = median_time(one, args.reps)
            native_stdout = native_out.stdout.replace(str(root).encode() + b"/", b"/")
            same = results[-1].stdout == native_stdout and results[-1].exit_code == native_out.returncode
            ql: float | str = "skipped"
            if py is not None:
                ql = run_qiling(py, argv, root, args.reps)
            row = {"program": name, "native_s": native, "vmsim_s": vm, "qiling": ql,
                   "vmsim_output_equal": same}
            if name == "sieve":
                raw = median_time(lambda: raw_unicorn_run(root / "sieve"), args.reps)
                row["raw_unicorn_s"] = raw
                assert raw_unicorn_run(root / "sieve") == native_out.stdout
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"{'program':<22}{'native':>10}{'vmsim':>10}{'qiling':>10}{'vmsim/native':>14}"
          f"{'vmsim/qiling':>14}  output")
    for r in rows:
        ql = r["qiling"]
        ql_s = f"{ql:.3f}" if isinstance(ql, float) else "n/a"
        ratio_q = f"{r['vmsim_s'] / ql:.2f}" if isinstance(ql, float) else str(ql)[:24]
        print(f"{r['program']:<22}{r['native_s']:>10.3f}{r['vmsim_s']:>10.3f}{ql_s:>10}"
              f"{r['vmsim_s'] / r['native_s']:>14.1f}{ratio_q:>14}  "
              f"{'same' if r['vmsim_output_equal'] else 'DIFFERENT'}")
    sieve = next(r for r in rows if r["program"] == "sieve")
    print(f"\nsieve: vmsim {sieve['vmsim_s']:.3f} s, raw Unicorn {sieve['raw_unicorn_s']:.3f} s, "
          f"ratio {sieve['vmsim_s'] / sieve['raw_unicorn_s']:.2f} (target <= 1.2)")
    hello = next((r for r in rows if r["program"] == "hello"), None)
    if hello:
        print(f"hello start-up on vmsim: {hello['vmsim_s']:.3f} s (target <= 0.3 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
