"""Random multi-process workloads checked against a reference model of Linux memory semantics.

A hypothesis ``RuleBasedStateMachine`` drives several processes of one
`Machine` through mmap/munmap/mprotect/mremap/brk/madvise/mlock*/msync/
mincore, loads, stores and instruction fetches, pwrite/ftruncate on a few
small files, fork and exit. After every step it runs ``Machine.check()``
and compares vmsim with an independent, page-granular model of Linux
(`ProcModel`, `PageModel`, `FileModel`, `ShmModel`):

* which pages each process has mapped, with what rights and backing
  (private/shared anonymous, private/shared file + file page index) and
  which VM flags (locked, onfault, dontfork, wipeonfork, growsdown);
* the bytes every page holds: private pages as copies (fork copies them,
  so parent and child diverge), shared anonymous memory and file pages as
  objects every mapping shares, private file pages seeing the file until
  their first write (or a populate that breaks COW), MADV_DONTNEED,
  WIPEONFORK, mremap moves and truncation as Linux defines them;
* the return value of every call, and the fate of every access:
  SIGSEGV/SEGV_MAPERR outside any VMA (after stack growth is considered),
  SIGSEGV/SEGV_ACCERR against the rights, SIGBUS/BUS_ADRERR past EOF.

Where Linux leaves bytes unspecified (bytes a shared mapping stores past
EOF, pages after MADV_FREE, tmpfs after MADV_REMOVE) the model marks them
unknown and asserts nothing about them. VMA boundaries are vmsim's own
business (merging is an optimisation), but every vmsim VMA must be uniform
in model terms and the VMAs must cover exactly the model's pages; the few
decisions that depend on a VMA boundary (mremap's "within one VMA", the VMA
a DONTUNMAP unlocks) read it from vmsim after that uniformity is checked.

Hypothesis sees a single rule, ``step(op, a, b)``, whose packed integers
are decoded into an operation and its arguments (that keeps a 500-step
example well inside hypothesis' choice budget; its own rule selection
costs several times more per step). Every executed call is recorded with
``note()`` as a line of Python, so a failing example prints a script that
replays with the `make_root` and `spawn` helpers below. Bugs found this
way get a small plain regression test at the end of this file.

Profiles: CI by default (100 examples of exactly 500 steps, derandomized,
no shrinking: about a minute); ``VMSIM_HYPOTHESIS_PROFILE=long`` for a
random soak run that shrinks what it finds (``VMSIM_SM_MIN_STEPS=0`` lets
it shorten the example too); ``VMSIM_HYPOTHESIS_EXAMPLES`` overrides the
example count of either.
"""

from __future__ import annotations

import gc
import inspect
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from vmsim import Machine
from vmsim.kernel.task import Process
from vmsim.mm import filemap
from vmsim.mm import mman as m
from vmsim.mm.filemap import Inode
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pte_offset
from vmsim.mm.vma import (
    VM_DONTCOPY,
    VM_GROWSDOWN,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_SHARED,
    VM_WIPEONFORK,
    Vma,
)

PS = 4096
WIN = 0x7F00_0000_0000  # the window MAP_FIXED mappings collide in
WIN_PAGES = 40
STACK_WIN = 0x7E00_0000_0000  # MAP_FIXED|MAP_GROWSDOWN mappings go here, clear of guard gaps
MAX_PROCS = 5
MEMORY = "32M"
O_RDONLY, O_RDWR = 0, 2
SIGBUS, SIGSEGV = 7, 11
SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR = 1, 2, 2
R, W, X = m.PROT_READ, m.PROT_WRITE, m.PROT_EXEC
ANON, SHM, FILE = 0, 1, 2
STACK_LIMIT = 8 << 20

#: name -> initial size of the files in the machine's root (one ends mid-page)
FILE_SIZES = {"a.bin": 3 * PS, "b.bin": 2 * PS + 1000, "c.bin": 5 * PS}
FILE_NAMES = list(FILE_SIZES)

#: RLIMIT_MEMLOCK set-ups a process can have: (CAP_IPC_LOCK, limit in bytes)
LIMITS = [(True, 8 << 20), (False, 1 << 30), (False, 6 * PS), (False, 0), (False, 8 << 20)]

#: lengths in pages for ranged calls, and protections (read-write weighted up)
NTAB = [0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 8, 10, 13, 16]
PROTS = [3, 3, 3, 3, 1, 1, 7, 7, 0, 0, 5, 2, 4, 6, 3, 1]

#: lengths for accesses and pwrite payloads
LENGTHS = [1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 100, 255, 600, 4096, 5000]

MADVICES = [
    m.MADV_DONTNEED, m.MADV_FREE, m.MADV_WILLNEED, m.MADV_DONTFORK, m.MADV_DOFORK,
    m.MADV_WIPEONFORK, m.MADV_KEEPONFORK, m.MADV_POPULATE_READ, m.MADV_POPULATE_WRITE,
    m.MADV_REMOVE, m.MADV_DONTNEED_LOCKED, m.MADV_COLD, m.MADV_PAGEOUT, m.MADV_RANDOM,
    m.MADV_NORMAL, m.MADV_DONTNEED,
]
MLOCKALL_FLAGS = [
    m.MCL_CURRENT, m.MCL_FUTURE, m.MCL_CURRENT | m.MCL_FUTURE, m.MCL_CURRENT | m.MCL_ONFAULT,
    m.MCL_FUTURE | m.MCL_ONFAULT, m.MCL_CURRENT | m.MCL_FUTURE | m.MCL_ONFAULT, 0, m.MCL_ONFAULT,
]
MSYNC_FLAGS = [m.MS_SYNC, m.MS_ASYNC, m.MS_INVALIDATE, m.MS_SYNC | m.MS_INVALIDATE,
               m.MS_ASYNC | m.MS_INVALIDATE, 0]


#: the operations `step` picks from (repeats weight them); swarm testing drops some kinds
OPS = ["mmap", "mmap", "mmap", "munmap", "mprotect", "mprotect", "mremap", "mremap", "brk",
       "madvise", "madvise", "mlock", "mlockall", "msync", "mincore", "store", "store", "store",
       "load", "load", "fetch", "pwrite", "ftruncate", "drop_caches", "fork", "exit", "spawn",
       "memlock"]
SWARM_OPS = ["munmap", "mprotect", "mremap", "brk", "madvise", "mlock", "mlockall", "msync",
             "mincore", "fetch", "pwrite", "ftruncate", "drop_caches", "fork", "exit", "memlock"]


def payload(seed: int, n: int) -> bytes:
    """The deterministic bytes a store or pwrite writes (never all zero)."""
    data = bytearray(random.Random(seed).randbytes(n))
    data[0] |= 1
    return bytes(data)


def zigzag(v: int) -> int:
    """0, 1, -1, 2, -2, ...: small selectors shrink towards 0."""
    return (v + 1) // 2 if v & 1 else -(v // 2)


# ------------------------------------------------------------------ model of page contents
class Buf:
    """One page of modelled bytes; `known` is None when every byte is known, else a 0/1 mask."""

    __slots__ = ("data", "known")

    def __init__(self, data: bytearray | None = None, known: bytearray | None = None) -> None:
        self.data = bytearray(PS) if data is None else data
        self.known = known

    def copy(self) -> Buf:
        return Buf(bytearray(self.data), None if self.known is None else bytearray(self.known))

    def write(self, off: int, chunk: bytes) -> None:
        self.data[off:off + len(chunk)] = chunk
        if self.known is not None:
            self.known[off:off + len(chunk)] = b"\x01" * len(chunk)

    def forget(self, lo: int, hi: int) -> None:
        """Bytes [lo, hi) become unspecified."""
        if hi <= lo:
            return
        if self.known is None:
            self.known = bytearray(b"\x01" * PS)
        self.known[lo:hi] = bytes(hi - lo)

    def zero(self, lo: int, hi: int) -> None:
        self.write(lo, bytes(hi - lo))

    def slice(self, lo: int, hi: int) -> tuple[bytes, bytes | None]:
        return bytes(self.data[lo:hi]), None if self.known is None else bytes(self.known[lo:hi])


ZERO = Buf()  # shared, never written


def first_diff(expected: bytes, known: bytes | None, actual: bytes) -> int | None:
    """Offset of the first known byte where `actual` differs, or None."""
    if expected == actual:
        return None
    bad = np.frombuffer(expected, np.uint8) != np.frombuffer(actual, np.uint8)
    if known is not None:
        bad &= np.frombuffer(known, np.uint8) != 0
    idx = np.flatnonzero(bad)
    return None if idx.size == 0 else int(idx[0])


