"""Corpus: scripts written for the conformance harness itself.

They cover what the errno rows, the /proc golden scenarios and the merge
pictures do not: brk (growth, shrink, collision, a moved heap), fork with
copy-on-write in parent and child and ``exit``, file coherence between
mappings and ``pwrite``/``pread``/``ftruncate``, mremap moves and
MREMAP_DONTUNMAP with data, growsdown stacks and their guard gap, mlock
accounting, execute accesses, and madvise on anonymous, private-file and
shared-file memory.  Every step is observed by the harness (smaps, pagemap,
fault counts), so a script only has to do things.

Offsets: ``A`` and ``B`` are free spots of the region, ``S`` the top of a
growsdown stack there; ``H(n)`` is the initial program break plus n pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmsim.conform.files import FileSet, FileSpec
from vmsim.conform.script import Heap, Script

P = 4096
A = 0x100000
B = 0x400000
S = 0x2000000
RW = "PROT_READ|PROT_WRITE"
RO = "PROT_READ"
RX = "PROT_READ|PROT_EXEC"
PAF = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"
SAF = "MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED"
PF = "MAP_PRIVATE|MAP_FIXED"
SF = "MAP_SHARED|MAP_FIXED"
NOREPLACE = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE"
GROWSDOWN = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_GROWSDOWN"
MOVE = "MREMAP_MAYMOVE|MREMAP_FIXED"

#: Bytes whose first instruction is harmless with zero registers (see vmops.c).
SAFE = bytes([0x00, 0x11, 0x5A, 0xA5, 0xFF])


def safe_pattern(n: int, salt: int = 0) -> bytes:
    """n bytes of the safe alphabet, varying with the position (and salt)."""
    return bytes(SAFE[(i * 7 + i // 13 + salt) % len(SAFE)] for i in range(n))


FILES = FileSpec({
    "file.bin": safe_pattern(4 * P),
    "small.bin": safe_pattern(6000, 3),
    "empty.bin": b"",
})


def H(pages: int, extra: int = 0) -> Heap:
    """The initial break plus *pages* pages and *extra* bytes."""
    return Heap(pages * P + extra)


Build = Callable[[Script, FileSet], object]


@dataclass(frozen=True)
class Hand:
    """One hand-written script: id, category and how to build it."""

    id: str
    category: str
    build: Build


def anon(s: Script, addr: int = A, pages: int = 4, prot: str = RW, flags: str = PAF) -> Script:
    return s.mmap(addr, pages * P, prot, flags)


def write_pages(s: Script, addr: int, pages: int) -> Script:
    for i in range(pages):
        s.write_at(addr + i * P, bytes([0x11 * (i % 5 + 1)]))
    return s


# ------------------------------------------------------------------ brk
def brk_grow_shrink(s: Script, f: FileSet) -> None:
    s.brk(None).brk(H(3)).touch(H(0), "w").touch(H(1), "r").touch(H(2, 100), "w")
    s.brk(H(1)).touch(H(2), "r").touch(H(0), "r").brk(H(0)).brk(None)


def brk_unaligned(s: Script, f: FileSet) -> None:
    s.brk(H(1, 100)).brk(H(1, 200)).touch(H(1, 300), "w").brk(H(2)).brk(H(0, 1)).brk(H(0))


def brk_below_start(s: Script, f: FileSet) -> None:
    s.brk(H(-1)).brk(Heap(-0x100000)).brk(H(2)).brk(H(-1)).touch(H(1), "w").brk(None)


def brk_collision(s: Script, f: FileSet) -> None:
    s.mmap(H(4), P, RW, NOREPLACE).brk(H(3)).brk(H(4)).brk(H(3, 1)).brk(H(5))
    s.munmap(H(4), P).brk(H(6)).touch(H(5), "w")


def brk_collision_guard_gap(s: Script, f: FileSet) -> None:
    s.mmap(Heap(0x200000), 2 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE|MAP_GROWSDOWN")
    s.brk(Heap(0x100000)).brk(Heap(0x100000 - P)).brk(Heap(0x100000 + P)).brk(None)


def brk_next_to_mapping(s: Script, f: FileSet) -> None:
    s.mmap(H(2), 2 * P, RW, NOREPLACE).touch(H(2), "w").brk(H(2)).touch(H(1), "w")
    s.brk(H(1)).mmap(H(1), P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED").brk(H(3))


def brk_hole_then_shrink(s: Script, f: FileSet) -> None:
    s.brk(H(4)).touch(H(0), "w").touch(H(3), "w").munmap(H(1), P).brk(H(1)).brk(H(5))
    s.touch(H(4), "w").touch(H(2), "r")


def brk_mprotect_heap(s: Script, f: FileSet) -> None:
    s.brk(H(4)).touch(H(0), "w").mprotect(H(1), 2 * P, RO).touch(H(1), "w").brk(H(2))
    s.brk(H(6)).mprotect(H(1), P, RW)


def brk_fork(s: Script, f: FileSet) -> None:
    s.brk(H(2)).write_at(H(0), b"\x11\x5a").fork().brk(H(4)).touch(H(3), "w")
    s.read_at(H(0), 2).touch(H(0), "w").endchild().brk(None).read_at(H(0), 2).touch(H(3), "r")


def brk_mlockall_future(s: Script, f: FileSet) -> None:
    s.mlockall("MCL_FUTURE").brk(H(3)).brk(H(1)).munlockall().brk(H(2))


def brk_moved_heap(s: Script, f: FileSet) -> None:
    s.brk(H(2)).touch(H(0), "w").mremap(H(0), 2 * P, 2 * P, MOVE, A)
    s.brk(H(3)).touch(H(2), "w").read_at(A, 1).brk(H(0))


def brk_large(s: Script, f: FileSet) -> None:
    s.brk(Heap(0x100000)).touch(H(0), "w").touch(Heap(0xFF000), "w").madvise(H(0), P, "MADV_DONTNEED")
    s.brk(Heap(0x80000)).brk(Heap(0x40000 + 17))


# ------------------------------------------------------------------ fork
def fork_cow_parent_writes(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 3)
    s.fork().read_at(A, 1).read_at(A + P, 1).endchild()
    s.touch(A, "w").touch(A + P, "w").touch(A + 3 * P, "w").read_at(A, 2)


def fork_cow_child_writes(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 4)
    s.fork().touch(A, "w").write_at(A + P, b"\xa5").read_at(A, 1).read_at(A + P, 1).endchild()
    s.read_at(A, 1).read_at(A + P, 1).touch(A + 2 * P, "w")


def fork_nested(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 2)
    s.fork().fork().touch(A, "w").read_at(A, 1).endchild().touch(A + P, "w").endchild()
    s.read_at(A, 1).read_at(A + P, 1).touch(A, "w")


def fork_zero_page(s: Script, f: FileSet) -> None:
    anon(s).touch(A, "r").touch(A + P, "r").fork().touch(A, "w").read_at(A + P, 1).endchild()
    s.touch(A + P, "w").read_at(A, 1)


def fork_shared_anon(s: Script, f: FileSet) -> None:
    anon(s, flags=SAF).write_at(A, b"\x11").fork().write_at(A + P, b"\x5a").read_at(A, 1)
    s.endchild().read_at(A + P, 1).touch(A + 2 * P, "r")


def fork_dontfork_wipeonfork(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=6), A, 6)
    s.madvise(A, 2 * P, "MADV_DONTFORK").madvise(A + 4 * P, 2 * P, "MADV_WIPEONFORK")
    s.fork().read_at(A + 2 * P, 1).read_at(A + 4 * P, 1).touch(A + 5 * P, "w").touch(A, "r")
    s.endchild().read_at(A, 1).read_at(A + 4 * P, 1)


def fork_child_changes_layout(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=6), A, 6)
    s.fork().munmap(A + P, P).mprotect(A + 3 * P, 2 * P, RO).touch(A + 3 * P, "w")
    s.mremap(A + 4 * P, P, P, MOVE, B).read_at(B, 1).endchild()
    s.read_at(A + P, 1).touch(A + 3 * P, "w").read_at(A + 4 * P, 1)


def fork_file_private(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 3 * P, RW, PF, 3, 0).write_at(A, b"\x5a\x5a")
    s.read_at(A + P, 2).fork().write_at(A + P, b"\x00").read_at(A, 2).pread(3, P, 2)
    s.endchild().read_at(A + P, 2).pread(3, 0, 2)


def fork_file_shared(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 3 * P, RW, SF, 3, 0).read_at(A, 2)
    s.fork().write_at(A + P, b"\xa5\xa5").pwrite(3, 2 * P, b"\x11").endchild()
    s.read_at(A + P, 2).read_at(A + 2 * P, 1).pread(3, P, 2)


def fork_exit_early(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 2)
    s.fork().touch(A, "w").exit().touch(A + P, "w").munmap(A, 4 * P).endchild()
    s.read_at(A, 1).fork().fork().exit().endchild().touch(A + P, "w").endchild().read_at(A + P, 1)


def fork_mlocked(s: Script, f: FileSet) -> None:
    anon(s).mlock(A, 2 * P).fork().touch(A, "w").mlock(A + 2 * P, P).endchild().touch(A + 3 * P, "w")


def fork_many_vmas(s: Script, f: FileSet) -> None:
    anon(s, pages=8).mprotect(A + 2 * P, 2 * P, RO).mprotect(A + 6 * P, P, "PROT_NONE")
    write_pages(s, A, 2)
    s.fork().touch(A + 2 * P, "r").touch(A + 4 * P, "w").touch(A + 6 * P, "r").endchild()
    s.touch(A + 4 * P, "w").touch(A + 5 * P, "w")


# ------------------------------------------------------------------ files
def file_shared_sees_pwrite(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 2 * P, RO, SF, 3, 0).read_at(A, 4)
    s.pwrite(3, 1, b"\x5a\x5a").read_at(A, 4).pwrite(3, P + 8, b"\x11").read_at(A + P + 8, 1)


def file_private_until_cow(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 2 * P, RW, PF, 3, 0).read_at(A, 4)
    s.pwrite(3, 0, b"\xff\xff").read_at(A, 4).write_at(A + 2, b"\x00").pwrite(3, 0, b"\x11\x11")
    s.read_at(A, 4).pread(3, 0, 4).read_at(A + P, 2).pwrite(3, P, b"\xa5").read_at(A + P, 2)


def file_shared_write_pread(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 4 * P, RW, SF, 3, 0)
    s.write_at(A + 10, b"\x5a\x5a\x5a").pread(3, 8, 6).write_at(A + 3 * P, b"\x11").pread(3, 3 * P, 1)


def file_msync(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 4 * P, RW, SF, 3, 0).write_at(A, b"\xa5")
    s.msync(A, 4 * P, "MS_ASYNC").msync(A, P, "MS_SYNC").write_at(A + P, b"\x11")
    s.msync(A, 4 * P, "MS_INVALIDATE").msync(A, 4 * P, "MS_SYNC|MS_INVALIDATE").pread(3, P, 1)


def file_ftruncate_shrink(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 4 * P, RW, SF, 3, 0).touch(A + 3 * P, "r")
    s.ftruncate(3, P + 100).touch(A + 3 * P, "r").read_at(A + P + 90, 20).touch(A + 2 * P, "w")
    s.ftruncate(3, 4 * P).read_at(A + 3 * P, 1)


def file_ftruncate_private(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 4 * P, RW, PF, 3, 0).touch(A + 3 * P, "w")
    s.touch(A + 2 * P, "r").ftruncate(3, P).touch(A + 3 * P, "r").touch(A + 2 * P, "r")
    s.read_at(A, 1)


def file_grow_then_map(s: Script, f: FileSet) -> None:
    s.open(f.path("empty.bin"), "O_RDWR").mmap(A, 2 * P, RW, SF, 3, 0).touch(A, "r")
    s.ftruncate(3, 10).touch(A, "w").read_at(A, 12).pwrite(3, P + 5, b"\x11").touch(A + P, "r")
    s.pread(3, 0, 12)


def file_dontneed_private(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 3 * P, RW, PF, 3, 0).write_at(A, b"\x00\x00")
    s.touch(A + P, "r").madvise(A, 3 * P, "MADV_DONTNEED").read_at(A, 2).read_at(A + P, 1)


def file_dontneed_shared(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 3 * P, RW, SF, 3, 0).write_at(A, b"\x00\x00")
    s.madvise(A, 3 * P, "MADV_DONTNEED").read_at(A, 2).pread(3, 0, 2)


def file_remove_shared(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 4 * P, RW, SF, 3, 0).write_at(A + P, b"\x5a")
    s.madvise(A + P, 2 * P, "MADV_REMOVE").read_at(A + P, 2).pread(3, P, 2).read_at(A, 1)


def file_eof_partial_page(s: Script, f: FileSet) -> None:
    s.open(f.path("small.bin"), "O_RDWR").mmap(A, 3 * P, RW, PF, 3, 0).read_at(A + 5990, 20)
    s.touch(A + 2 * P, "r").mmap(B, 3 * P, RW, SF, 3, 0).write_at(B + 6000, b"\x5a")
    s.pread(3, 5990, 20).touch(B + 2 * P, "w")


def file_willneed_mincore(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDONLY").mmap(A, 4 * P, RO, PF, 3, 0).mincore(A, 4 * P)
    s.madvise(A, 2 * P, "MADV_WILLNEED").mincore(A, 4 * P).touch(A + 3 * P, "r").mincore(A, 4 * P)


def shmem_willneed_creates_nothing(s: Script, f: FileSet) -> None:
    """MADV_WILLNEED on shared anonymous memory only swaps pages in (shmem_swapin_range):
    it must not create pages that the next fault's fault-around would map."""
    anon(s, pages=3, flags=SAF).touch(A + P, "w").madvise(A, 3 * P, "MADV_WILLNEED")
    s.fork().touch(A, "r").mincore(A, 3 * P).endchild()


