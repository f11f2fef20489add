"""Seeded random scripts: valid and invalid operation sequences of any length.

``generate(seed, index, length)`` returns the same :class:`Case` for the
same arguments on every machine (``random.Random`` seeded with a string,
which Python hashes deterministically).  A script works in a few *zones* of
the region (two playgrounds, a growsdown stack spot) and the heap window,
with a rough model of what is mapped so that most operations hit mappings,
their edges and the gaps between them; about one operation in twelve is
made invalid (unaligned address, zero or wrapping length, unknown flag or
advice bit).  Forks nest up to two deep, children may ``exit`` early.

What the generator avoids, and why:

* placements the kernel chooses (mmap without MAP_FIXED/MAP_FIXED_NOREPLACE,
  mremap MREMAP_MAYMOVE without MREMAP_FIXED): on the host the free-area
  search may land inside the region or among the runner's own mappings,
  which vmsim's process does not have - not comparable;
* destructive operations outside the zones (they could hit the runner's
  own memory); the only out-of-zone ranges are invalid ones the kernel
  refuses before touching anything (a wrapping length);
* MADV_HWPOISON / MADV_SOFT_OFFLINE (they poison real host memory) and
  MADV_MERGEABLE (ksmd would merge pages asynchronously);
* executing anything but page starts, and writing bytes outside
  :data:`~vmsim.conform.corpus.handwritten.SAFE`, so that the one
  instruction an execute probe runs is harmless (see vmops.c).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vmsim.conform.constants import CONSTANTS as C
from vmsim.conform.corpus.handwritten import SAFE, safe_pattern
from vmsim.conform.files import FileSpec
from vmsim.conform.runner import Case
from vmsim.conform.script import Heap, Script

P = 4096
#: (first page offset in the region, pages) of each playground zone.
ZONES: tuple[tuple[int, int], ...] = ((0x100000, 48), (0x400000, 32))
STACK_TOP = 0x2000000
HEAP_PAGES = 24
MAX_DEPTH = 2

FILES = FileSpec({
    "g0.bin": safe_pattern(4 * P, 1),
    "g1.bin": safe_pattern(6000, 2),
    "g2.bin": b"",
})

PROTS = [3, 3, 3, 1, 1, 5, 7, 0, 2, 4]
ADVICE = ["MADV_NORMAL", "MADV_RANDOM", "MADV_SEQUENTIAL", "MADV_WILLNEED", "MADV_DONTNEED",
          "MADV_DONTNEED", "MADV_FREE", "MADV_REMOVE", "MADV_DONTFORK", "MADV_DOFORK",
          "MADV_HUGEPAGE", "MADV_NOHUGEPAGE", "MADV_DONTDUMP", "MADV_DODUMP",
          "MADV_WIPEONFORK", "MADV_KEEPONFORK", "MADV_COLD", "MADV_PAGEOUT",
          "MADV_POPULATE_READ", "MADV_POPULATE_WRITE", "MADV_DONTNEED_LOCKED",
          "MADV_COLLAPSE", "MADV_GUARD_INSTALL", "MADV_GUARD_REMOVE"]


@dataclass
class _State:
    """What the generator remembers: mapped extents (roughly), open fds, fork depth."""

    rng: random.Random
    s: Script = field(default_factory=Script)
    extents: list[tuple[int, int]] = field(default_factory=list)  # (offset, pages)
    fds: list[int] = field(default_factory=list)
    depth: int = 0
    brk_pages: int = 0

    # ---------------------------------------------------------- choices
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def page(self) -> int:
        """A page-aligned offset: near a known extent (its start, inside, just past) or in a zone."""
        r = self.rng
        if self.extents and self.chance(0.7):
            off, n = r.choice(self.extents)
            return off + P * r.choice([0, 0, r.randrange(n), n, n - 1, -1, r.randrange(n + 2)])
        z, zn = r.choice(ZONES)
        return z + P * r.randrange(zn)

    def npages(self) -> int:
        return self.rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 8])

    def addr_len(self) -> tuple[int, int]:
        """(offset, length) of a range, sometimes made invalid in a way the kernel refuses early."""
        a, n = self.page(), self.npages() * P
        if self.chance(0.04):
            a += self.rng.choice([1, 0x800, P - 1])
        elif self.chance(0.03):
            n = 0
        elif self.chance(0.03):
            n = -P  # wraps: refused before anything is touched
        elif self.chance(0.05):
            n -= self.rng.randrange(1, P)  # unaligned length: rounded up
        return a, n

    def data(self) -> bytes:
        return bytes(self.rng.choice(SAFE) for _ in range(self.rng.choice([1, 1, 2, 3, 8, 17])))

    def remember(self, off: int, pages: int) -> None:
        self.extents.append((off, max(1, pages)))
        if len(self.extents) > 12:
            self.extents.pop(0)

    # ---------------------------------------------------------- operations
    def op_mmap(self) -> None:
        r, s = self.rng, self.s
        a, n = self.addr_len()
        if n <= 0 or n > 16 * P:
            n = self.npages() * P
        prot = r.choice(PROTS)
        if self.chance(0.02):
            prot |= 0x10  # unknown bit: ignored by mmap
        anon = not self.fds or self.chance(0.7)
        kind = r.choices(["MAP_PRIVATE", "MAP_SHARED", "MAP_SHARED_VALIDATE", "0"],
                         [60, 32, 5, 3])[0]
        flags = C[kind] if kind != "0" else 0
        flags |= C["MAP_FIXED"] if self.chance(0.8) else C["MAP_FIXED_NOREPLACE"]
        for name, p in (("MAP_POPULATE", 0.1), ("MAP_LOCKED", 0.05), ("MAP_NORESERVE", 0.1)):
            if self.chance(p):
                flags |= C[name]
        fd, off = -1, 0
        if anon:
            flags |= C["MAP_ANONYMOUS"]
        else:
            fd = r.choice([*self.fds, 99] if self.chance(0.05) else self.fds)
            off = P * r.choice([0, 0, 1, 2, 3, 5])
            if self.chance(0.03):
                off += 100
        s.mmap(a, n, prot, flags, fd, off)
        self.remember(a - a % P, (n + P - 1) // P)

    def op_stack(self) -> None:
        n = self.npages()
        top = STACK_TOP - P * self.rng.choice([0, 0, 8, 300])
        self.s.mmap(top - n * P, n * P, 3, C["MAP_PRIVATE"] | C["MAP_ANONYMOUS"]
                    | C["MAP_FIXED"] | C["MAP_GROWSDOWN"])
        self.remember(top - n * P, n)
        for _ in range(self.rng.randrange(1, 4)):
            self.s.touch(top - P * self.rng.choice([1, n + 1, n + 4, 40, 256, 300]), "w")

    def op_munmap(self) -> None:
        self.s.munmap(*self.addr_len())

    def op_mprotect(self) -> None:
        a, n = self.addr_len()
        prot = self.rng.choice(PROTS)
        if self.chance(0.03):
            prot |= self.rng.choice([0x10, C["PROT_GROWSDOWN"], C["PROT_SEM"]])
        self.s.mprotect(a, n, prot)

    def op_mremap(self) -> None:
        r = self.rng
        a, n = self.addr_len()
        if n <= 0:
            self.s.mremap(a, 0, P, 0, 0)  # old_len 0: a dup of a shared mapping, else refused
            return
        choice = r.randrange(4)
        if choice == 0:  # in place: grow or shrink
            new = max(P, n + P * r.choice([-2, -1, 1, 2, 4]))
            self.s.mremap(a, n, new, 0, 0)
            self.remember(a, new // P)
        else:
            to = self.page()
            flags = C["MREMAP_MAYMOVE"] | C["MREMAP_FIXED"]
            new = n
            if choice == 2:
                flags |= C["MREMAP_DONTUNMAP"]
            elif choice == 3:
                new = max(P, n + P * r.choice([-1, 1, 2]))
            if self.chance(0.03):
                flags = r.choice([C["MREMAP_FIXED"], 8, C["MREMAP_DONTUNMAP"]])
            self.s.mremap(a, n, new, flags, to)
            self.remember(to, new // P)

    def op_madvise(self) -> None:
        adv: int | str = self.rng.choice(ADVICE)
        if self.chance(0.03):
            adv = self.rng.choice([999, 26, -1])
        a, n = self.addr_len()
        self.s.madvise(a, n, adv)

    def op_mlock(self) -> None:
        r, s = self.rng, self.s
        a, n = self.addr_len()
        k = r.randrange(10)
        if k < 4:
            s.mlock(a, n)
        elif k < 6:
            s.mlock2(a, n, r.choice(["MLOCK_ONFAULT", "MLOCK_ONFAULT", 0, 2]))
        elif k < 9:
            s.munlock(a, n)
        elif self.chance(0.5):
            s.mlockall(r.choice(["MCL_FUTURE", "MCL_FUTURE|MCL_ONFAULT", "MCL_ONFAULT", 0]))
        else:
            s.munlockall()

    def op_msync(self) -> None:
        a, n = self.addr_len()
        self.s.msync(a, n, self.rng.choice(["MS_ASYNC", "MS_SYNC", "MS_INVALIDATE",
                                            "MS_SYNC|MS_INVALIDATE", "MS_SYNC|MS_ASYNC", 8]))

    def op_mincore(self) -> None:
        self.s.mincore(*self.addr_len())

    def op_touch(self) -> None:
        r = self.rng
        a = self.page()
        mode = r.choice("rrwwwx")
        if mode != "x" and self.chance(0.5):
            a += r.randrange(P)
        self.s.touch(a, mode)

    def op_access(self) -> None:
        a = self.page() + self.rng.randrange(P - 32)
        if self.chance(0.5):
            self.s.write_at(a, self.data())
        else:
            self.s.read_at(a, self.rng.choice([1, 4, 16]))

    def op_file(self) -> None:
        r, s = self.rng, self.s
        if not self.fds or self.chance(0.15):
            name = r.choice(["g0.bin", "g0.bin", "g1.bin", "g2.bin"])
            s.open(name, r.choice(["O_RDWR", "O_RDWR", "O_RDONLY"]))
            self.fds.append(min(set(range(3, 4 + len(self.fds))) - set(self.fds)))
            return
        fd = r.choice(self.fds)
        k = r.randrange(10)
        if k < 4:
            s.pwrite(fd, r.randrange(5 * P), self.data())
        elif k < 7:
            s.pread(fd, r.randrange(5 * P), r.choice([1, 4, 16]))
        elif k < 9:
            s.ftruncate(fd, r.choice([0, 10, P, P + 100, 2 * P, 4 * P, 5 * P]))
        else:
            s.close(fd)
            self.fds.remove(fd)

    def op_brk(self) -> None:
        r = self.rng
        if self.chance(0.15):
            self.s.brk(None)
            return
        pages = r.randrange(HEAP_PAGES)
        self.s.brk(Heap(pages * P + (r.randrange(P) if self.chance(0.2) else 0)))
        if self.chance(0.5) and pages:
            self.s.touch(Heap(r.randrange(pages) * P), r.choice("rw"))

    def op_fork(self, budget: int) -> int:
        """fork ... endchild with a few operations in the child; returns operations used."""
        self.s.fork()
        self.depth += 1
        saved = (list(self.extents), list(self.fds))
        used = 1
        for _ in range(self.rng.randrange(1, min(8, max(2, budget)))):
            used += self.step(budget - used)
        if self.chance(0.1):
            self.s.exit()
        self.s.endchild()
        self.depth -= 1
        self.extents, self.fds = saved
        return used + 1

    def step(self, budget: int) -> int:
        """One operation (or a fork block); returns how many lines it used."""
        r = self.rng
        ops = [(self.op_mmap, 16), (self.op_munmap, 7), (self.op_mprotect, 9),
               (self.op_mremap, 5), (self.op_madvise, 8), (self.op_mlock, 4),
               (self.op_msync, 2), (self.op_mincore, 3), (self.op_touch, 16),
               (self.op_access, 6), (self.op_file, 5), (self.op_brk, 3), (self.op_stack, 1)]
        if self.depth < MAX_DEPTH and budget > 3 and r.random() < 0.04:
            return self.op_fork(budget)
        fn = r.choices([f for f, _ in ops], [w for _, w in ops])[0]
        before = len(self.s)
        fn()
        return len(self.s) - before


def generate(seed: int, index: int, length: int | None = None) -> Case:
    """Random script number *index* of *seed*: *length* lines (default 8-48), deterministic."""
    rng = random.Random(f"vmsim-conform:{seed}:{index}")
    n = length if length is not None else rng.randrange(8, 49)
    st = _State(rng)
    while len(st.s) < n:
        st.step(n - len(st.s))
    return Case(f"random/{seed}/{index}", tuple(st.s.lines), FILES, "random")


def generate_many(seed: int, count: int, length: int | None = None) -> list[Case]:
    return [generate(seed, i, length) for i in range(count)]
