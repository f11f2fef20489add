"""`vmsim run PROGRAM [ARGS...]`: run a real static x86-64 Linux program on vmsim.

The program runs as the first process of a fresh machine whose file
system is a sandbox directory (`--root DIR`, or by default a private
temporary directory holding only the program, copied in at its own path,
the bundled samples at "/" and an empty /tmp). Its stdin, stdout and stderr
are the host's: output is written through as it is produced, input is read
from the host when the guest reads. The exit status is the guest's as a
shell reports it (the exit code, or 128 + the signal that killed it); a
program that cannot be started gets the shell's 127 (not found) or 126
(found but not executable: not an ELF program, a directory, no permission).
"""

from __future__ import annotations

import argparse
import errno as E
import inspect
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmsim.kernel.files import Console
from vmsim.kernel.signal import NAMES as SIGNAL_NAMES
from vmsim.kernel.signal import SIGPIPE, SigInfo, send_signal
from vmsim.kernel.syscalls import SYSCALLS
from vmsim.machine import Machine, samples_dir

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

#: Where a bare command name is looked for inside a --root directory (the guest's PATH).
GUEST_PATH = ("/", "/bin", "/usr/bin", "/sbin", "/usr/sbin")
#: How a shell describes a death by signal (bash's strsignal wording for the common ones).
SIGNAL_TEXT = {4: "Illegal instruction", 6: "Aborted", 7: "Bus error", 8: "Floating point exception",
               9: "Killed", 11: "Segmentation fault", 13: "Broken pipe", 15: "Terminated"}
#: Fault kinds as `mm/fault.py` counts them, with what each one means.
FAULT_KINDS = {
    "anon": "new anonymous page (do_anonymous_page, write)",
    "zero": "zero page mapped (do_anonymous_page, read)",
    "file": "file page read through the page cache (do_read_fault)",
    "cow": "private copy of a file page (do_cow_fault)",
    "shared": "shared page, file or shmem (do_shared_fault)",
    "wp-copy": "copy-on-write copy (do_wp_page)",
    "wp-reuse": "copy-on-write reuse, single mapper (do_wp_page)",
    "wp-shared": "write to a shared page made writable (do_wp_page)",
    "spurious": "spurious (already resolved)",
    "segv-maperr": "SIGSEGV, no mapping (SEGV_MAPERR)",
    "segv-accerr": "SIGSEGV, access not allowed (SEGV_ACCERR)",
    "sigbus": "SIGBUS",
    "guard": "guard region (SIGSEGV)",
    "oom": "out of memory",
    "stack-growth": "stack grown down to the fault (expand_stack)",
}


