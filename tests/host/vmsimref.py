"""Run host-reference scripts on vmsim, printing exactly what vmops.c prints.

:class:`VmsimRunner` executes the script lines of tests/host/hostref.py on a
fresh vmsim process and produces output lines in vmops.c's format, so a
host run and a vmsim run of one script compare with ``==``.
:func:`compare_with_host` does both runs for a test, with a shared file set.

How the vmsim side mirrors the host process
  * Base: vmsim's process starts empty, so the region can go anywhere; the
    base is :data:`VMSIM_BASE`, 2 MiB aligned with 12 hex digits like the
    host's bases (the kernel's maps padding depends on that width, see
    vmops.c).  Addresses print relative to it, exactly as in vmops.c.
  * File descriptors: the host runner has fds 0-2 open, so the vmsim process
    first opens "/" three times (O_RDONLY) to take fds 0-2 as well; the
    script's first open then returns 3 on both sides.
  * Privilege: vmops runs as root (CAP_IPC_LOCK, CAP_SYS_RAWIO, ...) with the
    caller's RLIMIT_MEMLOCK; the vmsim process gets every capability vmsim
    models (:data:`CAP_FIELDS`, flags in ``mm.rlimits``) and the same memlock
    limit.  ``capdrop`` of one of those and ``setrlimit`` of
    RLIMIT_MEMLOCK/AS/DATA/STACK act on vmsim's ``mm.rlimits``; ``capdrop``
    of any other capability is accepted and does nothing.
  * Signals: vmops catches SIGSEGV/SIGBUS and carries on; vmsim kills the
    process.  The "sig ..." line is printed the same way; every later
    operation of a killed process prints ``dead`` (a line vmops never
    prints), so a script that goes on after a fault shows the difference.
  * fork: the child runs its lines up to the matching ``endchild`` (lines
    prefixed ``child: ``) and then exits, before the parent continues - the
    host's order, since its parent waits for the child.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmsim import Machine
from vmsim.kernel.task import Process

from .hostref import HostRun, Script, run_host

VMSIM_BASE = 0x7F12_3440_0000
REGION_SIZE = 64 << 20
PAGE = 4096
MASK64 = (1 << 64) - 1
CHILD = "child: "

SEGV_CODES = {1: "MAPERR", 2: "ACCERR", 3: "BNDERR", 4: "PKUERR"}
BUS_CODES = {1: "ADRALN", 2: "ADRERR", 3: "OBJERR", 4: "MCEERR_AR", 5: "MCEERR_AO"}
#: Capabilities vmsim models, as attributes of ``mm.rlimits`` (capability number -> name).
CAP_FIELDS = {14: "cap_ipc_lock", 17: "cap_sys_rawio"}  # CAP_IPC_LOCK, CAP_SYS_RAWIO
RLIMIT_FIELDS = {2: "data", 3: "stack", 8: "memlock", 9: "as_"}  # RLIMIT_DATA/STACK/MEMLOCK/AS

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)( .*)$")


class ScriptError(ValueError):
    """A malformed script line (vmops would print bad-op; vmsimref says so too)."""


def _num(tok: str) -> int:
    """vmops.c's parse_num(): decimal or 0x-hex, optional sign, as unsigned 64-bit."""
    neg = tok.startswith("-")
    body = tok[1:] if tok[:1] in "+-" else tok
    if not body:
        raise ScriptError(tok)
    if body[:2].lower() == "0x":
        if not body[2:] or not all(c in "0123456789abcdefABCDEF" for c in body[2:]):
            raise ScriptError(tok)
        v = int(body[2:], 16)
    else:
        if not body.isdigit() or not body.isascii():
            raise ScriptError(tok)
        v = int(body, 10)
    return (-v if neg else v) & MASK64


def _s32(v: int) -> int:
    """The low 32 bits as a signed int (the kernel's `int fd`)."""
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


def _s64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def _matching_endchild(lines: Sequence[str], i: int) -> int:
    depth = 0
    for j in range(i + 1, len(lines)):
        word = lines[j].split()[0] if lines[j].split() else ""
        if word == "fork":
            depth += 1
        elif word == "endchild":
            if depth == 0:
                return j
            depth -= 1
    return len(lines)