def file_read_faults(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDONLY").mmap(A, 4 * P, RO, PF, 3, 0).touch(A + 2 * P, "r")
    s.touch(A, "r").touch(A + 3 * P, "r").close(3).touch(A + P, "r").mincore(A, 4 * P)


def file_two_opens(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").open(f.path("file.bin"), "O_RDONLY")
    s.mmap(A, 2 * P, RW, SF, 3, 0).mmap(A + 2 * P, 2 * P, RO, SF, 4, 2 * P).write_at(A, b"\x11")
    s.pread(4, 0, 1).read_at(A + 2 * P, 1).mprotect(A + 2 * P, 2 * P, RW)


# ------------------------------------------------------------------ mremap
def mremap_grow_in_place(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=2), A, 2)
    s.mremap(A, 2 * P, 4 * P, 0, 0).touch(A + 3 * P, "w").read_at(A + P, 1)
    s.mremap(A, 4 * P, P, 0, 0).touch(A + P, "r")


def mremap_move_with_data(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 3)
    s.mremap(A + P, 2 * P, 3 * P, MOVE, B).read_at(B, 1).read_at(B + P, 1).touch(B + 2 * P, "w")
    s.touch(A + P, "r").read_at(A, 1)


def mremap_dontunmap(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 4)
    s.mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP", B)
    s.read_at(B, 1).read_at(A, 1).touch(A + P, "w").read_at(B + P, 1)


def mremap_fixed_replaces(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=2), A, 2)
    s.mmap(B, 4 * P, RO, PAF).touch(B + 3 * P, "r")
    s.mremap(A, 2 * P, 2 * P, MOVE, B + P).read_at(B + P, 1).touch(B, "r").touch(B + 3 * P, "r")


