"""The vmsim side: run a script on a vmsim process, printing exactly what vmops.c prints.

:class:`VmsimRunner` executes the lines of :mod:`vmsim.conform.script` on a
fresh vmsim process through the scripted process API
(:class:`vmsim.kernel.task.Process`) and produces output lines in vmops.c's
format, so a host run and a vmsim run of one script compare with ``==``.

How the vmsim side mirrors the host process
  * Bases: vmsim's process starts empty, so the region can go anywhere; the
    base is :data:`VMSIM_BASE`, 2 MiB aligned with 12 hex digits like the
    host's bases (the kernel's maps padding depends on that width, see
    vmops.c).  The initial program break is :data:`VMSIM_HEAP_BASE`
    (``start_brk`` = ``brk``, as the ELF loader leaves them), also 12 digits.
    Addresses print relative to them, exactly as in vmops.c.
  * File descriptors: the host runner has fds 0-2 open, so the vmsim process
    first opens "/" three times (O_RDONLY) to take fds 0-2 as well; the
    script's first open then returns 3 on both sides.
  * Privilege: vmops runs as root (CAP_IPC_LOCK, CAP_SYS_RAWIO, ...) with the
    caller's RLIMIT_MEMLOCK; the vmsim process gets every capability vmsim
    models (:data:`CAP_FIELDS`, flags in ``mm.rlimits``) and the same memlock
    limit.  ``capdrop`` of one of those and ``setrlimit`` of
    RLIMIT_MEMLOCK/AS/DATA/STACK act on vmsim's ``mm.rlimits``; ``capdrop``
    of any other capability is accepted and does nothing.
  * Signals: vmops catches SIGSEGV/SIGBUS and carries on.  With
    ``catch_signals=True`` (what vmsim.conform uses) the process here does
    the same: an access goes through the same kernel entry as a CPU access
    (translate, then ``do_user_addr_fault`` on a miss) and a fatal outcome is
    printed instead of killing the process - the model of a process whose
    SIGSEGV/SIGBUS handler longjmps out, which the process API (no sigaction
    yet) cannot express.  With ``catch_signals=False`` the process API's
    default action kills the process and every later operation prints
    ``dead`` (a line vmops never prints).
  * Execute probes: ``touch ADDR x`` is an instruction fetch of one byte; the
    host also executes that one instruction, which scripts keep harmless
    (see vmops.c).
  * fork: the child runs its lines up to the matching ``endchild`` (lines
    prefixed ``child: ``) and then exits, before the parent continues - the
    host's order, since its parent waits for the child.  ``exit`` ends the
    current process (a child at once; at the top, the script).
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Callable, Sequence

from vmsim import Machine
from vmsim.arch.paging import Access, translate
from vmsim.conform.script import (
    CHILD,
    HEAP_WINDOW,
    MASK64,
    PAGE,
    REGION_SIZE,
    ScriptError,
    matching_endchild,
    parse_num,
    words,
)
from vmsim.kernel.task import Process, SigInfo
from vmsim.mm.fault import do_user_addr_fault

VMSIM_BASE = 0x7F12_3440_0000
VMSIM_HEAP_BASE = 0x5555_5556_0000

SEGV_CODES = {1: "MAPERR", 2: "ACCERR", 3: "BNDERR", 4: "PKUERR"}
BUS_CODES = {1: "ADRALN", 2: "ADRERR", 3: "OBJERR", 4: "MCEERR_AR", 5: "MCEERR_AO"}
#: Capabilities vmsim models, as attributes of ``mm.rlimits`` (capability number -> name).
CAP_FIELDS = {14: "cap_ipc_lock", 17: "cap_sys_rawio"}  # CAP_IPC_LOCK, CAP_SYS_RAWIO
RLIMIT_FIELDS = {2: "data", 3: "stack", 8: "memlock", 9: "as_"}  # RLIMIT_DATA/STACK/MEMLOCK/AS
SI_KERNEL = 0x80
VM_FAULT_OOM = 0x1

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)( .*)$")
_num = parse_num  # the name the comparison tests know


def _s32(v: int) -> int:
    """The low 32 bits as a signed int (the kernel's `int fd`)."""
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


def _s64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


class _Exit(Exception):
    """``exit`` ran: unwind to the process's fork (or end the script)."""


class VmsimRunner:
    """Executes script lines on one vmsim machine (a fresh one per :meth:`run`)."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        path_map: tuple[str, str] | None = None,
        base: int = VMSIM_BASE,
        memory: str = "256M",
        seed: int = 1,
        catch_signals: bool = False,
        soft_dirty: bool | None = None,
        heap_base: int = VMSIM_HEAP_BASE,
    ) -> None:
        """*root* is the machine's sandbox; *path_map* ``(host_prefix, guest_prefix)``
        turns the host paths of a script into guest paths; *soft_dirty* sets the
        machine's ``mem_soft_dirty`` sysctl (None keeps vmsim's default)."""
        self.root = root
        self.path_map = path_map
        self.base = base
        self.heap = heap_base
        self.memory = memory
        self.seed = seed
        self.catch_signals = catch_signals
        self.soft_dirty = soft_dirty
        self.machine: Machine | None = None
        self._flt: dict[int, tuple[int, int]] = {}

    # ------------------------------------------------------------- helpers
    def _addr(self, tok: str, any_heap: bool = False) -> int:
        if tok == "-":
            return 0
        if tok.startswith("="):
            return parse_num(tok[1:])
        if tok.startswith("h"):
            off = parse_num(tok[1:])
            if not any_heap and off >= HEAP_WINDOW:
                raise ScriptError(tok)
            return (self.heap + off) & MASK64
        return (self.base + parse_num(tok)) & MASK64

    def _in_region(self, a: int) -> bool:
        return self.base <= a < self.base + REGION_SIZE

    def _in_heap(self, a: int) -> bool:
        return self.heap <= a < self.heap + HEAP_WINDOW

    def _fmt_addr(self, a: int) -> str:
        if self._in_region(a):
            return f"+{a - self.base:#x}"
        if self._in_heap(a):
            return f"h+{a - self.heap:#x}"
        return f"={a:#x}"

    def _addr_ret(self, r: int) -> str:
        if r < 0:
            return f"ret {r}"
        if self._in_region(r):
            return f"ret +{r - self.base:#x}"
        if self._in_heap(r):
            return f"ret h+{r - self.heap:#x}"
        return "ret out"

    def _window(self, s: int, e: int) -> tuple[int, int, str] | None:
        """(window start, window end, tag) of the window a VMA [s, e) intersects."""
        if s < self.base + REGION_SIZE and e > self.base:
            return self.base, self.base + REGION_SIZE, ""
        if s < self.heap + HEAP_WINDOW and e > self.heap:
            return self.heap, self.heap + HEAP_WINDOW, "h"
        return None

    @staticmethod
    def _rel(a: int, origin: int, tag: str) -> str:
        return f"{tag}{a - origin:08x}" if a >= origin else f"{tag}-{origin - a:08x}"

    def _guest_path(self, path: str) -> str:
        if self.path_map is not None:
            host, guest = self.path_map
            if path == host or path.startswith(host.rstrip("/") + "/"):
                rest = path[len(host.rstrip("/")) :].lstrip("/")
                return guest.rstrip("/") + "/" + rest
        return path

    def _sig_line(self, si: SigInfo | None) -> str:
        if si is None:
            return "sig ? 0 =0x0"
        codes = SEGV_CODES if si.signo == 11 else BUS_CODES if si.signo == 7 else {}
        code = codes.get(si.code, str(si.code))
        return f"sig {si.name} {code} {self._fmt_addr(si.addr)}"

    def _vma_dump(self, p: Process, name: str, with_pagemap: bool) -> list[str]:
        """The window VMAs' lines of /proc/PID/<name>, headers relative (vmops' dump_vmas)."""
        assert self.machine is not None
        text = self.machine.procfs.read(p.pid, name)
        out: list[str] = []
        keep: tuple[int, int, tuple[int, int, str]] | None = None
        for line in text.splitlines():
            m = _HEADER.match(line)
            if m:
                if keep is not None and with_pagemap:
                    out.append(self._pagemap_line(p, *keep))
                s, e = int(m[1], 16), int(m[2], 16)
                win = self._window(s, e)
                keep = None if win is None else (s, e, win)
                if win is not None:
                    origin, _, tag = win
                    out.append(f"{self._rel(s, origin, tag)}-{self._rel(e, origin, tag)}{m[3]}")
            elif keep is not None:
                out.append(line)
        if keep is not None and with_pagemap:
            out.append(self._pagemap_line(p, *keep))
        return out

    def _pagemap_line(self, p: Process, s: int, e: int, win: tuple[int, int, str]) -> str:
        """``pagemap V*N ...``: run-length encoded flag values of the VMA's pages in its window."""
        assert self.machine is not None
        lo, hi = max(s, win[0]), min(e, win[1])
        raw = self.machine.procfs.pagemap(p.pid, lo, (hi - lo) // PAGE)
        runs: list[list[int]] = []
        for i in range(0, len(raw), 8):
            v = int.from_bytes(raw[i : i + 8], "little") >> 55
            if runs and runs[-1][0] == v:
                runs[-1][1] += 1
            else:
                runs.append([v, 1])
        return " ".join(["pagemap", *(f"{v:#x}*{n}" for v, n in runs)])

    def _faults_line(self, p: Process) -> str:
        mn, mj = p.min_flt, p.maj_flt
        line = f"faults {mn - self._flt[p.pid][0]} {mj - self._flt[p.pid][1]}"
        self._flt[p.pid] = (mn, mj)
        return line

    # ----------------------------------------------------- user accesses
    def _user_copy(self, p: Process, addr: int, n: int, access: int,
                   data: bytes | None) -> bytes | SigInfo:
        """A user access that a signal handler survives: bytes read (or b"") or the siginfo.

        The same path as ``Process.load/store/fetch`` (canonical check, page
        walk, ``do_user_addr_fault`` and retry), but a fatal outcome is
        returned rather than killing the process.  An out-of-memory fault
        still kills it (SIGKILL cannot be caught).
        """
        mm = p._enter()  # become `current`, so faults are charged to this task
        kmem = p.machine.kmem
        mode = kmem.mode
        out = bytearray()
        pos = addr & MASK64
        end = pos + n
        while pos < end:
            if not mode.canonical(pos):
                return SigInfo(11, SI_KERNEL, 0)
            chunk = min(PAGE - (pos & (PAGE - 1)), end - pos)
            for _ in range(4):
                phys, err = translate(mode, kmem.phys, mm.pgd, pos, access)
                if phys >= 0:
                    break
                outcome = do_user_addr_fault(mm, pos, access, err)
                if not outcome.ok:
                    if int(outcome.result) & VM_FAULT_OOM:
                        p.machine.do_exit(p, kill_signal=9)
                    return SigInfo(outcome.signo, outcome.si_code, outcome.addr)
            else:
                raise AssertionError(f"fault at {pos:#x} resolved but the access still fails")
            if data is None:
                out += kmem.phys.read(phys, chunk)
            else:
                kmem.phys.write(phys, data[pos - addr : pos - addr + chunk])
            pos += chunk
        return bytes(out)

    def _access(self, p: Process, addr: int, n: int, mode: str,
                data: bytes | None = None) -> bytes | str:
        """Do one access; the bytes read, or the ``sig ...`` line of a fatal fault."""
        access = {"r": int(Access.READ), "w": int(Access.WRITE), "x": int(Access.EXEC)}[mode]
        if self.catch_signals:
            got = self._user_copy(p, addr, n, access, data)
            return self._sig_line(got) if isinstance(got, SigInfo) else got
        if mode == "r":
            res = p.load(addr, n)
        elif mode == "x":
            res = p.fetch(addr, n)
        else:
            res = b"" if p.store(addr, data or b"") else None
        return self._sig_line(p.siginfo) if res is None else res

    # ----------------------------------------------------------- operations
    def _op(self, p: Process, argv: list[str], out: Callable[[str], None]) -> None:
        op, a = argv[0], argv[1:]

        def need(n: int) -> None:
            if len(a) != n:
                raise ScriptError(" ".join(argv))

        if op == "mmap":
            need(6)
            r = p.mmap(self._addr(a[0]), parse_num(a[1]), parse_num(a[2]), parse_num(a[3]),
                       _s32(parse_num(a[4])), parse_num(a[5]))
            out(self._addr_ret(r))
        elif op == "munmap":
            need(2)
            out(f"ret {p.munmap(self._addr(a[0]), parse_num(a[1]))}")
        elif op == "mprotect":
            need(3)
            out(f"ret {p.mprotect(self._addr(a[0]), parse_num(a[1]), parse_num(a[2]))}")
        elif op == "mremap":
            need(5)
            r = p.mremap(self._addr(a[0]), parse_num(a[1]), parse_num(a[2]), parse_num(a[3]),
                         self._addr(a[4]))
            out(self._addr_ret(r))
        elif op == "brk":
            need(1)
            out(self._addr_ret(p.brk(self._addr(a[0], any_heap=True))))
        elif op == "madvise":
            need(3)
            out(f"ret {p.madvise(self._addr(a[0]), parse_num(a[1]), _s32(parse_num(a[2])))}")
        elif op == "mlock":
            need(2)
            out(f"ret {p.mlock(self._addr(a[0]), parse_num(a[1]))}")
        elif op == "mlock2":
            need(3)
            out(f"ret {p.mlock2(self._addr(a[0]), parse_num(a[1]), parse_num(a[2]))}")
        elif op == "munlock":
            need(2)
            out(f"ret {p.munlock(self._addr(a[0]), parse_num(a[1]))}")
        elif op == "mlockall":
            need(1)
            out(f"ret {p.mlockall(parse_num(a[0]))}")
        elif op == "munlockall":
            need(0)
            out(f"ret {p.munlockall()}")
        elif op == "msync":
            need(3)
            out(f"ret {p.msync(self._addr(a[0]), parse_num(a[1]), parse_num(a[2]))}")
        elif op == "mincore":
            need(2)
            r = p.mincore(self._addr(a[0]), parse_num(a[1]))
            if isinstance(r, int):
                out(f"ret {r}")
            else:
                vec = "".join(str(b & 1) for b in r)
                out("ret 0" + (" " + vec if vec else ""))
        elif op == "touch":
            need(2)
            if a[1] not in ("r", "w", "x"):
                raise ScriptError(" ".join(argv))
            addr = self._addr(a[0])
            got = self._access(p, addr, 1, a[1], b"\x5a" if a[1] == "w" else None)
            out(got if isinstance(got, str) else "ok")
        elif op == "write_at":
            need(2)
            try:
                data = bytes.fromhex(a[1])
            except ValueError as exc:
                raise ScriptError(" ".join(argv)) from exc
            got = self._access(p, self._addr(a[0]), len(data), "w", data)
            out(got if isinstance(got, str) else "ok")
        elif op == "read_at":
            need(2)
            got = self._access(p, self._addr(a[0]), parse_num(a[1]), "r")
            out(got if isinstance(got, str) else "data" + (" " + got.hex() if got else ""))
        elif op == "open":
            need(2)
            out(f"ret {p.open(self._guest_path(a[0]), _s32(parse_num(a[1])), 0o644)}")
        elif op == "close":
            need(1)
            out(f"ret {p.close(_s32(parse_num(a[0])))}")
        elif op == "ftruncate":
            need(2)
            out(f"ret {p.ftruncate(_s32(parse_num(a[0])), _s64(parse_num(a[1])))}")
        elif op == "pwrite":
            need(3)
            try:
                data = bytes.fromhex(a[2])
            except ValueError as exc:
                raise ScriptError(" ".join(argv)) from exc
            out(f"ret {p.pwrite(_s32(parse_num(a[0])), data, _s64(parse_num(a[1])))}")
        elif op == "pread":
            need(3)
            got = p.pread(_s32(parse_num(a[0])), parse_num(a[2]), _s64(parse_num(a[1])))
            if isinstance(got, int):
                out(f"ret {got}")
            else:
                out("data" + (" " + got.hex() if got else ""))
        elif op in ("maps", "smaps"):
            need(0)
            for line in self._vma_dump(p, op, with_pagemap=False):
                out(line)
            out("end")
        elif op == "snap":
            need(0)
            out("snap")
            for line in self._vma_dump(p, "smaps", with_pagemap=True):
                out(line)
            out(self._faults_line(p))
            out("end")
        elif op == "mark":
            need(1)
            out(f"mark {a[0]}")
        elif op == "pagemap":
            need(2)
            assert self.machine is not None
            raw = self.machine.procfs.pagemap(p.pid, self._addr(a[0]), parse_num(a[1]))
            vals = [int.from_bytes(raw[i : i + 8], "little") >> 55 for i in range(0, len(raw), 8)]
            out(" ".join(["pagemap", *(f"{w:#x}" for w in vals)]))
        elif op == "faults":
            need(0)
            out(self._faults_line(p))
        elif op == "setrlimit":
            need(3)
            res, soft = parse_num(a[0]), parse_num(a[1])
            fld = RLIMIT_FIELDS.get(res)
            if fld is None:
                raise ScriptError(f"vmsim_side: no vmsim model of rlimit {res}")
            setattr(p.mm.rlimits, fld, soft)
            out("ret 0")
        elif op == "capdrop":
            need(1)
            fld = CAP_FIELDS.get(parse_num(a[0]))
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
            argv = words(lines[i])
            if not argv or argv[0].startswith("#"):
                i += 1
                continue
            if not p.alive:
                emit("dead")
                i += 1
                continue
            if argv[0] == "fork" and len(argv) == 1:
                end = min(matching_endchild(lines, i), stop)
                child = p.fork()
                if isinstance(child, int):
                    emit(f"ret {child}")
                else:
                    self._flt[child.pid] = (child.min_flt, child.maj_flt)
                    try:
                        self._run_lines(child, lines, i + 1, end, prefix + CHILD, out)
                    except _Exit:
                        pass
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
            if argv[0] == "exit" and len(argv) == 1:
                raise _Exit
            try:
                self._op(p, argv, emit)
            except ScriptError:
                emit("bad-op")
            i += 1

    def new_process(self) -> Process:
        """A fresh machine and process, set up like the host's vmops process."""
        self.machine = Machine(arch="x86_64", memory=self.memory, seed=self.seed, root=self.root)
        if self.soft_dirty is not None:
            self.machine.kmem.sysctl.mem_soft_dirty = self.soft_dirty
        p = self.machine.spawn(comm="vmops")
        if self.root is not None:
            for _ in range(3):  # fds 0-2, as the host runner has stdin/stdout/stderr
                fd = p.open("/", 0)
                if fd < 0:
                    raise RuntimeError(f"vmsim_side: cannot open the sandbox root: {fd}")
        for fld in CAP_FIELDS.values():  # vmops runs as root: every capability it can have
            if hasattr(p.mm.rlimits, fld):
                setattr(p.mm.rlimits, fld, True)
        p.mm.rlimits.memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        # what the ELF loader leaves for an empty heap (load_elf_binary: start_brk = brk)
        p.mm.start_brk = p.mm.brk = self.heap
        return p

    def run(self, script: Sequence[str]) -> list[str]:
        """Output lines of *script* (the host's format, without the base line)."""
        p = self.new_process()
        self._flt = {p.pid: (p.min_flt, p.maj_flt)}
        lines = list(script)
        out: list[str] = []
        try:
            self._run_lines(p, lines, 0, len(lines), "", out)
        except _Exit:
            pass
        return out