class VmsimRunner:
    """Executes script lines on one vmsim machine (a fresh one per :meth:`run`)."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        path_map: tuple[str, str] | None = None,
        base: int = VMSIM_BASE,
        memory: str = "256M",
        seed: int = 1,
    ) -> None:
        """*root* is the machine's sandbox; *path_map* ``(host_prefix, guest_prefix)``
        turns the host paths of a script into guest paths."""
        self.root = root
        self.path_map = path_map
        self.base = base
        self.memory = memory
        self.seed = seed
        self.machine: Machine | None = None
        self._flt: dict[int, tuple[int, int]] = {}

    # ------------------------------------------------------------- helpers
    def _addr(self, tok: str) -> int:
        if tok == "-":
            return 0
        if tok.startswith("="):
            return _num(tok[1:])
        return (self.base + _num(tok)) & MASK64

    def _in_region(self, a: int) -> bool:
        return self.base <= a < self.base + REGION_SIZE

    def _fmt_addr(self, a: int) -> str:
        return f"+{a - self.base:#x}" if self._in_region(a) else f"={a:#x}"

    def _addr_ret(self, r: int) -> str:
        if r < 0:
            return f"ret {r}"
        return f"ret +{r - self.base:#x}" if self._in_region(r) else "ret out"

    def _rel(self, a: int) -> str:
        return f"{a - self.base:08x}" if a >= self.base else f"-{self.base - a:08x}"

    def _guest_path(self, path: str) -> str:
        if self.path_map is not None:
            host, guest = self.path_map
            if path == host or path.startswith(host.rstrip("/") + "/"):
                rest = path[len(host.rstrip("/")) :].lstrip("/")
                return guest.rstrip("/") + "/" + rest
        return path

    def _sig(self, p: Process) -> str:
        si = p.siginfo
        if si is None:
            return "sig ? 0 =0x0"
        codes = SEGV_CODES if si.signo == 11 else BUS_CODES if si.signo == 7 else {}
        code = codes.get(si.code, str(si.code))
        return f"sig {si.name} {code} {self._fmt_addr(si.addr)}"

    def _proc_dump(self, p: Process, name: str) -> list[str]:
        assert self.machine is not None
        text = self.machine.procfs.read(p.pid, name)
        out: list[str] = []
        keep = False
        for line in text.splitlines():
            m = _HEADER.match(line)
            if m:
                s, e = int(m[1], 16), int(m[2], 16)
                keep = s < self.base + REGION_SIZE and e > self.base
                if keep:
                    out.append(f"{self._rel(s)}-{self._rel(e)}{m[3]}")
            elif keep:
                out.append(line)
        out.append("end")
        return out

    # ----------------------------------------------------------- operations
    def _op(self, p: Process, argv: list[str], out: Callable[[str], None]) -> None:
        op, a = argv[0], argv[1:]

        def need(n: int) -> None:
            if len(a) != n:
                raise ScriptError(" ".join(argv))

        if op == "mmap":
            need(6)
            r = p.mmap(
                self._addr(a[0]), _num(a[1]), _num(a[2]), _num(a[3]), _s32(_num(a[4])), _num(a[5])
            )
            out(self._addr_ret(r))
        elif op == "munmap":
            need(2)
            out(f"ret {p.munmap(self._addr(a[0]), _num(a[1]))}")
        elif op == "mprotect":
            need(3)
            out(f"ret {p.mprotect(self._addr(a[0]), _num(a[1]), _num(a[2]))}")
        elif op == "mremap":
            need(5)
            r = p.mremap(self._addr(a[0]), _num(a[1]), _num(a[2]), _num(a[3]), self._addr(a[4]))
            out(self._addr_ret(r))
        elif op == "madvise":
            need(3)
            out(f"ret {p.madvise(self._addr(a[0]), _num(a[1]), _s32(_num(a[2])))}")
        elif op == "mlock":
            need(2)
            out(f"ret {p.mlock(self._addr(a[0]), _num(a[1]))}")
        elif op == "mlock2":
            need(3)
            out(f"ret {p.mlock2(self._addr(a[0]), _num(a[1]), _num(a[2]))}")
        elif op == "munlock":
            need(2)
            out(f"ret {p.munlock(self._addr(a[0]), _num(a[1]))}")
        elif op == "mlockall":
            need(1)
            out(f"ret {p.mlockall(_num(a[0]))}")
        elif op == "munlockall":
            need(0)
            out(f"ret {p.munlockall()}")
        elif op == "msync":
            need(3)
            out(f"ret {p.msync(self._addr(a[0]), _num(a[1]), _num(a[2]))}")
        elif op == "mincore":
            need(2)
            r = p.mincore(self._addr(a[0]), _num(a[1]))
            if isinstance(r, int):
                out(f"ret {r}")
            else:
                vec = "".join(str(b & 1) for b in r)
                out("ret 0" + (" " + vec if vec else ""))
        elif op == "touch":
            need(2)
            addr = self._addr(a[0])
            if a[1] == "r":
                ok = p.load(addr, 1) is not None
            elif a[1] == "w":
                ok = p.store(addr, b"\x5a")
            else:
                raise ScriptError(" ".join(argv))
            out("ok" if ok else self._sig(p))
        elif op == "write_at":
            need(2)
            data = bytes.fromhex(a[1])
            out("ok" if p.store(self._addr(a[0]), data) else self._sig(p))
        elif op == "read_at":
            need(2)
            got = p.load(self._addr(a[0]), _num(a[1]))
            out(self._sig(p) if got is None else "data" + (" " + got.hex() if got else ""))
        elif op == "open":
            need(2)
            out(f"ret {p.open(self._guest_path(a[0]), _s32(_num(a[1])), 0o644)}")
        elif op == "close":
            need(1)
            out(f"ret {p.close(_s32(_num(a[0])))}")
        elif op == "ftruncate":
            need(2)
            out(f"ret {p.ftruncate(_s32(_num(a[0])), _s64(_num(a[1])))}")
        elif op == "pwrite":
            need(3)
            out(f"ret {p.pwrite(_s32(_num(a[0])), bytes.fromhex(a[2]), _s64(_num(a[1])))}")
        elif op == "pread":
            need(3)
            got = p.pread(_s32(_num(a[0])), _num(a[2]), _s64(_num(a[1])))
            if isinstance(got, int):
                out(f"ret {got}")
            else:
                out("data" + (" " + got.hex() if got else ""))
        elif op in ("maps", "smaps"):
            need(0)
            for line in self._proc_dump(p, op):
                out(line)
        elif op == "pagemap":
            need(2)
            assert self.machine is not None
            raw = self.machine.procfs.pagemap(p.pid, self._addr(a[0]), _num(a[1]))
            words = [int.from_bytes(raw[i : i + 8], "little") >> 55 for i in range(0, len(raw), 8)]
            out(" ".join(["pagemap", *(f"{w:#x}" for w in words)]))
        elif op == "faults":
            need(0)
            mn, mj = p.min_flt, p.maj_flt
            out(f"faults {mn - self._flt[p.pid][0]} {mj - self._flt[p.pid][1]}")
            self._flt[p.pid] = (mn, mj)
        elif op == "setrlimit":
            need(3)
            res, soft = _num(a[0]), _num(a[1])
            fld = RLIMIT_FIELDS.get(res)
            if fld is None:
                raise ScriptError(f"vmsimref: no vmsim model of rlimit {res}")
            setattr(p.mm.rlimits, fld, soft)
            out("ret 0")
        elif op == "capdrop":
            need(1)
            fld = CAP_FIELDS.get(_num(a[0]))
            if fld is not None and hasattr(p.mm.rlimits, fld):
                setattr(p.mm.rlimits, fld, False)
            out("ret 0")
        else:
            raise ScriptError(" ".join(argv))

    # ----------------------------------------------------------------- run
    def _run_lines(
        self, p: Process, lines: Sequence[str], start: int, stop: int, prefix: str, out: list[str]
    ) -> None:
        def emit(line: str) -> None:
            out.append(prefix + line)

        i = start
        while i < stop:
            argv = lines[i].split()
            if not argv or argv[0].startswith("#"):
                i += 1
                continue
            if not p.alive:
                emit("dead")
                i += 1
                continue
            if argv[0] == "fork" and len(argv) == 1:
                end = min(_matching_endchild(lines, i), stop)
                child = p.fork()
                if isinstance(child, int):
                    emit(f"ret {child}")
                else:
                    self._flt[child.pid] = (child.min_flt, child.maj_flt)
                    self._run_lines(child, lines, i + 1, end, prefix + CHILD, out)
                    if child.alive:
                        child.exit(0)
                    # vmops re-takes the parent's fault baseline after the child
                    self._flt[p.pid] = (p.min_flt, p.maj_flt)
                i = end + 1
                continue
            if argv[0] == "endchild":
                emit("bad-op")  # a matching endchild is consumed by its fork
                i += 1
                continue
            try:
                self._op(p, argv, emit)
            except ScriptError:
                emit("bad-op")
            i += 1

    def new_process(self) -> Process:
        """A fresh machine and process, set up like the host's vmops process."""
        self.machine = Machine(arch="x86_64", memory=self.memory, seed=self.seed, root=self.root)
        p = self.machine.spawn(comm="vmops")
        if self.root is not None:
            for _ in range(3):  # fds 0-2, as the host runner has stdin/stdout/stderr
                fd = p.open("/", 0)
                if fd < 0:
                    raise RuntimeError(f"vmsimref: cannot open the sandbox root: {fd}")
        for fld in CAP_FIELDS.values():  # vmops runs as root: every capability it can have
            if hasattr(p.mm.rlimits, fld):
                setattr(p.mm.rlimits, fld, True)
        p.mm.rlimits.memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        return p

    def run(self, script: Sequence[str]) -> list[str]:
        """Output lines of *script* (the host's format, without the base line)."""
        p = self.new_process()
        self._flt = {p.pid: (p.min_flt, p.maj_flt)}
        lines = list(script)
        out: list[str] = []
        self._run_lines(p, lines, 0, len(lines), "", out)
        return out