def mremap_shared_anon(s: Script, f: FileSet) -> None:
    anon(s, pages=2, flags=SAF).write_at(A, b"\x5a").mremap(A, 2 * P, 4 * P, 0, 0)
    s.touch(A + 3 * P, "w").mremap(A, 4 * P, 4 * P, MOVE, B).read_at(B, 1).read_at(B + 3 * P, 1)


def mremap_file(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDONLY").mmap(A, 2 * P, RO, PF, 3, 0).touch(A, "r")
    s.mremap(A, 2 * P, 4 * P, 0, 0).read_at(A + 3 * P, 1).mremap(A + P, P, P, MOVE, B)
    s.read_at(B, 1).touch(A + P, "r")


def mremap_locked(s: Script, f: FileSet) -> None:
    anon(s, pages=2).mlock(A, 2 * P).mremap(A, 2 * P, 4 * P, 0, 0).mremap(A, 4 * P, 4 * P, MOVE, B)
    s.munlock(B, 4 * P).mremap(B, 4 * P, 2 * P, 0, 0)


def mremap_shrink_grow_back(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 4)
    s.mremap(A, 4 * P, 2 * P, 0, 0).mremap(A, 2 * P, 4 * P, 0, 0).read_at(A + 3 * P, 1)
    s.read_at(A + P, 1)


# Linux 6.17+ remap_move(): a pure move (MREMAP_FIXED, old_len == new_len) may span VMAs
def mremap_move_several_vmas(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=1), A, 1).mmap(A + P, P, RO, PAF).mmap(A + 3 * P, P, RX, PAF)
    s.mmap(B, 5 * P, RO, PAF).touch(A + P, "r").mremap(A, 4 * P, 4 * P, MOVE, B)
    s.read_at(B, 1).touch(B + P, "r").touch(B + 2 * P, "r").touch(B + 3 * P, "x")
    s.touch(B + 4 * P, "r").touch(A, "r")


