"""Corpus: /proc/<pid>/maps and smaps scenarios, compared byte for byte.

Each scenario is a script (:mod:`vmsim.conform.script`) of mmap, mprotect,
munmap, mremap, madvise, mlock and page-touching operations with ``maps``
and ``smaps`` dumps in between.  tests/fs/test_procfs_golden.py compares the
dumps of vmsim and the host kernel line for line; the conformance corpus
runs the same scripts with every step observed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmsim.conform.files import FileSet
from vmsim.conform.script import Script

P = 4096
A = 0x100000
RW = "PROT_READ|PROT_WRITE"
PAF = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"
SAF = "MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED"

FILES: dict[str, bytes] = {
    "lib.so": bytes(range(256)) * 64,  # 4 pages
    "data.bin": b"D" * (3 * P),
}

Build = Callable[[Script, FileSet], object]


@dataclass(frozen=True)
class Scenario:
    id: str
    build: Build


def dump(s: Script) -> Script:
    return s.maps().smaps()


def s_anon_basic(s: Script, f: FileSet) -> None:
    s.mmap(A, 3 * P, RW, PAF)
    dump(s)
    s.touch(A, "w").touch(A + P, "r")
    dump(s)


def s_anon_split_merge(s: Script, f: FileSet) -> None:
    s.mmap(A, 8 * P, RW, PAF).touch(A + 2 * P, "w").touch(A + 5 * P, "w")
    s.mprotect(A + 2 * P, 2 * P, "PROT_READ")
    dump(s)
    s.mprotect(A + 2 * P, 2 * P, RW)
    dump(s)
    s.munmap(A + 3 * P, P)
    dump(s)
    s.mmap(A + 3 * P, P, RW, PAF)
    dump(s)
    s.mprotect(A, P, "PROT_NONE").mprotect(A + 7 * P, P, "PROT_READ|PROT_EXEC")
    dump(s)


def s_adjacent_mmaps_merge(s: Script, f: FileSet) -> None:
    s.mmap(A, 2 * P, RW, PAF).mmap(A + 2 * P, 2 * P, RW, PAF)
    s.mmap(A + 4 * P, P, "PROT_READ", PAF).mmap(A + 5 * P, P, RW, PAF)
    dump(s)


def s_zero_page_and_cow(s: Script, f: FileSet) -> None:
    s.mmap(A, 4 * P, RW, PAF)
    s.touch(A, "r").touch(A + P, "r").touch(A + P, "w").write_at(A + 2 * P, b"xyz")
    dump(s)


def s_private_file(s: Script, f: FileSet) -> None:
    s.open(f.path("lib.so"), "O_RDONLY")
    s.mmap(A, 2 * P, "PROT_READ|PROT_EXEC", "MAP_PRIVATE|MAP_FIXED", 3, 0)
    s.mmap(A + 2 * P, P, "PROT_READ", "MAP_PRIVATE|MAP_FIXED", 3, 2 * P)
    s.mmap(A + 3 * P, P, RW, "MAP_PRIVATE|MAP_FIXED", 3, 3 * P)
    s.touch(A, "r").touch(A + 2 * P, "r").touch(A + 3 * P, "w")
    dump(s)
    s.close(3)
    dump(s)


def s_shared_file(s: Script, f: FileSet) -> None:
    s.open(f.path("data.bin"), "O_RDWR")
    s.mmap(A, 4 * P, RW, "MAP_SHARED|MAP_FIXED", 3, 0)
    s.touch(A, "r").write_at(A + P, b"hello").msync(A, 4 * P, "MS_SYNC")
    dump(s)
    s.mprotect(A + P, P, "PROT_READ")
    dump(s)


def s_private_file_cow_mremap(s: Script, f: FileSet) -> None:
    s.open(f.path("lib.so"), "O_RDWR")
    s.mmap(A, 4 * P, RW, "MAP_PRIVATE|MAP_FIXED", 3, 0)
    s.write_at(A + P, b"cow").touch(A + 2 * P, "r")
    dump(s)
    s.mremap(A, 4 * P, 4 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", A + 0x200000)
    dump(s)
    s.madvise(A + 0x200000 + P, P, "MADV_DONTNEED").read_at(A + 0x200000 + P, 4)
    s.munmap(A + 0x200000 + 3 * P, P)
    dump(s)


def s_shared_anon(s: Script, f: FileSet) -> None:
    s.mmap(A, 2 * P, RW, SAF).touch(A, "w")
    dump(s)


def s_growsdown(s: Script, f: FileSet) -> None:
    s.mmap(A + 0x400000, 2 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_GROWSDOWN")
    dump(s)
    s.touch(A + 0x400000, "w").touch(A + 0x400000 - P, "w").touch(A + 0x400000 - 3 * P, "r")
    dump(s)


def s_mlock(s: Script, f: FileSet) -> None:
    s.mmap(A, 6 * P, RW, PAF)
    s.mlock(A + P, 2 * P)
    dump(s)
    s.mlock2(A + 4 * P, P, "MLOCK_ONFAULT")
    dump(s)
    s.munlock(A, 6 * P)
    dump(s)
    s.mmap(A + 8 * P, 2 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_LOCKED")
    dump(s)


def s_mremap(s: Script, f: FileSet) -> None:
    s.mmap(A, 2 * P, RW, PAF).touch(A, "w")
    s.mremap(A, 2 * P, 4 * P, 0, 0)
    dump(s)
    s.mremap(A, 4 * P, 4 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", A + 0x100000)
    dump(s)
    s.mremap(A + 0x100000, P, P, "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP", A)
    dump(s)
    s.mremap(A + 0x100000, 4 * P, P, 0, 0)
    dump(s)


def s_madvise_flags(s: Script, f: FileSet) -> None:
    s.mmap(A, 8 * P, RW, PAF).touch(A, "w").touch(A + P, "w")
    s.madvise(A, P, "MADV_DONTFORK").madvise(A + P, P, "MADV_DONTDUMP")
    s.madvise(A + 2 * P, P, "MADV_SEQUENTIAL").madvise(A + 3 * P, P, "MADV_RANDOM")
    s.madvise(A + 4 * P, P, "MADV_WIPEONFORK").madvise(A + 5 * P, P, "MADV_NOHUGEPAGE")
    dump(s)
    s.madvise(A, 2 * P, "MADV_DONTNEED")
    dump(s)


def s_fork_cow(s: Script, f: FileSet) -> None:
    s.mmap(A, 4 * P, RW, PAF).touch(A, "w").touch(A + P, "w").touch(A + 2 * P, "r")
    s.fork()
    dump(s)
    s.touch(A, "w")
    dump(s)
    s.endchild()
    dump(s)


def s_prot_none_and_exec(s: Script, f: FileSet) -> None:
    s.mmap(A, P, "PROT_NONE", PAF).mmap(A + P, P, "PROT_EXEC", PAF)
    s.mmap(A + 2 * P, P, "PROT_WRITE", PAF).mmap(
        A + 3 * P, P, "PROT_READ|PROT_WRITE|PROT_EXEC", PAF
    )
    dump(s)


SCENARIOS: list[Scenario] = [
    Scenario("anon-basic", s_anon_basic),
    Scenario("anon-split-merge", s_anon_split_merge),
    Scenario("adjacent-mmaps-merge", s_adjacent_mmaps_merge),
    Scenario("zero-page-and-cow", s_zero_page_and_cow),
    Scenario("private-file", s_private_file),
    Scenario("shared-file", s_shared_file),
    Scenario("private-file-cow-mremap", s_private_file_cow_mremap),
    Scenario("shared-anon", s_shared_anon),
    Scenario("growsdown", s_growsdown),
    Scenario("mlock", s_mlock),
    Scenario("mremap", s_mremap),
    Scenario("madvise-flags", s_madvise_flags),
    Scenario("fork-cow", s_fork_cow),
    Scenario("prot-none-and-exec", s_prot_none_and_exec),
]