# --------------------------------------------------------------------------
# Running one script on both sides


@dataclass(frozen=True)
class FileSet:
    """The directory of files a script may use (the same on both sides)."""

    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)


def _write_synced(path: Path, data: bytes) -> None:
    """Write *path* in place (same inode), sync it and drop it from the page cache."""
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _reset_files(d: Path, files: dict[str, bytes], dirs: Sequence[str]) -> None:
    """Make *d* hold exactly *files* and *dirs*, reusing existing inodes."""
    wanted = set(files) | set(dirs)
    for entry in list(d.iterdir()):
        if entry.name not in wanted:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for name in dirs:
        (d / name).mkdir(exist_ok=True)
    for name, data in files.items():
        _write_synced(d / name, data)


SHMEM_LINE = re.compile(r"^(\S+-\S+ \S+ \S+ 00:01 )(\d+)( +)(/dev/zero \(deleted\))$")


def normalize_host_line(line: str, files_dir: Path) -> str:
    """The rewrites applied to host maps/smaps header lines before comparing.

    1. A path inside the file set's directory is shown as the guest sees it
       (``/name``), since vmsim's root is that directory.  The path is the last
       field, after the padding, so this changes nothing else.
    """
    prefix = str(files_dir) + "/"
    body = line[len(CHILD) :] if line.startswith(CHILD) else line
    lead = line[: len(line) - len(body)]
    m = _HEADER.match(body)
    if m and prefix in body:
        idx = body.find(" " + prefix)
        if idx >= 0:
            body = body[: idx + 1] + "/" + body[idx + 1 + len(prefix) :]
    return lead + body