def mremap_move_split_ends(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=2), A, 2).mmap(A + 2 * P, 2 * P, RO, PAF).touch(A + 3 * P, "r")
    s.mremap(A + P, 2 * P, 2 * P, MOVE, B).read_at(B, 1).read_at(A, 1).touch(A + 3 * P, "r")


def mremap_move_gaps(s: Script, f: FileSet) -> None:
    s.mmap(A + P, P, RW, PAF).write_at(A + P, b"\x11").mmap(B, 6 * P, RX, PAF)
    s.mremap(A, 3 * P, 3 * P, MOVE, B).mremap(A + P, 4 * P, 4 * P, MOVE, B + P)
    s.read_at(B + P, 1).touch(B + 2 * P, "x").mmap(A, P, RW, PAF).mmap(A + 2 * P, P, RO, PAF)
    s.mremap(A, 3 * P, 3 * P, MOVE, B + 8 * P)


def mremap_move_into_own_tail(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=1), A, 1).mmap(A + P, 3 * P, RO, PAF).touch(A + 3 * P, "r")
    s.mremap(A, 2 * P, 2 * P, MOVE, A + 2 * P).read_at(A + 2 * P, 1).touch(A + 3 * P, "r")


def mremap_move_next_to_itself(s: Script, f: FileSet) -> None:
    anon(s, pages=8, prot="PROT_EXEC").mremap(A + 3 * P, 3 * P, 3 * P,
                                              "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP",
                                              A + 8 * P)
    anon(s, B, 8).mremap(B + 5 * P, 3 * P, 3 * P, MOVE, B + 8 * P).touch(B + 9 * P, "w")
    s.mremap(B + 8 * P, 3 * P, 3 * P, MOVE, B + 5 * P).read_at(B + 6 * P, 1)
    anon(s, A + 0x10000 + 2 * P, 4).mremap(A + 0x10000 + 2 * P, 2 * P, 2 * P,
                                           "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP",
                                           A + 0x10000)