def samples() -> list[str]:
    """The names of the bundled sample programs (the ELF files in `samples_dir()`)."""
    d = samples_dir()
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        try:
            if p.is_file() and p.open("rb").read(4) == b"\x7fELF":
                out.append(p.name)
        except OSError:
            continue
    return sorted(out)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the `run` subcommand on the `vmsim` parser."""
    run = sub.add_parser(
        "run", help="run a real static x86-64 Linux program (or a bundled sample) on vmsim",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog="bundled samples: " + (", ".join(samples()) or "none"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--arch", choices=("x86_64", "i386", "i386-pae"), default="x86_64",
                     help="architecture of the machine: x86_64, or i386 / i386-pae (static "
                          "i386 programs through int $0x80, on 2-level or PAE page tables)")
    run.add_argument("--memory", default="256M", help="guest RAM (default 256M)")
    run.add_argument("--root", metavar="DIR", default=None,
                     help="host directory the guest sees as / (default: a private temporary "
                     "root with the program and the samples); PROGRAM is then a guest path")
    run.add_argument("--read-only", action="store_true",
                     help="mount the root read-only: every change the guest tries is EROFS "
                     "(e.g. --root / --read-only runs the host's own dynamically linked programs)")
    run.add_argument("--seed", type=int, default=1, help="seed of address randomisation")
    run.add_argument("--no-aslr", action="store_true", help="turn address randomisation off")
    run.add_argument("--engine", choices=("unicorn", "soft"), default="unicorn",
                     help="CPU: unicorn (Unicorn's MMU walks vmsim's tables, default) or soft "
                     "(vmsim's walker fills Unicorn's TLB: slower, every fill visible)")
    run.add_argument("--timeout", type=float, default=0.0, metavar="SECONDS",
                     help="stop the guest after this much host time (default: no limit)")
    run.add_argument("--max-instructions", type=int, default=0, metavar="N",
                     help="stop the guest after N instructions (all processes together)")
    run.add_argument("--count-instructions", action="store_true",
                     help="count instructions for --stats (a native hook on every "
                     "instruction: compute-bound programs run several times slower)")
    run.add_argument("--trace", action="store_true",
                     help="print each system call to stderr: [pid] name(args) = ret")
    run.add_argument("--stats", action="store_true",
                     help="print faults by kind, COW copies, TLB flushes, ... to stderr at the end, "
                     "for the machine and per process")
    run.add_argument("--stats-json", type=Path, default=None, metavar="FILE",
                     help="write the per-process statistics to FILE as JSON")
    run.add_argument("program", metavar="PROGRAM",
                     help="a bundled sample's name (hello, cow, ...) or a path to a static "
                     "x86-64 ELF program")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="the program's arguments")


# ---- the terminal ----------------------------------------------------------------------
@dataclass(eq=False)
class HostConsole(Console):
    """The guest's terminal wired to the host's streams: output goes out at once, as bytes;
    a read takes what the host's stdin has (blocking as a terminal read does), then EOF.
    Output is not kept (`sink` stays empty)."""

    def read(self, task: Process, n: int) -> bytes | int | None:
        if self.source:
            return super().read(task, n)
        try:
            return os.read(sys.stdin.fileno(), max(0, min(n, 1 << 20)))
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return b""

    def write(self, task: Process, data: bytes) -> int | None:
        stream = sys.stdout if self.name == "stdout" else sys.stderr
        try:
            out = stream.buffer
            out.write(data)
            out.flush()
        except BrokenPipeError:  # the host's reader is gone: the guest sees a closed pipe
            send_signal(task, SigInfo(SIGPIPE, 0, pid=task.pid))
            return -E.EPIPE
        except OSError as exc:  # e.g. ENOSPC from /dev/full: the guest's write fails alike
            return -(exc.errno or E.EIO)
        except (AttributeError, ValueError):  # no usable host stream: the output is dropped
            return len(data)
        return len(data)


# ---- tracing -------------------------------------------------------------------------------
def _arities() -> dict[str, int]:
    """name -> number of arguments a handler takes (from its signature)."""
    out: dict[str, int] = {}
    for name, fn in SYSCALLS.values():
        try:
            params = list(inspect.signature(fn).parameters.values())[1:]
        except (TypeError, ValueError):
            continue
        out[name] = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    return out


def _fmt_arg(value: int) -> str:
    signed = value - (1 << 64) if value >> 63 else value
    return str(signed) if -4096 < signed < 0x10000 else hex(value)


def make_tracer(stream: object) -> object:
    """An strace-like callback for `Machine.strace`: one line per system call."""
    arity = _arities()

    def trace(task: Process, name: str, args: list[int], ret: int | None, note: str) -> None:
        n = arity.get(name, 6)
        shown = ", ".join(_fmt_arg(a) for a in args[:n])
        if name in ("exit", "exit_group"):
            result = "?"
        elif ret is None:
            result = "? (blocked: repeated when woken)"
        elif -4096 < ret < 0:
            code = E.errorcode.get(-ret, str(-ret))
            result = f"{ret} {code}" + (" (not implemented by vmsim)" if note else "")
        else:
            result = _fmt_arg(ret & ((1 << 64) - 1))
        print(f"[{task.pid}] {name}({shown}) = {result}", file=stream, flush=True)  # type: ignore[call-overload]

    return trace


# ---- statistics ------------------------------------------------------------------------------
def format_stats(machine: Machine, seconds: float) -> str:
    """The end-of-run report: page faults by kind, COW copies, TLB flushes, allocations."""
    stats = machine.stats
    ev = machine.kmem.vm_event
    lines = ["", "--- vmsim statistics ---"]
    kinds = {k[6:]: v for k, v in stats.items() if k.startswith("fault.")}
    major = ev.get("pgmajfault", 0)
    lines.append(f"page faults          {ev.get('pgfault', sum(kinds.values())):>8}"
                 f"   (major {major}, minor {ev.get('pgfault', 0) - major})")
    for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {kind:<18} {count:>8}   {FAULT_KINDS.get(kind, '')}".rstrip())
    lines.append(f"COW copies           {ev.get('cow_copy', 0):>8}")
    lines.append(f"COW reuses           {ev.get('cow_reuse', 0):>8}")
    lines.append(f"TLB flushes          {ev.get('tlb_flush', 0):>8}")
    if "cpu.tlb_fills" in stats:
        lines.append(f"CPU TLB fills        {stats['cpu.tlb_fills']:>8}   (soft engine)")
        lines.append(f"CPU TLB flushes      {stats['cpu.tlb_flushes']:>8}")
    lines.append(f"pages allocated      {ev.get('pgalloc', 0):>8}")
    lines.append(f"pages freed          {ev.get('pgfree', 0):>8}")
    lines.append(f"free pages at end    {stats['free_pages']:>8}")
    if machine.unimplemented:
        calls = ", ".join(f"{n} ({c})" for n, c in sorted(machine.unimplemented.items()))
        lines.append(f"unimplemented system calls (-ENOSYS): {calls}")
    if machine.insns:
        lines.append(f"instructions         {machine.insns:>8}")
    lines.append(f"host time            {seconds:>8.3f} s")
    return "\n".join(lines) + "\n"


def process_stats(machine: Machine) -> list[dict[str, object]]:
    """One record per process the machine ran: its faults by kind, minor and major faults,
    peak RSS, page tables, instructions (when counted), TLB fills (soft engine), host time."""
    fills = getattr(machine.cpu, "fills_by_pid", {})
    kb = machine.kmem.page_size // 1024
    out: list[dict[str, object]] = []
    for proc in machine.history:
        if proc.alive:
            proc.account_mm()
        status = proc.wait_status
        out.append({
            "pid": proc.pid, "ppid": proc.ppid, "comm": proc.comm,
            "exit_code": proc.exit_code, "signal": status & 0x7F if proc.state == "killed" else 0,
            "faults": dict(sorted(proc.acct.kinds.items())),
            "minflt": proc.acct.min_flt, "majflt": proc.acct.maj_flt,
            "peak_rss_kb": proc.peak_rss_pages * kb, "pgtable_kb": proc.pgtables_bytes // 1024,
            "instructions": proc.insns if machine.count_instructions or machine.max_instructions
            else None,
            "tlb_fills": fills.get(proc.pid), "host_seconds": round(proc.host_ns / 1e9, 6),
        })
    return out


def format_process_stats(rows: list[dict[str, object]]) -> str:
    """The per-process table of --stats."""
    lines = ["", "--- per process ---",
             f"{'pid':>5} {'comm':<15} {'exit':>5} {'minflt':>7} {'majflt':>6} {'peakRSS':>9} "
             f"{'pgtbl':>7} {'instructions':>13} {'TLBfill':>8} {'time':>8}  faults by kind"]
    for r in rows:
        status = f"+{r['signal']}" if r["signal"] else str(r["exit_code"])
        insns = "-" if r["instructions"] is None else str(r["instructions"])
        fills = "-" if r["tlb_fills"] is None else str(r["tlb_fills"])
        kinds = " ".join(f"{k}={v}" for k, v in r["faults"].items())  # type: ignore[attr-defined]
        lines.append(f"{r['pid']:>5} {str(r['comm'])[:15]:<15} {status:>5} {r['minflt']:>7} "
                     f"{r['majflt']:>6} {str(r['peak_rss_kb']) + 'k':>9} "
                     f"{str(r['pgtable_kb']) + 'k':>7} {insns:>13} {fills:>8} "
                     f"{r['host_seconds']:>7.3f}s  {kinds}")
    return "\n".join(lines) + "\n"


# ---- finding the program -------------------------------------------------------------------------
class UsageError(Exception):
    """Bad input from the user: `message`, and the shell's exit status for it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _interp_of(path: Path) -> str | None:
    """The interpreter of a host file: an ELF file's PT_INTERP or a script's "#!" line
    (to explain an ENOENT from execve)."""
    try:
        with path.open("rb") as f:
            head = f.read(256)
            if head[:2] == b"#!":
                words = head[2:].split(b"\n", 1)[0].split()
                return words[0].decode(errors="replace") if words else None
            if len(head) < 64 or head[:4] != b"\x7fELF":
                return None
            phoff, = struct.unpack_from("<Q", head, 32)
            phnum, = struct.unpack_from("<H", head, 56)
            f.seek(phoff)
            raw = f.read(56 * min(phnum, 64))
            for i in range(len(raw) // 56):
                p_type, _, off, _, _, size = struct.unpack_from("<IIQQQQ", raw, 56 * i)
                if p_type == 3:
                    f.seek(off)
                    return f.read(min(size, 4096)).rstrip(b"\0").decode(errors="replace")
    except OSError:
        return None
    return None


def prepare(program: str, root: str | None, workdir: Path) -> tuple[Path, str, Path | None]:
    """(root directory, guest path of the program, host file of the program or None).

    Without `root`, the program is a bundled sample or a host file; a private root in
    `workdir` gets the samples at "/", an empty /tmp and the program at its own path."""
    if root is not None:
        rootdir = Path(root)
        if not rootdir.is_dir():
            raise UsageError(f"--root {root}: not a directory", 2)
        if "/" in program:
            guest = program if program.startswith("/") else "/" + program
        else:
            for d in GUEST_PATH:
                cand = rootdir / d.lstrip("/") / program
                if cand.is_file():
                    guest = f"{d.rstrip('/')}/{program}"
                    break
            else:
                raise UsageError(f"{program}: not found in {root} (looked in "
                                 f"{', '.join(GUEST_PATH)})", 127)
        return rootdir, guest, rootdir / guest.lstrip("/")
    sample = samples_dir() / program
    if "/" not in program and sample.is_file():
        host, guest = sample, "/" + program
    else:
        host = Path(program)
        if not host.exists():
            hint = "" if "/" in program else (
                f" (not a bundled sample either: {', '.join(samples())})")
            raise UsageError(f"{program}: No such file or directory{hint}", 127)
        if host.is_dir():
            raise UsageError(f"{program}: Is a directory", 126)
        guest = os.path.abspath(host)
    rootdir = workdir / "root"
    rootdir.mkdir()
    (rootdir / "tmp").mkdir()
    for name in samples():
        shutil.copy2(samples_dir() / name, rootdir / name)
        (rootdir / name).chmod(0o755)  # whatever mode the installed package left them
    dest = rootdir / guest.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy2(host, dest)
    except OSError as exc:
        raise UsageError(f"{program}: {exc.strerror or exc}", 126) from exc
    if host.parent == samples_dir():
        dest.chmod(0o755)
    return rootdir, guest, host


def exec_error(program: str, err: int, host: Path | None, arch: str = "x86_64") -> UsageError:
    """The shell's message and status for a program that could not be started."""
    text = os.strerror(err)
    if err == E.ENOEXEC:
        kind = "x86-64" if arch == "x86_64" else "i386"
        text = f"Exec format error (not an {kind} ELF program vmsim can run)"
    if err == E.ENOENT and host is not None and host.exists():
        interp = _interp_of(host)
        if interp:
            text += (f" (its interpreter {interp} is not in the guest's root: give --root "
                     "a directory that holds it, or run a static program)")
    return UsageError(f"{program}: {text}", 127 if err == E.ENOENT else 126)


# ---- the command ---------------------------------------------------------------------------------
def run_command(args: argparse.Namespace) -> int:
    """`vmsim run`: the guest's exit status as a shell reports it."""
    try:
        with tempfile.TemporaryDirectory(prefix="vmsim-run-") as work:
            return _run(args, Path(work))
    except UsageError as exc:
        print(f"vmsim: {exc}", file=sys.stderr)
        return exc.status


def _run(args: argparse.Namespace, work: Path) -> int:
    rootdir, guest, host = prepare(args.program, args.root, work)
    try:
        machine = Machine(arch=args.arch, memory=args.memory, seed=args.seed, root=rootdir,
                          read_only=args.read_only,
                          aslr=not args.no_aslr, engine=args.engine)
    except (ValueError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\""), 2) from exc
    except (MemoryError, OSError) as exc:
        raise UsageError(f"--memory {args.memory}: cannot allocate the guest's RAM "
                         f"({getattr(exc, 'strerror', None) or exc})", 2) from exc
    if args.engine == "soft" and args.arch != "x86_64":
        raise UsageError(f"--engine soft runs x86_64 programs only (not --arch {args.arch})", 2)
    if args.engine == "soft":
        try:
            machine.get_cpu()
        except ImportError as exc:
            raise UsageError(f"--engine soft is not available in this vmsim ({exc})", 2) from exc
    if args.max_instructions < 0 or args.timeout < 0:
        raise UsageError("--max-instructions and --timeout must be 0 (no limit) or more", 2)
    machine.max_instructions = args.max_instructions
    machine.count_instructions = args.count_instructions
    for name in ("stdin", "stdout", "stderr"):
        machine.console[name] = HostConsole(name)
    if args.trace:
        machine.strace = make_tracer(sys.stderr)  # type: ignore[assignment]
    start = time.monotonic()
    try:
        result = machine.run(guest, [args.program, *args.args], timeout=args.timeout)
    finally:
        seconds = time.monotonic() - start
        close = getattr(machine, "close", None)  # release the root's host files
        if close is not None:
            close()
    if result.errno:
        raise exec_error(args.program, result.errno, host, args.arch)
    for line in result.kernel_log:
        if line.startswith("vmsim:"):  # the machine's own notes, not the guest kernel's
            if not (result.timed_out and "budget exhausted" in line):
                print(line, file=sys.stderr)
        else:
            print(f"vmsim: kernel: {line}", file=sys.stderr)
    if result.timed_out:
        if args.max_instructions and machine.insns >= args.max_instructions:
            limit = f"instruction budget of {args.max_instructions}"
        else:
            limit = f"time limit of {args.timeout:g} s"
        print(f"vmsim: {args.program}: {limit} reached, every task was killed",
              file=sys.stderr)
    elif result.signal and result.signal != SIGPIPE:
        name = SIGNAL_NAMES.get(result.signal, f"signal {result.signal}")
        text = SIGNAL_TEXT.get(result.signal, name)
        print(f"vmsim: {args.program}: {text} ({name})", file=sys.stderr)
    if args.stats:
        sys.stderr.write(format_stats(machine, seconds))
        sys.stderr.write(format_process_stats(process_stats(machine)))
    if args.stats_json is not None:
        try:
            args.stats_json.write_text(json.dumps(process_stats(machine), indent=2) + "\n")
        except OSError as exc:
            print(f"vmsim: --stats-json: {exc.strerror}: {args.stats_json}", file=sys.stderr)
    return result.exit_code