def normalize_shmem_inode(line: str) -> str:
    """Both sides: the inode of a shared-anonymous mapping's hidden file.

    The host's number comes from a machine-wide counter (get_next_ino()) that
    every shmem/tmpfs inode advances, so it differs from run to run.  It is
    replaced by ``<ino>``; the column where the name starts (the kernel's
    padding) is kept as ``@col N`` so the padding is still compared.
    """
    body = line[len(CHILD) :] if line.startswith(CHILD) else line
    lead = line[: len(line) - len(body)]
    m = SHMEM_LINE.match(body)
    if not m:
        return line
    col = len(m[1]) + len(m[2]) + len(m[3])
    return f"{lead}{m[1]}<ino> @col{col} {m[4]}"


def compare_with_host(
    build: Callable[[Script, FileSet], object],
    tmp: Path,
    files: dict[str, bytes] | None = None,
    dirs: Sequence[str] = (),
) -> tuple[HostRun, list[str]]:
    """Run one script on the host and on vmsim; return (host run, vmsim lines).

    The script is built once by ``build(script, FileSet)``.  Both runs use the
    same directory ``tmp/files`` (vmsim's root), so device and inode numbers
    of the files agree; before each run the directory is reset to *files* and
    *dirs*, rewritten in place and dropped from the host's page cache, so both
    start from the same contents with a cold cache.  The host lines come back
    normalised by :func:`normalize_host_line` and both sides by
    :func:`normalize_shmem_inode`; nothing else is changed.
    """
    files = files or {}
    d = tmp / "files"
    d.mkdir(parents=True, exist_ok=True)
    d = d.resolve()
    fs = FileSet(d)
    script = Script()
    build(script, fs)
    _reset_files(d, files, dirs)
    host = run_host(script.lines)
    host_lines = [normalize_shmem_inode(normalize_host_line(ln, d)) for ln in host.lines]
    _reset_files(d, files, dirs)
    runner = VmsimRunner(root=d, path_map=(str(d), "/"))
    sim = [normalize_shmem_inode(ln) for ln in runner.run(script.lines)]
    return HostRun(base=host.base, lines=host_lines), sim