def mremap_move_mixed(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 2 * P, RO, PF, 3, 0).touch(A, "r")
    s.mmap(A + 2 * P, P, RW, SAF).write_at(A + 2 * P, b"\x5a")
    s.mmap(A + 3 * P, 2 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_LOCKED")
    s.mremap(A, 5 * P, 5 * P, MOVE, B).read_at(B, 4).read_at(B + 2 * P, 1).touch(B + P, "r")
    s.touch(B + 4 * P, "w")


def mremap_move_dontunmap_several(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=1), A, 1).mmap(A + 2 * P, 2 * P, RW, PAF).touch(A + 3 * P, "w")
    s.mremap(A, 3 * P, 3 * P, "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP", B)
    s.read_at(B, 1).read_at(A, 1).touch(A + 3 * P, "w").read_at(B + 3 * P, 1)


def mremap_move_in_child(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=1), A, 1).mmap(A + 2 * P, P, RW, PAF).write_at(A + 2 * P, b"\x22")
    s.fork().mremap(A, 3 * P, 3 * P, MOVE, B).write_at(B, b"\x33").read_at(B + 2 * P, 1)
    s.endchild().read_at(A, 1).touch(A + 2 * P, "w")


def mremap_move_guard(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=3), A, 3).mmap(A + 4 * P, P, RO, PAF)
    s.madvise(A + P, P, "MADV_GUARD_INSTALL").mremap(A, 5 * P, 5 * P, MOVE, B)
    s.touch(B + P, "r").read_at(B + 2 * P, 1).touch(B + 4 * P, "r")


# Linux 6.18 check_prep_vma(): -EFAULT before anything is unmapped
def mremap_efault_keeps_destination(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=1), A, 1).mmap(B, 2 * P, RO, PAF).touch(B, "r")
    s.mremap(A, 2 * P, 3 * P, MOVE, B).mremap(A + 8 * P, P, 2 * P, MOVE, B)
    s.mmap(A + P, 2 * P, RO, PAF).mremap(A, 3 * P, 2 * P, MOVE, B)
    s.mremap(A, 2 * P, P, MOVE, B).read_at(B, 1).touch(B + P, "r")


def mremap_dontunmap_unlinks_anon_vma(s: Script, f: FileSet) -> None:
    anon(s, pages=3).madvise(A + 2 * P, P, "MADV_DONTDUMP").touch(A + 2 * P, "w").touch(A, "w")
    s.madvise(A + 2 * P, P, "MADV_DODUMP")
    s.mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP", B)
    s.madvise(A + 2 * P, P, "MADV_DONTDUMP").madvise(A + 2 * P, P, "MADV_DODUMP").touch(A, "w")