class FileModel:
    """A regular file: its size and what its page-cache pages hold (past EOF included)."""

    def __init__(self, name: str, inode: Inode, content: bytes) -> None:
        self.name = name
        self.inode = inode
        self.pages: dict[int, Buf] = {}
        self.size = 0
        self.pwrite(0, content)

    @property
    def npages(self) -> int:
        return (self.size + PS - 1) // PS

    def page(self, index: int) -> Buf:
        return self.pages.get(index, ZERO)

    def _page_w(self, index: int) -> Buf:
        buf = self.pages.get(index)
        if buf is None:
            buf = self.pages[index] = Buf()
        return buf

    def pwrite(self, off: int, data: bytes) -> None:
        pos = off
        while pos < off + len(data):
            index, lo = divmod(pos, PS)
            n = min(PS - lo, off + len(data) - pos)
            self._page_w(index).write(lo, data[pos - off:pos - off + n])
            pos += n
        self.size = max(self.size, off + len(data))

    def map_store(self, index: int, lo: int, chunk: bytes) -> None:
        """A store through a shared mapping: bytes past EOF are in the page but unspecified."""
        buf = self._page_w(index)
        buf.write(lo, chunk)
        eof = self.size - index * PS
        buf.forget(max(lo, eof), lo + len(chunk))

    def truncate(self, size: int) -> None:
        if size < self.size:
            first = (size + PS - 1) // PS
            for index in [i for i in self.pages if i >= first]:
                del self.pages[index]
            if size % PS and size // PS in self.pages:
                self.pages[size // PS].zero(size % PS, PS)
        self.size = size

    def expected(self, off: int, n: int) -> tuple[bytes, bytes | None]:
        data, known = bytearray(), bytearray()
        any_unknown = False
        pos = off
        while pos < off + n:
            index, lo = divmod(pos, PS)
            hi = min(PS, lo + off + n - pos)
            d, k = self.page(index).slice(lo, hi)
            data += d
            known += k if k is not None else b"\x01" * len(d)
            any_unknown |= k is not None
            pos += hi - lo
        return bytes(data), bytes(known) if any_unknown else None


class ShmModel:
    """The tmpfs object behind a MAP_SHARED|MAP_ANONYMOUS mapping (its size fixed at mmap)."""

    def __init__(self, npages: int) -> None:
        self.npages = npages
        self.inode: Inode | None = None
        self.pages: dict[int, Buf] = {}

    def page(self, index: int) -> Buf:
        return self.pages.get(index, ZERO)

    def page_w(self, index: int) -> Buf:
        buf = self.pages.get(index)
        if buf is None:
            buf = self.pages[index] = Buf()
        return buf


@dataclass(slots=True)
class PageModel:
    """One mapped page of one process."""

    kind: int  # ANON / SHM / FILE
    prot: int
    shared: bool  # MAP_SHARED (VM_MAYSHARE)
    maywrite: bool  # VM_MAYWRITE (false only for MAP_SHARED of a read-only fd)
    obj: FileModel | ShmModel | None
    index: int  # page index in obj
    priv: Buf | None = None  # private content: anonymous page or COW copy of a file page
    lazy: bool = False  # MADV_FREE'd: the kernel may have dropped it
    locked: bool = False
    onfault: bool = False
    dontfork: bool = False
    wipe: bool = False
    growsdown: bool = False

    def clone(self) -> PageModel:
        new = PageModel(self.kind, self.prot, self.shared, self.maywrite, self.obj, self.index,
                        self.priv, self.lazy, self.locked, self.onfault, self.dontfork,
                        self.wipe, self.growsdown)
        if new.priv is not None:
            new.priv = new.priv.copy()
        return new

    def fresh(self, index: int) -> PageModel:
        """A page the same VMA gains (stack growth, mremap growth): nothing private yet."""
        new = self.clone()
        new.priv, new.lazy, new.index = None, False, index
        return new

    def view(self) -> Buf:
        if self.priv is not None:
            return self.priv
        if self.kind == ANON:
            return ZERO
        assert self.obj is not None
        return self.obj.page(self.index)

    def beyond_eof(self) -> bool:
        """Would touching it raise SIGBUS (file page past EOF / past the tmpfs object)?"""
        return self.kind != ANON and self.priv is None and self.index >= self.obj.npages  # type: ignore[union-attr]

    def cow(self) -> None:
        """Break COW as a write fault would, without changing any byte."""
        if self.kind == FILE and not self.shared and self.priv is None:
            assert isinstance(self.obj, FileModel)
            self.priv = self.obj.page(self.index).copy()

    def store(self, lo: int, chunk: bytes) -> None:
        if self.kind == ANON:
            if self.priv is None:
                self.priv = Buf()
            self.priv.write(lo, chunk)
            self.lazy = False
        elif self.shared:
            if self.kind == FILE:
                self.obj.map_store(self.index, lo, chunk)  # type: ignore[union-attr]
            else:
                self.obj.page_w(self.index).write(lo, chunk)  # type: ignore[union-attr]
        else:
            self.cow()
            assert self.priv is not None
            self.priv.write(lo, chunk)


def can_access(prot: int, acc: str) -> bool:
    if acc == "w":
        return bool(prot & W)
    if acc == "x":
        return bool(prot & X)
    return prot != 0


@dataclass
class ProcModel:
    proc: Process
    pages: dict[int, PageModel]
    cap: bool
    memlock: int
    future: bool = False  # mlockall(MCL_FUTURE)
    future_onfault: bool = False
    locked_vm: int = 0  # the kernel's counter (VmLck), in pages
    start_brk: int = 0
    brk: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def name(self) -> str:
        return f"P[{self.proc.pid}]"

    def limit_pages(self) -> int:
        return self.memlock >> 12

    def mlock_future_ok(self, locked: bool, npages: int) -> bool:
        return not locked or self.cap or npages + self.locked_vm <= self.limit_pages()

    def mapped(self, start: int, end: int) -> list[int]:
        return [a for a in range(start, end, PS) if a in self.pages]

    def unmap(self, start: int, end: int) -> None:
        for a in range(start, end, PS):
            pg = self.pages.pop(a, None)
            if pg is not None and pg.locked:
                self.locked_vm -= 1


# ------------------------------------------------------------------ helpers for reproducers
def make_root(tmp: str) -> None:
    for i, (name, size) in enumerate(FILE_SIZES.items()):
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(payload(1000 + i, size))


def spawn(machine: Machine, limit: int = 0, heap: int | None = None) -> Process:
    """A process with every file open (fds 0..2 read-write, fd 3 = file 0 read-only)."""
    p = machine.spawn()
    cap, memlock = LIMITS[limit]
    p.mm.rlimits.cap_ipc_lock = cap
    p.mm.rlimits.memlock = memlock
    for name in FILE_NAMES:
        assert p.open(name, O_RDWR) >= 0
    assert p.open(FILE_NAMES[0], O_RDONLY) == len(FILE_NAMES)
    if heap is not None:
        p.mm.start_brk = p.mm.brk = heap
    return p


# ------------------------------------------------------------------ the state machine

class VmStateMachine(RuleBasedStateMachine):
    """Processes on one Machine against the reference model; see the module docstring."""

    # ---------------------------------------------------------------- set-up
    @initialize(swarm=st.integers(0, (1 << len(SWARM_OPS)) - 1))
    def setup(self, swarm: int) -> None:
        self.root = tempfile.mkdtemp(prefix="vmsim-sm-")
        make_root(self.root)
        self.machine = Machine(memory=MEMORY, seed=7, root=self.root)
        self.gap = self.machine.kmem.sysctl.stack_guard_gap
        self.procs: list[ProcModel] = []
        self.files: list[FileModel] = []
        self.steps = 0
        # swarm testing: each example leaves out some kinds of operation
        off = {name for i, name in enumerate(SWARM_OPS) if swarm >> i & 1}
        self.ops = [name for name in OPS if name not in off] or list(OPS)
        note(f"# operations this example leaves out: {sorted(off)}")
        note(f"m = Machine(memory={MEMORY!r}, seed=7, root=ROOT)  # ROOT = make_root({self.root!r})")
        p = self._spawn(0, None)
        for i, name in enumerate(FILE_NAMES):
            inode = p.proc.files[i].inode
            self.files.append(FileModel(name, inode, payload(1000 + i, FILE_SIZES[name])))

    def teardown(self) -> None:
        shutil.rmtree(getattr(self, "root", ""), ignore_errors=True)
        # a Machine and its processes form reference cycles around a RAM array: free it now
        self.__dict__.clear()
        gc.collect()

    def _spawn(self, limit: int, heap: int | None) -> ProcModel:
        proc = spawn(self.machine, limit, heap)
        cap, memlock = LIMITS[limit]
        pm = ProcModel(proc, {}, cap, memlock, start_brk=heap or 0, brk=heap or 0)
        self.procs.append(pm)
        note(f"{pm.name} = spawn(m, {limit}, {heap if heap is None else hex(heap)})")
        return pm

    # ---------------------------------------------------------------- selectors
    def _proc(self, sel: int) -> ProcModel:
        return self.procs[sel % len(self.procs)]

    def _mapped_proc(self, sel: int) -> ProcModel:
        """A process, preferring those that have something mapped."""
        busy = [pm for pm in self.procs if pm.pages] or self.procs
        return busy[sel % len(busy)]

    def _addr(self, a: int) -> tuple[ProcModel, int]:
        """Decode an address selector: a process and a page in or around its mappings.

        a = proc (3 bits) | mode (2) | k (7) | r (4): mode 0 is a page of the
        collision window (half the time), the others mostly a mapped page
        (mode 3: of the heap) and sometimes a page or three next to it.
        """
        pm = self._mapped_proc(a & 7)
        mode, k, r = (a >> 3) & 3, (a >> 5) & 0x7F, (a >> 12) & 0xF
        pages = sorted(pm.pages)
        if (mode == 0 and r & 1) or not pages:
            return pm, WIN + (k % WIN_PAGES) * PS
        base = pages[k % len(pages)]
        if mode == 3 and pm.start_brk and k & 1:
            base = ((pm.start_brk + PS - 1) & ~(PS - 1)) + ((k >> 1) % 24 - 4) * PS
        elif mode == 3:
            stacks = [x for x in pages if pm.pages[x].growsdown]
            base = stacks[k % len(stacks)] if stacks else base
        delta = 0 if r < 11 else zigzag(r - 10)
        top = pm.pages.get(base)
        if r >= 8 and top is not None and top.growsdown:  # just below a stack: make it grow
            while base - PS in pm.pages:
                base -= PS
            delta = 7 - r
        return pm, max(base + delta * PS, PS)

    def _range(self, a: int, n: int) -> tuple[ProcModel, int, int]:
        """Decode a range selector: a process, a start page and a length in pages.

        Mode 0: n pages in the collision window (half the time); 1: a whole run
        of mapped pages (give or take a page); 2: up to n pages from a mapped
        page; 3: up to n pages from the start of a run, or n from near it.
        """
        pm = self._mapped_proc(a & 7)
        mode, k, r = (a >> 3) & 3, (a >> 5) & 0x7F, (a >> 12) & 0xF
        pages = sorted(pm.pages)
        if (mode == 0 and r & 1) or not pages:
            return pm, WIN + (k % WIN_PAGES) * PS, n
        base = pages[k % len(pages)]
        start, end = base, base + PS
        while start - PS in pm.pages:
            start -= PS
        while end in pm.pages:
            end += PS
        if mode == 1:
            return pm, start, (end - start) // PS + (1 if r == 15 else 0)
        if mode == 2:  # from a mapped page, mostly staying inside its run
            return pm, base, n if r >= 12 else min(n, (end - base) // PS)
        if r < 8:
            return pm, start, min(n, (end - start) // PS)
        return pm, max(start + zigzag(r & 7) * PS, PS), n

    def _call(self, pm: ProcModel, text: str, ret: object) -> None:
        shown = hex(ret) if isinstance(ret, int) and ret > 4096 else repr(ret)
        note(f"{pm.name}.{text}  # -> {shown}")

    def _vma(self, pm: ProcModel, addr: int) -> Vma:
        vma = pm.proc.mm.mm_rb.find_vma(addr)
        assert vma is not None and vma.vm_start <= addr, f"{pm.name}: no VMA at {addr:#x}"
        return vma

    def _drop_dead(self) -> None:
        self.procs = [pm for pm in self.procs if pm.proc.alive]

    # ---------------------------------------------------------------- shared model pieces
    def _stack_grow(self, pm: ProcModel, page: int) -> PageModel | None:
        """expand_downwards() for an access at unmapped `page`: the new page, or None (SIGSEGV)."""
        above = [a for a in pm.pages if a > page]
        if not above:
            return None
        nxt = min(above)
        top = pm.pages[nxt]
        if not top.growsdown:
            return None
        below = [a for a in pm.pages if a < page]
        if below:
            prev = pm.pages[max(below)]
            if not prev.growsdown and prev.prot and page - (max(below) + PS) < self.gap:
                return None
        grow = (nxt - page) // PS
        if self._vma(pm, nxt).vm_end - page > STACK_LIMIT:
            return None
        if top.locked and not pm.cap and (pm.locked_vm + grow) * PS > pm.memlock:
            return None
        for a in range(page, nxt, PS):
            pm.pages[a] = top.fresh(top.index)
        if top.locked:
            pm.locked_vm += grow
        return pm.pages[page]

    def _populate(self, pm: ProcModel, start: int, end: int, ignore_errors: bool) -> bool:
        """__mm_populate(): fault every page in as GUP would; True if it stopped at an error."""
        for a in range(start, end, PS):
            pg = pm.pages.get(a)
            if pg is None or pg.onfault:
                continue
            if pg.prot == 0 or pg.beyond_eof():
                if not ignore_errors:
                    return True
                continue  # the rest of this VMA is past EOF / PROT_NONE as well
            if pg.prot & W and not pg.shared:
                pg.cow()
        return False

    def _hint_ok(self, pm: ProcModel, addr: int, npages: int) -> bool:
        """Would get_unmapped_area() take this hint (free, and clear of a stack's guard gap)?"""
        end = addr + npages * PS
        if any(a in pm.pages for a in range(addr, end, PS)):
            return False
        above = [a for a in pm.pages if a >= end]
        if above:
            nxt = min(above)
            if pm.pages[nxt].growsdown and end > nxt - self.gap:
                return False
        return True

    def _check_new_area(self, pm: ProcModel, addr: int, npages: int, before: set[int]) -> None:
        """A mapping placed by the kernel must have been free and clear of guard gaps."""
        end = addr + npages * PS
        assert addr % PS == 0 and addr >= PS
        clash = [a for a in range(addr, end, PS) if a in before]
        assert not clash, f"{pm.name}: new area {addr:#x}+{npages}p clobbered {clash[0]:#x}"
        above = [a for a in pm.pages if a >= end and a in before]
        if above:
            nxt = min(above)
            assert not (pm.pages[nxt].growsdown and end > nxt - self.gap), (
                f"{pm.name}: new area {addr:#x} inside the guard gap of the stack at {nxt:#x}")

    # ---------------------------------------------------------------- processes
    def spawn_process(self, cfg: int) -> None:
        heap = (cfg >> 3) & 7
        self._spawn((cfg & 7) % len(LIMITS), WIN + (heap - 1) * 6 * PS if heap else None)

    def set_memlock_limit(self, p: int, cfg: int) -> None:
        pm = self._proc(p)
        pm.cap, pm.memlock = LIMITS[cfg % len(LIMITS)]
        pm.proc.mm.rlimits.cap_ipc_lock, pm.proc.mm.rlimits.memlock = pm.cap, pm.memlock
        note(f"{pm.name}.mm.rlimits.cap_ipc_lock, {pm.name}.mm.rlimits.memlock = "
             f"{pm.cap}, {pm.memlock}")

    def exit_process(self, p: int) -> None:
        pm = self._proc(p)
        pm.proc.exit(0)
        note(f"{pm.name}.exit(0)")
        assert pm.proc.state == "exited" and pm.proc.exit_code == 0
        self.procs.remove(pm)

    def fork(self, p: int) -> None:
        pm = self._proc(p)
        child = pm.proc.fork()
        assert isinstance(child, Process), f"fork failed: {child}"
        cm = ProcModel(child, {}, pm.cap, pm.memlock, start_brk=pm.start_brk, brk=pm.brk)
        note(f"{cm.name} = {pm.name}.fork()")
        for a, pg in pm.pages.items():
            if pg.dontfork:
                continue
            new = pg.clone()
            new.locked = new.onfault = False
            if new.wipe:
                new.priv, new.lazy = None, False
            cm.pages[a] = new
        self.procs.append(cm)

    # ---------------------------------------------------------------- mmap / munmap
    def mmap(self, a: int, n: int, spec: int) -> None:
        pm, addr = self._addr(a)
        npages = max(n, 1)
        prot = PROTS[spec & 15]
        kind = (spec >> 4) & 3  # 0 private anon, 1 shared anon, 2 private file, 3 shared file
        fsel = (spec >> 6) & 3  # file 0..2 read-write, 3: file 0 through its read-only fd
        place = (spec >> 8) & 3  # 0/3 MAP_FIXED (or MAP_FIXED_NOREPLACE), 1 hint, 2 anywhere
        populate, lock = bool(spec >> 10 & 1), (spec >> 11) & 3 == 3
        growsdown = bool(spec >> 13 & 1) if kind == 0 else (spec >> 13) & 3 == 3 and spec >> 18 & 1
        off = (spec >> 15) & 3
        noreplace = bool(spec >> 17 & 1) and place == 3
        shared = kind in (1, 3)
        is_file = kind >= 2
        fd = (3 if fsel == 3 else fsel) if is_file else -1
        fm = self.files[0 if fsel == 3 else fsel] if is_file else None
        flags = (m.MAP_SHARED if shared else m.MAP_PRIVATE) | (0 if is_file else m.MAP_ANONYMOUS)
        flags |= m.MAP_POPULATE if populate else 0
        flags |= m.MAP_LOCKED if lock else 0
        flags |= m.MAP_GROWSDOWN if growsdown else 0
        if place in (0, 3):
            flags |= m.MAP_FIXED_NOREPLACE if noreplace else m.MAP_FIXED
            if growsdown and spec >> 14 & 1 == 0:  # room to grow: nothing within the gap
                addr = STACK_WIN + (addr >> 12) % 4 * 24 * PS
        hint = addr if place != 2 else 0
        length = npages * PS
        offset = off * PS if is_file else 0

        # do_mmap()'s checks in Linux's order
        locked = lock or pm.future
        expect: int | None = None
        if noreplace and pm.mapped(addr, addr + length):
            expect = -m.EEXIST
        elif lock and pm.memlock == 0 and not pm.cap:
            expect = -m.EPERM
        elif not pm.mlock_future_ok(locked, npages):
            expect = -m.EAGAIN
        elif shared and is_file and prot & W and fsel == 3:
            expect = -m.EACCES
        elif growsdown and (is_file or shared):
            expect = -m.EINVAL
        elif place in (0, 3):
            expect = addr
        elif place == 1 and self._hint_ok(pm, addr, npages):
            expect = addr

        ret = pm.proc.mmap(hint, length, prot, flags, fd, offset)
        self._call(pm, f"mmap({hint:#x}, {length:#x}, {prot}, {flags:#x}, {fd}, {offset:#x})", ret)
        if expect is not None:
            assert ret == expect, f"mmap: expected {expect:#x}, got {ret:#x}"
        if ret < 0:
            assert expect is not None and expect < 0, f"mmap failed unexpectedly: {ret}"
            return
        before = set(pm.pages)
        if place in (0, 3):
            pm.unmap(ret, ret + length)
        else:
            self._check_new_area(pm, ret, npages, before)
        obj: FileModel | ShmModel | None = fm
        if kind == 1:
            shm = ShmModel(npages)
            vma = self._vma(pm, ret)
            assert vma.vm_file is not None and vma.vm_file.inode.shmem
            shm.inode = vma.vm_file.inode
            obj = shm
        for i in range(npages):
            pm.pages[ret + i * PS] = PageModel(
                kind=ANON if kind == 0 else SHM if kind == 1 else FILE, prot=prot,
                shared=shared, maywrite=not (shared and fsel == 3 and is_file),
                obj=obj, index=(off if is_file else 0) + i, locked=locked,
                onfault=locked and pm.future_onfault, growsdown=growsdown)
        if locked:
            pm.locked_vm += npages
        if locked or populate:
            self._populate(pm, ret, ret + length, ignore_errors=True)

    def munmap(self, a: int, n: int) -> None:
        pm, addr, n = self._range(a, n)
        ret = pm.proc.munmap(addr, n * PS)
        self._call(pm, f"munmap({addr:#x}, {n * PS:#x})", ret)
        if n == 0:
            assert ret == -m.EINVAL
            return
        assert ret == 0
        pm.unmap(addr, addr + n * PS)

    # ---------------------------------------------------------------- mprotect
    def mprotect(self, a: int, n: int, prot: int) -> None:
        pm, addr, n = self._range(a, n)
        expect = 0
        for page in range(addr, addr + n * PS, PS):
            pg = pm.pages.get(page)
            if pg is None:
                expect = -m.ENOMEM
                break
            if prot & W and not pg.maywrite:
                expect = -m.EACCES
                break
            old = pg.prot
            pg.prot = prot
            # mprotect_fixup(): a locked private VMA becoming writable is populated (COW broken)
            if pg.locked and not pg.onfault and not pg.shared and not old & W and prot & W \
                    and not pg.beyond_eof():
                pg.cow()
        ret = pm.proc.mprotect(addr, n * PS, prot)
        self._call(pm, f"mprotect({addr:#x}, {n * PS:#x}, {prot})", ret)
        assert ret == expect

    # ---------------------------------------------------------------- mremap
    def mremap(self, a: int, spec: int, k: int) -> None:
        pm, addr, old_n = self._range(a, NTAB[spec & 15])
        new_n = ((spec >> 4) & 15) + 1
        flags = [0, m.MREMAP_MAYMOVE, m.MREMAP_MAYMOVE | m.MREMAP_FIXED,
                 m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP,
                 m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP | m.MREMAP_FIXED, m.MREMAP_FIXED,
                 m.MREMAP_DONTUNMAP, m.MREMAP_MAYMOVE][(spec >> 8) & 7]
        if flags & m.MREMAP_DONTUNMAP and spec & 0x800:
            new_n = max(old_n, 1)  # mostly make DONTUNMAP valid
        new_addr = WIN + (k % WIN_PAGES) * PS if k < 0x80 else (
            self._addr(a ^ (k << 5))[1])
        old_len, new_len = old_n * PS, new_n * PS
        expect, finish = self._model_mremap(pm, addr, old_len, new_len, flags, new_addr)
        ret = pm.proc.mremap(addr, old_len, new_len, flags, new_addr)
        self._call(pm, f"mremap({addr:#x}, {old_len:#x}, {new_len:#x}, {flags}, {new_addr:#x})",
                   ret)
        if expect is not None:
            assert ret == expect, f"mremap: expected {expect:#x}, got {ret:#x}"
        else:
            assert ret >= 0, f"mremap failed unexpectedly: {ret}"
        if finish is not None:
            finish(ret)

    def _model_mremap(self, pm: ProcModel, addr: int, old_len: int, new_len: int, flags: int,
                      new_addr: int) -> tuple[int | None, Callable[[int], None] | None]:
        """Linux's mremap: (expected return or None if the kernel picks, finisher or None).

        The model is updated for what happens before the move (the unmaps of
        MREMAP_FIXED and of a shrink); the finisher, called with vmsim's
        result after the call, does the move itself (it reads the VMA that
        DONTUNMAP unlocks from vmsim's post-call state).
        """
        implies_new_addr = bool(flags & (m.MREMAP_FIXED | m.MREMAP_DONTUNMAP))
        if implies_new_addr:  # check_mremap_params(): before any VMA is looked up
            if not flags & m.MREMAP_MAYMOVE:
                return -m.EINVAL, None
            if flags & m.MREMAP_DONTUNMAP and old_len != new_len:
                return -m.EINVAL, None
            if addr + old_len > new_addr and new_addr + new_len > addr:
                return -m.EINVAL, None
            if flags & m.MREMAP_FIXED and old_len == new_len:
                return self._model_remap_move(pm, addr, old_len, new_addr, flags)
        if addr not in pm.pages:
            return -m.EFAULT, None
        vend = self._vma(pm, addr).vm_end

        def move(ret: int) -> None:
            self._move(pm, addr, old_len, new_len, ret, flags)

        if implies_new_addr:  # check_prep_vma() (before anything is unmapped), then mremap_to()
            err = self._vma_to_resize(pm, addr, min(old_len, new_len), new_len, vend)
            if err:
                return err, None
            if flags & m.MREMAP_FIXED:
                pm.unmap(new_addr, new_addr + new_len)
            if old_len > new_len:
                pm.unmap(addr + new_len, addr + old_len)
                old_len = new_len
            if flags & m.MREMAP_FIXED or self._hint_ok(pm, new_addr, new_len // PS):
                return new_addr, move
            return None, move
        if old_len >= new_len:
            pm.unmap(addr + new_len, addr + old_len)
            return addr, None
        err = self._vma_to_resize(pm, addr, old_len, new_len, vend)
        if err:
            return err, None
        if old_len == vend - addr:
            delta = new_len - old_len
            if not pm.mapped(vend, vend + delta):
                top = pm.pages[vend - PS]
                for i in range(delta // PS):
                    pm.pages[vend + i * PS] = top.fresh(top.index + 1 + i)
                if top.locked:
                    pm.locked_vm += delta // PS
                    self._populate(pm, vend, vend + delta, ignore_errors=True)
                return addr, None
        if not flags & m.MREMAP_MAYMOVE:
            return -m.ENOMEM, None
        return None, move

    def _model_remap_move(self, pm: ProcModel, addr: int, length: int, new_addr: int,
                          flags: int) -> tuple[int | None, Callable[[int], None] | None]:
        """remap_move() (Linux 6.17+): MREMAP_FIXED without a resize moves every VMA in
        [addr, addr+len), gaps and all: each piece lands at the same offset from new_addr
        (only its own destination is unmapped), one move_vma() per VMA. The range must
        start inside a VMA."""
        end = addr + length
        vmas = [(max(v.vm_start, addr), min(v.vm_end, end))
                for v in pm.proc.mm.mm_rb.range(addr, end)]
        if not vmas or vmas[0][0] != addr or addr not in pm.pages:
            return -m.EFAULT, None

        def moves(ret: int) -> None:
            for lo, hi in vmas:
                self._move(pm, lo, hi - lo, hi - lo, new_addr + lo - addr, flags, unmap_dest=True)

        return new_addr, moves

    def _vma_to_resize(self, pm: ProcModel, addr: int, old_len: int, new_len: int,
                       vend: int) -> int:
        """vma_to_resize() / check_prep_vma() for the VMA at addr, which ends at vend."""
        pg = pm.pages[addr]
        if old_len == 0 and not pg.shared:
            return -m.EINVAL
        if old_len > vend - addr:
            return -m.EFAULT
        if new_len != old_len and not pm.mlock_future_ok(pg.locked, (new_len - old_len) // PS):
            return -m.EAGAIN
        return 0

    def _move(self, pm: ProcModel, addr: int, old_len: int, new_len: int, new_addr: int,
              flags: int, unmap_dest: bool = False) -> None:
        """move_vma(): carry the pages over (grown by fresh pages), then unmap or keep the old."""
        if unmap_dest:
            pm.unmap(new_addr, new_addr + new_len)
        if not flags & m.MREMAP_FIXED:
            self._check_new_area(pm, new_addr, new_len // PS, set(pm.pages))
        src = pm.pages[addr]
        moved = {new_addr + (a - addr): pm.pages[a] for a in range(addr, addr + old_len, PS)}
        for i in range(old_len // PS, new_len // PS):
            moved[new_addr + i * PS] = src.fresh(src.index + i)
        if flags & m.MREMAP_DONTUNMAP:
            for a in range(addr, addr + old_len, PS):
                old = pm.pages[a].fresh(pm.pages[a].index)
                pm.pages[a] = old  # the old range stays mapped, empty
        else:
            for a in range(addr, addr + old_len, PS):
                if pm.pages.pop(a).locked:
                    pm.locked_vm -= 1
        pm.pages.update(moved)
        if src.locked:
            pm.locked_vm += new_len // PS
        if flags & m.MREMAP_DONTUNMAP:
            # the whole VMA now holding the old range loses VM_LOCKED; locked_vm is not
            # decremented ("we won't unmap, so we don't need to touch locked_vm")
            vma = self._vma(pm, addr)
            for a in range(vma.vm_start, vma.vm_end, PS):
                pm.pages[a].locked = pm.pages[a].onfault = False
        if src.locked:
            self._populate(pm, new_addr + old_len, new_addr + new_len, ignore_errors=True)

    # ---------------------------------------------------------------- brk
    def brk(self, p: int, v: int) -> None:
        heaps = [pm for pm in self.procs if pm.start_brk]
        pm = heaps[p % len(heaps)]
        value = pm.start_brk + zigzag(v & 0x3F) * PS + [0, 1, 100, 4095][(v >> 6) & 3]
        if v >> 8 & 1:
            value = pm.brk + zigzag((v >> 9) & 0x1F) * PS // 2
        expect = self._model_brk(pm, value)
        ret = pm.proc.brk(value)
        self._call(pm, f"brk({value:#x})", ret)
        assert ret == expect, f"brk: expected {expect:#x}, got {ret:#x}"
        assert pm.proc.mm.brk == pm.brk

    def _model_brk(self, pm: ProcModel, brk: int) -> int:
        """brk(2) as Linux 6.x does it; returns the new break (the old one on failure)."""
        if brk < pm.start_brk:
            return pm.brk
        newbrk = (brk + PS - 1) & ~(PS - 1)
        oldbrk = (pm.brk + PS - 1) & ~(PS - 1)
        if oldbrk == newbrk:
            pm.brk = brk
            return brk
        if brk <= pm.brk:
            if not pm.mapped(newbrk, oldbrk):  # "mapping intersects with an existing non-brk vma"
                return pm.brk
            pm.unmap(newbrk, oldbrk)
            pm.brk = brk
            return brk
        npages = (newbrk - oldbrk) // PS
        if not pm.mlock_future_ok(pm.future, npages):  # check_brk_limits()
            return pm.brk
        above = [a for a in pm.pages if a >= oldbrk]
        if above:
            nxt = min(above)
            gap_start = nxt - self.gap if pm.pages[nxt].growsdown else nxt
            if newbrk + PS > gap_start:
                return pm.brk
        for a in range(oldbrk, newbrk, PS):
            pm.pages[a] = PageModel(ANON, R | W, False, True, None, 0, locked=pm.future,
                                    onfault=pm.future and pm.future_onfault)
        if pm.future:
            pm.locked_vm += npages
        pm.brk = brk
        return brk

    # ---------------------------------------------------------------- madvise
    def madvise(self, a: int, n: int, adv: int) -> None:
        pm, addr, n = self._range(a, n)
        advice = MADVICES[adv]
        end = addr + n * PS
        if advice in (m.MADV_POPULATE_READ, m.MADV_POPULATE_WRITE):
            expect = self._model_populate_advice(pm, addr, end, advice == m.MADV_POPULATE_WRITE)
        else:
            expect = self._model_madvise(pm, addr, end, advice)
        ret = pm.proc.madvise(addr, n * PS, advice)
        self._call(pm, f"madvise({addr:#x}, {n * PS:#x}, {advice})", ret)
        assert ret == expect, f"madvise({advice}): expected {expect}, got {ret}"

    def _model_populate_advice(self, pm: ProcModel, start: int, end: int, write: bool) -> int:
        for a in range(start, end, PS):
            pg = pm.pages.get(a)
            if pg is None:
                return -m.ENOMEM
            if not pg.prot & (W if write else R):
                return -m.EINVAL
            if pg.beyond_eof():
                return -m.EFAULT
            if write and not pg.shared:
                pg.cow()
        return 0

    def _model_madvise(self, pm: ProcModel, start: int, end: int, advice: int) -> int:
        unmapped = False
        for a in range(start, end, PS):
            pg = pm.pages.get(a)
            if pg is None:
                unmapped = True
                continue
            err = self._advise_page(pg, advice)
            if err:
                return err
        return -m.ENOMEM if unmapped else 0

    @staticmethod
    def _advise_page(pg: PageModel, advice: int) -> int:
        if advice in (m.MADV_DONTNEED, m.MADV_DONTNEED_LOCKED, m.MADV_FREE):
            if pg.locked and advice != m.MADV_DONTNEED_LOCKED:
                return -m.EINVAL
            if advice == m.MADV_FREE:
                if pg.kind != ANON:
                    return -m.EINVAL
                if pg.priv is not None:  # dropped (zeros) or kept: either may be seen
                    pg.lazy = True
                    pg.priv.forget(0, PS)
            elif not pg.shared:
                pg.priv, pg.lazy = None, False
        elif advice == m.MADV_REMOVE:
            if pg.locked or pg.kind == ANON:
                return -m.EINVAL
            if not (pg.shared and pg.maywrite):
                return -m.EACCES
            assert pg.obj is not None
            if pg.kind == FILE:
                pg.obj.pages.pop(pg.index, None)  # a hole reads as zeros
            else:  # tmpfs: zeros per the man page; the reference host kernel keeps the data
                pg.obj.page_w(pg.index).forget(0, PS)  # type: ignore[union-attr]
        elif advice in (m.MADV_COLD, m.MADV_PAGEOUT):
            if pg.locked:
                return -m.EINVAL
        elif advice == m.MADV_DONTFORK:
            pg.dontfork = True
        elif advice == m.MADV_DOFORK:
            pg.dontfork = False
        elif advice == m.MADV_WIPEONFORK:
            if pg.kind != ANON:
                return -m.EINVAL
            pg.wipe = True
        elif advice == m.MADV_KEEPONFORK:
            pg.wipe = False
        return 0

    # ---------------------------------------------------------------- mlock family
    def mlock(self, a: int, n: int, how: int) -> None:
        pm, addr, n = self._range(a, n)
        end = addr + n * PS
        if how == 2:
            expect = self._apply_lock(pm, addr, end, False, False)
            ret = pm.proc.munlock(addr, n * PS)
            self._call(pm, f"munlock({addr:#x}, {n * PS:#x})", ret)
        else:
            expect = self._model_mlock(pm, addr, end, onfault=how == 1)
            if how == 1:
                ret = pm.proc.mlock2(addr, n * PS, m.MLOCK_ONFAULT)
                self._call(pm, f"mlock2({addr:#x}, {n * PS:#x}, MLOCK_ONFAULT)", ret)
            else:
                ret = pm.proc.mlock(addr, n * PS)
                self._call(pm, f"mlock({addr:#x}, {n * PS:#x})", ret)
        assert ret == expect, f"mlock/munlock: expected {expect}, got {ret}"

    def _model_mlock(self, pm: ProcModel, start: int, end: int, onfault: bool) -> int:
        if pm.memlock == 0 and not pm.cap:
            return -m.EPERM
        locked = (end - start) // PS + pm.locked_vm
        if locked > pm.limit_pages() and not pm.cap:
            locked -= sum(1 for a in pm.mapped(start, end) if pm.pages[a].locked)
            if locked > pm.limit_pages():
                return -m.ENOMEM
        err = self._apply_lock(pm, start, end, True, onfault)
        if err:
            return err
        if self._populate(pm, start, end, ignore_errors=False):
            return -m.ENOMEM  # __mlock_posix_error_return(-EFAULT)
        return 0

    @staticmethod
    def _apply_lock(pm: ProcModel, start: int, end: int, lock: bool, onfault: bool) -> int:
        """apply_vma_lock_flags(): -ENOMEM at the first hole, after the pages before it."""
        for a in range(start, end, PS):
            pg = pm.pages.get(a)
            if pg is None:
                return -m.ENOMEM
            pm.locked_vm += int(lock) - int(pg.locked)
            pg.locked, pg.onfault = lock, lock and onfault
        return 0

    def mlockall(self, p: int, f: int) -> None:
        pm = self._proc(p)
        if f == len(MLOCKALL_FLAGS):
            ret = pm.proc.munlockall()
            self._call(pm, "munlockall()", ret)
            assert ret == 0
            pm.future = pm.future_onfault = False
            for pg in pm.pages.values():
                pm.locked_vm -= int(pg.locked)
                pg.locked = pg.onfault = False
            return
        flags = MLOCKALL_FLAGS[f]
        expect = self._model_mlockall(pm, flags)
        ret = pm.proc.mlockall(flags)
        self._call(pm, f"mlockall({flags})", ret)
        assert ret == expect, f"mlockall({flags}): expected {expect}, got {ret}"

    def _model_mlockall(self, pm: ProcModel, flags: int) -> int:
        if not flags or flags == m.MCL_ONFAULT:
            return -m.EINVAL
        if pm.memlock == 0 and not pm.cap:
            return -m.EPERM
        if flags & m.MCL_CURRENT and not pm.cap and len(pm.pages) > pm.limit_pages():
            return -m.ENOMEM
        pm.future = bool(flags & m.MCL_FUTURE)
        pm.future_onfault = pm.future and bool(flags & m.MCL_ONFAULT)
        if flags & m.MCL_CURRENT:
            for pg in pm.pages.values():
                pm.locked_vm += 1 - int(pg.locked)
                pg.locked, pg.onfault = True, bool(flags & m.MCL_ONFAULT)
            for a in sorted(pm.pages):  # mm_populate(0, TASK_SIZE), errors ignored
                self._populate(pm, a, a + PS, ignore_errors=True)
        return 0

    # ---------------------------------------------------------------- msync / mincore
    def msync(self, a: int, n: int, f: int) -> None:
        pm, addr, n = self._range(a, n)
        flags = MSYNC_FLAGS[f]
        pages = range(addr, addr + n * PS, PS)
        if n == 0:
            expect = 0
        elif flags & m.MS_INVALIDATE and any(pm.pages[x].locked for x in pages if x in pm.pages):
            expect = -m.EBUSY
        elif any(x not in pm.pages for x in pages):
            expect = -m.ENOMEM
        else:
            expect = 0
        ret = pm.proc.msync(addr, n * PS, flags)
        self._call(pm, f"msync({addr:#x}, {n * PS:#x}, {flags})", ret)
        assert ret == expect, f"msync: expected {expect}, got {ret}"

    def mincore(self, a: int, n: int) -> None:
        pm, addr, n = self._range(a, n)
        pages = range(addr, addr + n * PS, PS)
        ret = pm.proc.mincore(addr, n * PS)
        self._call(pm, f"mincore({addr:#x}, {n * PS:#x})", ret)
        if any(x not in pm.pages for x in pages):
            assert ret == -m.ENOMEM
            return
        assert isinstance(ret, bytes) and len(ret) == n, ret
        for i, x in enumerate(pages):
            pg = pm.pages[x]
            if pg.priv is not None and not pg.lazy:
                assert ret[i] & 1, f"mincore: private page {x:#x} with data is not resident"
            if pg.kind == SHM and pg.obj.page(pg.index).known is None \
                    and pg.index in pg.obj.pages:  # type: ignore[union-attr]
                assert ret[i] & 1, f"mincore: tmpfs page {x:#x} with data is not resident"

    # ---------------------------------------------------------------- accesses
    def _model_access(self, pm: ProcModel, addr: int, n: int, acc: str,
                      data: bytes | None) -> tuple[list[tuple[bytes, bytes | None]],
                                                   tuple[int, int, int] | None]:
        """Walk an access chunk by chunk as the MMU and fault handler would.

        Applies stores and stack growth to the model; returns the expected
        bytes of each chunk read and the fatal (signo, si_code, si_addr) or None.
        """
        pieces: list[tuple[bytes, bytes | None]] = []
        pos, end = addr, addr + n
        while pos < end:
            page = pos & ~(PS - 1)
            lo, hi = pos - page, min(PS, end - page)
            pg = pm.pages.get(page)
            if pg is None:
                pg = self._stack_grow(pm, page)
                if pg is None:
                    return pieces, (SIGSEGV, SEGV_MAPERR, pos)
            if not can_access(pg.prot, acc):
                # x86 access_error(): a not-present fetch only needs an accessible VMA, so
                # the page is faulted in (SIGBUS past EOF) before the NX fetch fails
                if acc == "x" and pg.prot and pg.beyond_eof():
                    return pieces, (SIGBUS, BUS_ADRERR, pos)
                return pieces, (SIGSEGV, SEGV_ACCERR, pos)
            if pg.beyond_eof():
                return pieces, (SIGBUS, BUS_ADRERR, pos)
            if data is not None:
                pg.store(lo, data[pos - addr:pos - addr + hi - lo])
            else:
                pieces.append(pg.view().slice(lo, hi))
            pos = page + hi
        return pieces, None

    def _access(self, a: int, v: int, acc: str) -> None:
        pm, page = self._addr(a)
        n = LENGTHS[(v >> 12) & 15] if acc != "x" else LENGTHS[(v >> 12) & 7]
        addr = page + (v & 0xFFF)
        if (v >> 12) & 15 >= 14:
            addr = page + PS - 8  # long accesses that start near a page end
        data = payload(v, n) if acc == "w" else None
        pieces, fatal = self._model_access(pm, addr, n, acc, data)
        proc = pm.proc
        if acc == "w":
            got: object = proc.store(addr, data)  # type: ignore[arg-type]
            self._call(pm, f"store({addr:#x}, payload({v}, {n}))", got)
        elif acc == "r":
            got = proc.load(addr, n)
            self._call(pm, f"load({addr:#x}, {n})", None if got is None else "...")
        else:
            got = proc.fetch(addr, n)
            self._call(pm, f"fetch({addr:#x}, {n})", None if got is None else "...")
        if fatal is None:
            assert proc.alive, (f"{pm.name}: access at {addr:#x}+{n} ({acc}) should succeed, "
                                f"but the process died: {proc.siginfo}")
            if acc != "w":
                assert isinstance(got, bytes) and len(got) == n
                pos = 0
                for exp, known in pieces:
                    off = first_diff(exp, known, got[pos:pos + len(exp)])
                    assert off is None, (f"{pm.name}: load at {addr + pos + off:#x} read "
                                         f"{got[pos + off]:#x}, model says {exp[off]:#x}")
                    pos += len(exp)
            return
        signo, code, si_addr = fatal
        assert not proc.alive, (f"{pm.name}: access at {addr:#x}+{n} ({acc}) should die of "
                                f"signal {signo}/{code} at {si_addr:#x}")
        assert proc.siginfo is not None
        assert (proc.siginfo.signo, proc.siginfo.code, proc.siginfo.addr) == fatal, (
            f"{pm.name}: expected siginfo {fatal}, got {proc.siginfo}")
        assert proc.state == "killed" and proc.exit_code == 128 + signo
        self._drop_dead()

    # ---------------------------------------------------------------- files
    def pwrite(self, f: int, spec: int) -> None:
        pm = self.procs[0]
        fm = self.files[f]
        off = (spec & 7) * PS + [0, 1, 100, 4000][(spec >> 3) & 3]
        n = LENGTHS[(spec >> 5) & 15]
        data = payload(spec, n)
        ret = pm.proc.pwrite(f, data, off)
        self._call(pm, f"pwrite({f}, payload({spec}, {n}), {off:#x})", ret)
        assert ret == n
        fm.pwrite(off, data)

    def ftruncate(self, f: int, spec: int) -> None:
        pm = self.procs[0]
        fm = self.files[f]
        size = (spec & 7) * PS + [0, 1, 2048, 4095][(spec >> 3) & 3]
        ret = pm.proc.ftruncate(f, size)
        self._call(pm, f"ftruncate({f}, {size:#x})", ret)
        assert ret == 0
        if size < fm.size:  # truncate_pagecache(): private COW copies past EOF go too
            first = (size + PS - 1) // PS
            for other in self.procs:
                for pg in other.pages.values():
                    if pg.obj is fm and not pg.shared and pg.index >= first:
                        pg.priv = None
        fm.truncate(size)

    def drop_caches(self) -> None:
        self.machine.drop_caches()
        note("m.drop_caches()")

    # ---------------------------------------------------------------- the one rule
    @rule(op=st.integers(0, 255), a=st.integers(0, 0xFFFF), b=st.integers(0, 0xFFFFFF))
    def step(self, op: int, a: int, b: int) -> None:
        """One operation: op 0 does nothing (so shrinking can neutralise a step), others
        pick an operation of this example's swarm; a and b are its packed arguments."""
        if op == 0:
            return
        name = self.ops[op % len(self.ops)]
        if not self.procs and name not in ("spawn", "drop_caches"):
            name = "spawn"
        if name == "spawn" and len(self.procs) < MAX_PROCS:
            self.spawn_process(b & 0xFF)
        elif name == "memlock":
            self.set_memlock_limit(a, b & 7)
        elif name == "exit":
            self.exit_process(a)
        elif name == "fork" and len(self.procs) < MAX_PROCS:
            self.fork(a)
        elif name == "mmap":
            self.mmap(a, ((b >> 19) & 15) + 1, b & 0x7FFFF)
        elif name == "munmap":
            self.munmap(a, NTAB[b & 15])
        elif name == "mprotect":
            self.mprotect(a, NTAB[b & 15], PROTS[(b >> 8) & 15])
        elif name == "mremap":
            self.mremap(a, b & 0xFFF, b >> 12)
        elif name == "brk" and any(pm.start_brk for pm in self.procs):
            self.brk(a, b & 0x3FFF)
        elif name == "madvise":
            self.madvise(a, NTAB[b & 15], (b >> 8) % len(MADVICES))
        elif name == "mlock":
            self.mlock(a, NTAB[b & 15], (b >> 8) % 3)
        elif name == "mlockall":
            self.mlockall(a, (b >> 8) % (len(MLOCKALL_FLAGS) + 1))
        elif name == "msync":
            self.msync(a, NTAB[b & 15], (b >> 8) % len(MSYNC_FLAGS))
        elif name == "mincore":
            self.mincore(a, NTAB[b & 15])
        elif name in ("store", "load", "fetch"):
            if not any(pm.pages for pm in self.procs):  # nothing to touch yet: map something
                self.mmap(a, ((b >> 19) & 15) + 1, b & 0x7FFFF)
            else:
                self._access(a, b & 0xFFFF, {"store": "w", "load": "r", "fetch": "x"}[name])
        elif name == "pwrite":
            self.pwrite(a % 3, b & 0xFFFF)
        elif name == "ftruncate":
            self.ftruncate(a % 3, b & 31)
        elif name == "drop_caches":
            self.drop_caches()

    # ---------------------------------------------------------------- invariants
    @invariant()
    def vmsim_matches_model(self) -> None:
        if not hasattr(self, "machine"):
            return
        self.steps += 1
        self.machine.check()
        alive = {pm.pid for pm in self.procs}
        assert alive == set(self.machine.processes), (alive, set(self.machine.processes))
        for pm in self.procs:
            self._check_vmas(pm)
            self._check_pages(pm)
        self._check_files()

    def _check_vmas(self, pm: ProcModel) -> None:
        """vmsim's VMAs cover exactly the model's pages, each uniform in model terms."""
        mm = pm.proc.mm
        seen = 0
        for vma in mm.mm_rb:
            f = vma.vm_flags
            first = pm.pages.get(vma.vm_start)
            assert first is not None, f"{pm.name}: {vma!r} maps pages the model does not have"
            for a in range(vma.vm_start, vma.vm_end, PS):
                pg = pm.pages.get(a)
                assert pg is not None, f"{pm.name}: {vma!r} covers unmapped page {a:#x}"
                seen += 1
                want = (pg.prot, pg.shared, pg.maywrite, pg.shared and pg.maywrite, pg.locked,
                        pg.onfault, pg.dontfork, pg.wipe, pg.growsdown)
                have = (f & 7, bool(f & VM_MAYSHARE), bool(f & VM_MAYWRITE),
                        bool(f & VM_SHARED), bool(f & VM_LOCKED), bool(f & VM_LOCKONFAULT),
                        bool(f & VM_DONTCOPY), bool(f & VM_WIPEONFORK), bool(f & VM_GROWSDOWN))
                assert want == have, (
                    f"{pm.name}: page {a:#x} of {vma!r}: model (prot, mayshare, maywrite, shared,"
                    f" locked, onfault, dontfork, wipe, growsdown) = {want}, vmsim {have}")
                if pg.kind == ANON:
                    assert vma.vm_file is None, f"{pm.name}: anonymous page {a:#x} in {vma!r}"
                else:
                    assert vma.vm_file is not None and vma.vm_file.inode is pg.obj.inode, (  # type: ignore[union-attr]
                        f"{pm.name}: page {a:#x} of {vma!r} maps the wrong object")
                    idx = vma.linear_page_index(a, 12)
                    assert idx == pg.index, (
                        f"{pm.name}: page {a:#x} maps page {idx} of its object, model {pg.index}")
        if seen != len(pm.pages):
            missing = [a for a in sorted(pm.pages) if (v := mm.find_vma(a)) is None
                       or v.vm_start > a]
            raise AssertionError(f"{pm.name}: pages {[hex(a) for a in missing[:4]]} are "
                                 "mapped in the model but in no VMA")
        assert mm.locked_vm == pm.locked_vm, (
            f"{pm.name}: locked_vm {mm.locked_vm}, Linux would count {pm.locked_vm}")
        assert mm.brk == pm.brk, f"{pm.name}: brk {mm.brk:#x}, model {pm.brk:#x}"

    def _check_pages(self, pm: ProcModel) -> None:
        """Every present entry maps the right frame holding the right bytes."""
        kmem = self.machine.kmem
        mode = kmem.mode
        b = mode.bits
        flags = kmem.mem_map.flags
        for a, pg in pm.pages.items():
            slot = pte_offset(kmem, pm.proc.mm.pgd, a)
            entry = kmem.phys.read_entry(slot, mode.entry_size) if slot >= 0 else 0
            where = f"{pm.name}: page {a:#x}"
            if not entry & (b.present | b.protnone):
                if pg.kind == ANON and pg.priv is not None:
                    exp, known = pg.priv.slice(0, PS)
                    off = first_diff(exp, known, bytes(PS))
                    assert off is None, f"{where}: data lost, nothing mapped (byte {off:#x})"
                continue
            pfn = mode.entry_pfn(entry)
            if entry & b.special:
                assert pfn == kmem.zero_pfn
                assert pg.kind == ANON, f"{where}: the zero page mapped for a file page"
                actual = bytes(PS)
            else:
                actual = kmem.phys.read(pfn * PS, PS)
                anon = bool(flags[pfn] & PG.anon)
                if pg.priv is not None or pg.kind == ANON:
                    assert anon, f"{where}: private page maps non-anonymous frame {pfn:#x}"
                else:
                    cache = pg.obj.inode.pages.get(pg.index)  # type: ignore[union-attr]
                    assert pfn == cache, (f"{where}: maps frame {pfn:#x}, the page cache holds "
                                          f"{cache} for index {pg.index}")
            exp, known = pg.view().slice(0, PS)
            off = first_diff(exp, known, actual)
            assert off is None, (f"{where}: byte {off:#x} is {actual[off]:#x}, "
                                 f"model {exp[off]:#x}")

    def _check_files(self) -> None:
        kmem = self.machine.kmem
        for fm in self.files:
            assert fm.inode.i_size == fm.size, (fm.name, fm.inode.i_size, fm.size)
            got = filemap.file_read(kmem, fm.inode, 0, fm.size)
            exp, known = fm.expected(0, fm.size)
            off = first_diff(exp, known, got)
            assert off is None, f"{fm.name}: byte {off:#x} reads {got[off]:#x}, model {exp[off]:#x}"


STEPS = 500  # `step`s per example, every example (see test_state_machine)


def _profile() -> settings:
    """The CI profile, or VMSIM_HYPOTHESIS_PROFILE=long for a local soak run.

    CI: deterministic (derandomized, no example database) and no shrinking,
    so a failure is reported at once, with the replayable trace of the
    failing example. long: random examples, the example database, and
    shrinking (best with VMSIM_SM_MIN_STEPS=0, see test_state_machine).
    """
    # hypothesis counts the initialize rule as one of stateful_step_count steps
    common = {"deadline": None, "stateful_step_count": STEPS + 1,
              "suppress_health_check": list(HealthCheck)}
    n = os.environ.get("VMSIM_HYPOTHESIS_EXAMPLES")
    if os.environ.get("VMSIM_HYPOTHESIS_PROFILE") == "long":
        return settings(max_examples=int(n or 400), **common)
    return settings(max_examples=int(n or 100), derandomize=True, database=None,
                    print_blob=False, phases=[Phase.explicit, Phase.generate], **common)


def test_state_machine() -> None:
    """Every example runs exactly STEPS steps (hypothesis would otherwise end some early).

    VMSIM_SM_MIN_STEPS=0 lets hypothesis shorten examples, which makes it
    shrink a failure to far fewer steps when hunting a reproduction.
    """
    min_steps = int(os.environ.get("VMSIM_SM_MIN_STEPS", STEPS + 1))
    if "_min_steps" in inspect.signature(run_state_machine_as_test).parameters:
        run_state_machine_as_test(VmStateMachine, settings=_profile(), _min_steps=min_steps)
    else:  # pragma: no cover - a hypothesis without the knob: examples may end early
        run_state_machine_as_test(VmStateMachine, settings=_profile())


# ---------------------------------------------------------------------------------------------
# Regression tests: minimal reproductions of vmsim bugs the state machine found. Each states
# the Linux rule it checks; the expected values were confirmed on the reference host kernel.
# ---------------------------------------------------------------------------------------------
PRIVATE_ANON = m.MAP_PRIVATE | m.MAP_ANONYMOUS
HEAP = 0x5555_0000_0000


def _machine(root: os.PathLike[str] | None = None) -> Machine:
    return Machine(memory=MEMORY, seed=1, root=root)


def test_madvise_cold_and_pageout_refuse_locked_vmas() -> None:
    """madvise_cold()/madvise_pageout(): !can_madv_lru_vma() -> -EINVAL for a VM_LOCKED VMA."""
    p = _machine().spawn()
    p.mm.rlimits.cap_ipc_lock = True
    a = p.mmap(None, 2 * PS, R | W, PRIVATE_ANON | m.MAP_LOCKED)
    assert p.madvise(a, 2 * PS, m.MADV_COLD) == -m.EINVAL
    assert p.madvise(a, 2 * PS, m.MADV_PAGEOUT) == -m.EINVAL


def test_brk_growth_under_mlockall_future_is_limited_by_memlock() -> None:
    """brk(): check_brk_limits() applies mlock_future_ok() when def_flags has VM_LOCKED."""
    p = _machine().spawn()
    p.mm.rlimits.memlock = 4 * PS
    p.mm.start_brk = p.mm.brk = HEAP
    assert p.mlockall(m.MCL_FUTURE) == 0
    assert p.brk(HEAP + 8 * PS) == HEAP  # 8 locked pages > RLIMIT_MEMLOCK: refused
    assert p.brk(HEAP + 2 * PS) == HEAP + 2 * PS


def test_brk_shrink_fails_when_no_vma_is_left_to_unmap() -> None:
    """brk() (Linux 6.1+): shrinking with no VMA in [newbrk, oldbrk) fails, brk is unchanged."""
    p = _machine().spawn()
    p.mm.start_brk = p.mm.brk = HEAP
    assert p.brk(HEAP + 4 * PS) == HEAP + 4 * PS
    assert p.munmap(HEAP, 4 * PS) == 0
    assert p.brk(HEAP + PS) == HEAP + 4 * PS
    assert p.mm.brk == HEAP + 4 * PS


def test_mprotect_making_a_locked_private_mapping_writable_breaks_cow(tmp_path) -> None:
    """mprotect_fixup(): a VM_LOCKED private VMA that becomes writable is populated with
    write faults (COW broken at once), so later changes to the file are not seen."""
    make_root(str(tmp_path))
    p = spawn(_machine(tmp_path), limit=0)  # CAP_IPC_LOCK; fd 0 is a.bin, read-write
    a = p.mmap(None, PS, R, m.MAP_PRIVATE | m.MAP_LOCKED, 0, 0)
    before = p.load(a, 1)
    assert p.mprotect(a, PS, R | W) == 0
    assert p.pwrite(0, bytes([before[0] ^ 0xFF]), 0) == 1
    assert p.load(a, 1) == before


def test_mlock_of_zero_bytes_inside_a_prot_none_vma() -> None:
    """mlock(addr, 0): __mm_populate() of an empty range does nothing and returns 0."""
    p = _machine().spawn()
    p.mm.rlimits.cap_ipc_lock = True
    a = p.mmap(None, 4 * PS, m.PROT_NONE, PRIVATE_ANON)
    assert p.mlock(a + PS, 0) == 0
    assert p.mlock2(a + PS, 0, m.MLOCK_ONFAULT) == 0


def test_mremap_dontunmap_leaves_locked_vm_alone() -> None:
    """move_vma() with MREMAP_DONTUNMAP: the new range is charged to locked_vm and the old
    one is not uncharged ("we won't unmap, so we don't need to touch locked_vm"), although
    the old VMA loses VM_LOCKED: VmLck goes from 6 pages to 8 on Linux."""
    p = _machine().spawn()
    p.mm.rlimits.cap_ipc_lock = True
    a = p.mmap(None, 6 * PS, R | W, PRIVATE_ANON | m.MAP_LOCKED)
    assert p.mm.locked_vm == 6
    new = p.mremap(a + 2 * PS, 2 * PS, 2 * PS, m.MREMAP_MAYMOVE | m.MREMAP_DONTUNMAP)
    assert new > 0
    assert not p.mm.mm_rb.find_vma(a).vm_flags & VM_LOCKED
    assert p.mm.locked_vm == 8


def test_mremap_checks_the_ranges_before_looking_up_the_vma() -> None:
    """check_mremap_params() (Linux 6.18) rejects overlapping old/new ranges with -EINVAL
    before any VMA is looked up, so an unmapped old address is not -EFAULT here."""
    p = _machine().spawn()
    base = 0x7F00_0000_0000
    assert p.mremap(base, 3 * PS, 5 * PS, m.MREMAP_MAYMOVE | m.MREMAP_FIXED,
                    base + 2 * PS) == -m.EINVAL
    assert p.mremap(base, 3 * PS, 5 * PS, m.MREMAP_MAYMOVE | m.MREMAP_FIXED,
                    base + 40 * PS) == -m.EFAULT


def test_mremap_fixed_move_spans_vmas_and_keeps_their_gaps() -> None:
    """remap_move() (Linux 6.17+): MREMAP_FIXED with old_len == new_len moves every VMA in
    the range, each to the same offset from new_addr; a gap stays a gap (and what was
    mapped at its destination stays mapped)."""
    p = _machine().spawn()
    src, dst = 0x7F00_0000_0000, 0x7F00_0010_0000
    assert p.mmap(src, 2 * PS, R | W, PRIVATE_ANON | m.MAP_FIXED) == src
    assert p.mmap(src + 3 * PS, PS, R, PRIVATE_ANON | m.MAP_FIXED) == src + 3 * PS
    assert p.mmap(dst, 8 * PS, R, PRIVATE_ANON | m.MAP_FIXED) == dst
    assert p.store(src, b"A")
    assert p.mremap(src, 4 * PS, 4 * PS, m.MREMAP_MAYMOVE | m.MREMAP_FIXED, dst) == dst
    assert p.mm.mm_rb.find_vma(src).vm_start >= src + 4 * PS  # the source is gone
    prots = []
    for i in range(8):
        vma = p.mm.mm_rb.find_vma(dst + i * PS)
        assert vma is not None and vma.vm_start <= dst + i * PS
        prots.append(vma.vm_flags & 7)
    assert prots == [R | W, R | W, R, R, R, R, R, R]
    assert p.load(dst, 1) == b"A"