def mremap_dontunmap_locked(s: Script, f: FileSet) -> None:
    s.mmap(A, 4 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_LOCKED")
    s.mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP", B)
    s.touch(A, "w").mremap(B, 2 * P, 4 * P, MOVE, B + 8 * P)


def mremap_dontunmap_hint(s: Script, f: FileSet) -> None:
    write_pages(anon(s, pages=2), A, 2)
    s.mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_DONTUNMAP", A + P)
    s.mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_DONTUNMAP", B).read_at(B + P, 1)


# ------------------------------------------------------------------ stacks
def stack_grows_down(s: Script, f: FileSet) -> None:
    s.mmap(S - 2 * P, 2 * P, RW, GROWSDOWN).touch(S - P, "w").touch(S - 3 * P, "w")
    s.touch(S - 10 * P, "r").touch(S - 20 * P - 100, "w").read_at(S - 20 * P - 100, 1)


def stack_guard_gap(s: Script, f: FileSet) -> None:
    s.mmap(S - 2 * P, 2 * P, RW, GROWSDOWN).mmap(S - 0x100000 - 4 * P, P, RO, PAF)
    s.touch(S - 0x100000 + 4 * P, "w").touch(S - 0x100000 + 8 * P, "w").munmap(S - 0x100000 - 4 * P, P)
    s.touch(S - 0x100000 + 4 * P, "w")


def stack_mprotect_growsdown(s: Script, f: FileSet) -> None:
    s.mmap(S - 4 * P, 4 * P, RW, GROWSDOWN).touch(S - 8 * P, "w")
    s.mprotect(S - 2 * P, P, "PROT_READ|PROT_GROWSDOWN").touch(S - 8 * P, "w").touch(S - 3 * P, "w")


def stack_munmap_part(s: Script, f: FileSet) -> None:
    s.mmap(S - 4 * P, 4 * P, RW, GROWSDOWN).munmap(S - 2 * P, P).touch(S - 3 * P, "w")
    s.touch(S - 6 * P, "w").touch(S - 2 * P, "r")


# ------------------------------------------------------------------ mlock
def mlock_partial(s: Script, f: FileSet) -> None:
    anon(s, pages=6).mlock(A + P, 2 * P).touch(A + 4 * P, "w").mlock(A + 3 * P + 5, 10)
    s.munlock(A, 6 * P).mlock(A, 6 * P).munlock(A + 2 * P, P)


def mlock_onfault(s: Script, f: FileSet) -> None:
    anon(s, pages=4).mlock2(A, 4 * P, "MLOCK_ONFAULT").touch(A + P, "w").touch(A + 3 * P, "r")
    s.mlock(A, 2 * P).munlock(A, 4 * P)


def mlock_map_locked(s: Script, f: FileSet) -> None:
    s.mmap(A, 3 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_LOCKED").mremap(A, 3 * P, 5 * P, 0, 0)
    s.munlock(A + P, P).munmap(A + 4 * P, P)


def mlockall_future(s: Script, f: FileSet) -> None:
    s.mlockall("MCL_FUTURE").mmap(A, 2 * P, RW, PAF).mmap(B, 2 * P, RO, "MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED")
    s.munlockall().mmap(A + 2 * P, P, RW, PAF).mlockall("MCL_FUTURE|MCL_ONFAULT")
    s.mmap(A + 4 * P, 2 * P, RW, PAF).touch(A + 4 * P, "w").munlockall()


def mlock_file(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDWR").mmap(A, 4 * P, RW, SF, 3, 0).mlock(A, 2 * P)
    s.mmap(B, 4 * P, RW, PF, 3, 0).mlock(B, 4 * P).touch(B, "w").munlock(B, P)


# ------------------------------------------------------------------ execute
def exec_anon(s: Script, f: FileSet) -> None:
    anon(s, pages=3, prot="PROT_READ|PROT_WRITE|PROT_EXEC").touch(A, "x").touch(A + P, "w")
    s.touch(A + P, "x").touch(A + 3 * P, "x")


def exec_denied(s: Script, f: FileSet) -> None:
    anon(s, pages=2).touch(A, "x").touch(A, "w").touch(A, "x").mprotect(A, P, RX).touch(A, "x")
    s.mprotect(A + P, P, "PROT_EXEC").touch(A + P, "x").touch(A + P, "r")


def exec_file(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDONLY").mmap(A, 4 * P, RX, PF, 3, 0).touch(A + P, "x")
    s.touch(A + 3 * P, "x").mmap(B, P, RO, PF, 3, 0).touch(B, "x")


# ------------------------------------------------------------------ madvise
def madvise_dontneed_anon(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 4)
    s.madvise(A + P, 2 * P, "MADV_DONTNEED").read_at(A + P, 1).read_at(A, 1).touch(A + 2 * P, "w")


def madvise_free(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 4)
    s.madvise(A, 4 * P, "MADV_FREE").read_at(A, 1).touch(A + P, "w").madvise(A, P, "MADV_DONTNEED")


def madvise_cold_pageout(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 2)
    s.open(f.path("file.bin"), "O_RDONLY").mmap(B, 4 * P, RO, PF, 3, 0).touch(B, "r").touch(B + P, "r")
    s.madvise(A, 4 * P, "MADV_COLD").madvise(B, 4 * P, "MADV_COLD").madvise(A, 4 * P, "MADV_PAGEOUT")
    s.madvise(B, 4 * P, "MADV_PAGEOUT").read_at(A, 1).touch(B, "r")


def madvise_populate(s: Script, f: FileSet) -> None:
    anon(s).madvise(A, 2 * P, "MADV_POPULATE_READ").madvise(A + 2 * P, 2 * P, "MADV_POPULATE_WRITE")
    s.open(f.path("file.bin"), "O_RDWR").mmap(B, 4 * P, RW, SF, 3, 0).madvise(B, 4 * P, "MADV_POPULATE_READ")
    s.madvise(B, 2 * P, "MADV_POPULATE_WRITE").mmap(B + 8 * P, 2 * P, RW, PF, 3, 0)
    s.madvise(B + 8 * P, 2 * P, "MADV_POPULATE_WRITE")


def madvise_guard(s: Script, f: FileSet) -> None:
    write_pages(anon(s), A, 4)
    s.madvise(A + P, 2 * P, "MADV_GUARD_INSTALL").touch(A + P, "r").touch(A + 3 * P, "w")
    s.madvise(A + P, 2 * P, "MADV_DONTNEED").madvise(A + 2 * P, P, "MADV_GUARD_REMOVE")
    s.touch(A + 2 * P, "w").touch(A + P, "w").fork().touch(A + P, "r").endchild()


def madvise_dontneed_locked(s: Script, f: FileSet) -> None:
    anon(s).mlock(A, 4 * P).madvise(A, 2 * P, "MADV_DONTNEED_LOCKED").touch(A, "r")


def madvise_shared_anon(s: Script, f: FileSet) -> None:
    anon(s, flags=SAF).write_at(A, b"\x5a").madvise(A, 2 * P, "MADV_DONTNEED").read_at(A, 1)
    s.touch(A + P, "w").madvise(A + P, P, "MADV_REMOVE").read_at(A + P, 1)


# ------------------------------------------------------------------ MAP_FIXED
def fixed_over_several(s: Script, f: FileSet) -> None:
    s.open(f.path("file.bin"), "O_RDONLY").mmap(A, 2 * P, RO, PF, 3, 0)
    anon(s, A + 2 * P, 2).mmap(A + 4 * P, P, RW, SAF).touch(A + P, "r").touch(A + 2 * P, "w")
    s.mmap(A + P, 4 * P, RW, PAF).read_at(A + P, 1).read_at(A, 1)


def fixed_noreplace(s: Script, f: FileSet) -> None:
    anon(s, pages=2).mmap(A + 2 * P, P, RW, NOREPLACE).mmap(A + P, 2 * P, RW, NOREPLACE)
    s.mmap(A - P, P, RO, NOREPLACE).touch(A - P, "r")


HANDWRITTEN: list[Hand] = [
    Hand("brk-grow-shrink", "brk", brk_grow_shrink),
    Hand("brk-unaligned", "brk", brk_unaligned),
    Hand("brk-below-start", "brk", brk_below_start),
    Hand("brk-collision", "brk", brk_collision),
    Hand("brk-collision-guard-gap", "brk", brk_collision_guard_gap),
    Hand("brk-next-to-mapping", "brk", brk_next_to_mapping),
    Hand("brk-hole-then-shrink", "brk", brk_hole_then_shrink),
    Hand("brk-mprotect-heap", "brk", brk_mprotect_heap),
    Hand("brk-fork", "brk", brk_fork),
    Hand("brk-mlockall-future", "brk", brk_mlockall_future),
    Hand("brk-moved-heap", "brk", brk_moved_heap),
    Hand("brk-large", "brk", brk_large),
    Hand("fork-cow-parent-writes", "fork", fork_cow_parent_writes),
    Hand("fork-cow-child-writes", "fork", fork_cow_child_writes),
    Hand("fork-nested", "fork", fork_nested),
    Hand("fork-zero-page", "fork", fork_zero_page),
    Hand("fork-shared-anon", "fork", fork_shared_anon),
    Hand("fork-dontfork-wipeonfork", "fork", fork_dontfork_wipeonfork),
    Hand("fork-child-changes-layout", "fork", fork_child_changes_layout),
    Hand("fork-file-private", "fork", fork_file_private),
    Hand("fork-file-shared", "fork", fork_file_shared),
    Hand("fork-exit-early", "fork", fork_exit_early),
    Hand("fork-mlocked", "fork", fork_mlocked),
    Hand("fork-many-vmas", "fork", fork_many_vmas),
    Hand("file-shared-sees-pwrite", "file", file_shared_sees_pwrite),
    Hand("file-private-until-cow", "file", file_private_until_cow),
    Hand("file-shared-write-pread", "file", file_shared_write_pread),
    Hand("file-msync", "file", file_msync),
    Hand("file-ftruncate-shrink", "file", file_ftruncate_shrink),
    Hand("file-ftruncate-private", "file", file_ftruncate_private),
    Hand("file-grow-then-map", "file", file_grow_then_map),
    Hand("file-dontneed-private", "file", file_dontneed_private),
    Hand("file-dontneed-shared", "file", file_dontneed_shared),
    Hand("file-remove-shared", "file", file_remove_shared),
    Hand("file-eof-partial-page", "file", file_eof_partial_page),
    Hand("file-willneed-mincore", "file", file_willneed_mincore),
    Hand("shmem-willneed-creates-nothing", "file", shmem_willneed_creates_nothing),
    Hand("file-read-faults", "file", file_read_faults),
    Hand("file-two-opens", "file", file_two_opens),
    Hand("mremap-grow-in-place", "mremap", mremap_grow_in_place),
    Hand("mremap-move-with-data", "mremap", mremap_move_with_data),
    Hand("mremap-dontunmap", "mremap", mremap_dontunmap),
    Hand("mremap-fixed-replaces", "mremap", mremap_fixed_replaces),
    Hand("mremap-shared-anon", "mremap", mremap_shared_anon),
    Hand("mremap-file", "mremap", mremap_file),
    Hand("mremap-locked", "mremap", mremap_locked),
    Hand("mremap-shrink-grow-back", "mremap", mremap_shrink_grow_back),
    Hand("mremap-move-several-vmas", "mremap", mremap_move_several_vmas),
    Hand("mremap-move-split-ends", "mremap", mremap_move_split_ends),
    Hand("mremap-move-gaps", "mremap", mremap_move_gaps),
    Hand("mremap-move-into-own-tail", "mremap", mremap_move_into_own_tail),
    Hand("mremap-move-next-to-itself", "mremap", mremap_move_next_to_itself),
    Hand("mremap-move-mixed", "mremap", mremap_move_mixed),
    Hand("mremap-move-dontunmap-several", "mremap", mremap_move_dontunmap_several),
    Hand("mremap-move-in-child", "mremap", mremap_move_in_child),
    Hand("mremap-move-guard", "mremap", mremap_move_guard),
    Hand("mremap-efault-keeps-destination", "mremap", mremap_efault_keeps_destination),
    Hand("mremap-dontunmap-unlinks-anon-vma", "mremap", mremap_dontunmap_unlinks_anon_vma),
    Hand("mremap-dontunmap-locked", "mremap", mremap_dontunmap_locked),
    Hand("mremap-dontunmap-hint", "mremap", mremap_dontunmap_hint),
    Hand("stack-grows-down", "stack", stack_grows_down),
    Hand("stack-guard-gap", "stack", stack_guard_gap),
    Hand("stack-mprotect-growsdown", "stack", stack_mprotect_growsdown),
    Hand("stack-munmap-part", "stack", stack_munmap_part),
    Hand("mlock-partial", "mlock", mlock_partial),
    Hand("mlock-onfault", "mlock", mlock_onfault),
    Hand("mlock-map-locked", "mlock", mlock_map_locked),
    Hand("mlockall-future", "mlock", mlockall_future),
    Hand("mlock-file", "mlock", mlock_file),
    Hand("exec-anon", "exec", exec_anon),
    Hand("exec-denied", "exec", exec_denied),
    Hand("exec-file", "exec", exec_file),
    Hand("madvise-dontneed-anon", "madvise", madvise_dontneed_anon),
    Hand("madvise-free", "madvise", madvise_free),
    Hand("madvise-cold-pageout", "madvise", madvise_cold_pageout),
    Hand("madvise-populate", "madvise", madvise_populate),
    Hand("madvise-guard", "madvise", madvise_guard),
    Hand("madvise-dontneed-locked", "madvise", madvise_dontneed_locked),
    Hand("madvise-shared-anon", "madvise", madvise_shared_anon),
    Hand("fixed-over-several", "fixed", fixed_over_several),
    Hand("fixed-noreplace", "fixed", fixed_noreplace),
]
