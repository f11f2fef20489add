"""Corpus: error returns of the memory system calls, one row per case.

Each row is a short script (:mod:`vmsim.conform.script`): some set-up lines
and, last, the call under test.  ``expect`` is what the row is about - the
host's result of the last line - so a row that no longer exercises its case
on a new kernel fails loudly instead of silently comparing something else.
tests/mm/test_errno_vs_host.py runs every row on both sides and compares
them line for line; :mod:`vmsim.conform.corpus` runs them as conformance
scripts (every step observed).

Addresses are relative to a 2 MiB-aligned base (see vmops.c); ``A`` is an
empty spot well inside the 64 MiB region.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from vmsim.conform.files import FileSet
from vmsim.conform.script import Abs, Script

P = 4096
A = 0x100000
B = 0x400000
RW = "PROT_READ|PROT_WRITE"
PA = "MAP_PRIVATE|MAP_ANONYMOUS"
PAF = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"
SAF = "MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED"
TASK_SIZE = (1 << 47) - P
CAP_IPC_LOCK = 14
CAP_SYS_RAWIO = 17
RLIMIT_MEMLOCK = 8

#: The files every row can use; created identically for the host and vmsim.
FILES: dict[str, bytes] = {
    "data.bin": bytes(range(256)) * 48,  # 3 pages
    "empty.bin": b"",
}
DIRS = ("dir",)


def ret(name: str) -> str:
    """The output line for a failure with errno *name*, e.g. ``"ret -22"``."""
    return f"ret -{getattr(errno, name)}"


OK = "ret 0"


def at(rel: int) -> str:
    """The output line of an mmap/mremap that returned base + *rel*."""
    return f"ret +{rel:#x}"


Build = Callable[[Script, FileSet], object]


@dataclass(frozen=True)
class Case:
    id: str
    build: Build
    expect: str


def anon(s: Script, addr: int = A, pages: int = 4, prot: str = RW) -> Script:
    return s.mmap(addr, pages * P, prot, PAF)


def shared_anon(s: Script, addr: int = A, pages: int = 4) -> Script:
    return s.mmap(addr, pages * P, RW, SAF)


def hole(s: Script) -> Script:
    """A, A+P mapped; A+P..A+2P a hole; A+2P mapped."""
    anon(s, A, 1)
    return anon(s, A + 2 * P, 1)


def file_map(
    s: Script,
    f: FileSet,
    oflags: str,
    prot: str,
    mflags: str,
    name: str = "data.bin",
    pages: int = 1,
) -> Script:
    """Open *name* (it becomes fd 3) and map it at A."""
    s.open(f.path(name), oflags)
    return s.mmap(A, pages * P, prot, mflags, 3, 0)


CASES: list[Case] = [
    # ------------------------------------------------------------------ mmap
    Case("mmap-len-zero", lambda s, f: s.mmap(A, 0, RW, PAF), ret("EINVAL")),
    Case("mmap-fixed-unaligned", lambda s, f: s.mmap(A + 1, P, RW, PAF), ret("EINVAL")),
    Case(
        "mmap-noreplace-unaligned",
        lambda s, f: s.mmap(A + 1, P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE"),
        ret("EINVAL"),
    ),
    Case("mmap-hint-unaligned-is-rounded", lambda s, f: s.mmap(A + 1, P, RW, PA), at(A)),
    Case("mmap-len-unaligned-is-rounded", lambda s, f: s.mmap(A, 1, RW, PAF).maps(), "end"),
    Case("mmap-anon-offset-unaligned", lambda s, f: s.mmap(A, P, RW, PAF, -1, 1), ret("EINVAL")),
    Case("mmap-anon-offset-aligned-ok", lambda s, f: s.mmap(A, P, RW, PAF, -1, P), at(A)),
    Case("mmap-anon-ignores-fd", lambda s, f: s.mmap(A, P, RW, PAF, 99, 0), at(A)),
    Case(
        "mmap-type-zero",
        lambda s, f: s.mmap(A, P, RW, "MAP_ANONYMOUS|MAP_FIXED"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-type-0xf",
        lambda s, f: s.mmap(A, P, RW, "MAP_TYPE|MAP_ANONYMOUS|MAP_FIXED"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-shared-validate-anon",
        lambda s, f: s.mmap(A, P, RW, "MAP_SHARED_VALIDATE|MAP_ANONYMOUS|MAP_FIXED"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-shared-validate-unknown-flag",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_SHARED_VALIDATE|MAP_FIXED|0x400"),
        ret("EOPNOTSUPP"),
    ),
    Case(
        "mmap-shared-validate-sync-non-dax",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_SHARED_VALIDATE|MAP_FIXED|MAP_SYNC"),
        ret("EOPNOTSUPP"),
    ),
    Case(
        "mmap-shared-validate-known-flags-ok",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_SHARED_VALIDATE|MAP_FIXED|MAP_POPULATE"),
        at(A),
    ),
    Case(
        "mmap-shared-ignores-unknown-flag",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_SHARED|MAP_FIXED|0x400"),
        at(A),
    ),
    Case(
        "mmap-private-map-sync-non-dax",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_PRIVATE|MAP_FIXED|MAP_SYNC"),
        ret("EOPNOTSUPP"),
    ),
    Case("mmap-droppable-anon-ok", lambda s, f: s.mmap(A, P, RW, "MAP_DROPPABLE|MAP_ANONYMOUS|MAP_FIXED"), at(A)),
    Case(
        "mmap-droppable-locked",
        lambda s, f: s.mmap(A, P, RW, "MAP_DROPPABLE|MAP_ANONYMOUS|MAP_FIXED|MAP_LOCKED"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-droppable-growsdown",
        lambda s, f: s.mmap(A, P, RW, "MAP_DROPPABLE|MAP_ANONYMOUS|MAP_FIXED|MAP_GROWSDOWN"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-keeponfork-droppable",
        lambda s, f: s.mmap(A, P, RW, "MAP_DROPPABLE|MAP_ANONYMOUS|MAP_FIXED").madvise(A, P, "MADV_KEEPONFORK"),
        ret("EINVAL"),
    ),
    Case(
        "mlock-droppable-is-a-no-op",
        lambda s, f: s.mmap(A, P, RW, "MAP_DROPPABLE|MAP_ANONYMOUS|MAP_FIXED").mlock(A, P),
        OK,
    ),
    Case("mmap-prot-unknown-bit-ignored", lambda s, f: s.mmap(A, P, 0x10, PAF), at(A)),
    Case(
        "mmap-no-fd-without-anon",
        lambda s, f: s.mmap(A, P, RW, "MAP_PRIVATE|MAP_FIXED"),
        ret("EBADF"),
    ),
    Case(
        "mmap-bad-fd",
        lambda s, f: s.mmap(A, P, "PROT_READ", "MAP_PRIVATE|MAP_FIXED", 99, 0),
        ret("EBADF"),
    ),
    Case(
        "mmap-closed-fd",
        lambda s, f: (
            s.open(f.path("data.bin"), "O_RDONLY")
            .close(3)
            .mmap(A, P, "PROT_READ", "MAP_PRIVATE|MAP_FIXED", 3, 0)
        ),
        ret("EBADF"),
    ),
    Case(
        "mmap-len-huge",
        lambda s, f: s.mmap(None, 0xFFFF_FFFF_FFFF_0000, RW, PA),
        ret("ENOMEM"),
    ),
    Case("mmap-len-task-size", lambda s, f: s.mmap(None, 1 << 47, RW, PA), ret("ENOMEM")),
    Case(
        "mmap-fixed-above-task-size", lambda s, f: s.mmap(Abs(1 << 47), P, RW, PAF), ret("ENOMEM")
    ),
    Case(
        "mmap-fixed-crossing-task-size",
        lambda s, f: s.mmap(Abs(TASK_SIZE - P), 2 * P, RW, PAF),
        ret("ENOMEM"),
    ),
    Case(
        "mmap-noreplace-exact",
        lambda s, f: anon(s).mmap(A, 4 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE"),
        ret("EEXIST"),
    ),
    Case(
        "mmap-noreplace-overlap-start",
        lambda s, f: anon(s).mmap(
            A - P, 2 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE"
        ),
        ret("EEXIST"),
    ),
    Case(
        "mmap-noreplace-free-ok",
        lambda s, f: anon(s).mmap(
            A + 4 * P, P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE"
        ),
        at(A + 4 * P),
    ),
    Case(
        "mmap-fixed-replaces",
        lambda s, f: anon(s).mmap(A + P, P, "PROT_READ", PAF).maps(),
        "end",
    ),
    Case(
        "mmap-shared-write-rdonly-fd",
        lambda s, f: file_map(s, f, "O_RDONLY", RW, "MAP_SHARED|MAP_FIXED"),
        ret("EACCES"),
    ),
    Case(
        "mmap-shared-read-rdonly-fd-ok",
        lambda s, f: file_map(s, f, "O_RDONLY", "PROT_READ", "MAP_SHARED|MAP_FIXED"),
        at(A),
    ),
    Case(
        "mmap-private-write-rdonly-fd-ok",
        lambda s, f: file_map(s, f, "O_RDONLY", RW, "MAP_PRIVATE|MAP_FIXED"),
        at(A),
    ),
    Case(
        "mmap-wronly-fd",
        lambda s, f: file_map(s, f, "O_WRONLY", "PROT_READ", "MAP_PRIVATE|MAP_FIXED"),
        ret("EACCES"),
    ),
    Case(
        "mmap-wronly-fd-shared-write",
        lambda s, f: file_map(s, f, "O_WRONLY", "PROT_WRITE", "MAP_SHARED|MAP_FIXED"),
        ret("EACCES"),
    ),
    Case(
        "mmap-directory",
        lambda s, f: s.open(f.path("dir"), "O_RDONLY|O_DIRECTORY").mmap(
            A, P, "PROT_READ", "MAP_PRIVATE|MAP_FIXED", 3, 0
        ),
        ret("ENODEV"),
    ),
    Case(
        "mmap-file-offset-unaligned",
        lambda s, f: s.open(f.path("data.bin"), "O_RDONLY").mmap(
            A, P, "PROT_READ", "MAP_PRIVATE|MAP_FIXED", 3, 100
        ),
        ret("EINVAL"),
    ),
    Case(
        "mmap-file-offset-overflow",
        lambda s, f: s.open(f.path("data.bin"), "O_RDONLY").mmap(
            A, 2 * P, "PROT_READ", "MAP_PRIVATE|MAP_FIXED", 3, 0xFFFF_FFFF_FFFF_F000
        ),
        ret("EOVERFLOW"),
    ),
    Case(
        "mmap-file-beyond-eof-ok",
        lambda s, f: file_map(s, f, "O_RDONLY", "PROT_READ", "MAP_PRIVATE|MAP_FIXED", pages=8),
        at(A),
    ),
    Case(
        "mmap-empty-file-ok",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_SHARED|MAP_FIXED", name="empty.bin"),
        at(A),
    ),
    Case(
        "mmap-shared-growsdown",
        lambda s, f: s.mmap(A, P, RW, "MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED|MAP_GROWSDOWN"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-shared-file-growsdown",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_SHARED|MAP_FIXED|MAP_GROWSDOWN"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-droppable-file",
        lambda s, f: file_map(s, f, "O_RDWR", RW, "MAP_DROPPABLE|MAP_FIXED"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-hugetlb-empty-pool",
        lambda s, f: s.mmap(None, 2 << 20, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB"),
        ret("ENOMEM"),
    ),
    Case(
        "mmap-hugetlb-fixed-unaligned",
        lambda s, f: s.mmap(A, 2 << 20, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_FIXED"),
        ret("EINVAL"),
    ),
    Case(
        "mmap-below-mmap-min-addr-no-rawio",
        lambda s, f: s.add("capdrop", CAP_SYS_RAWIO).mmap(None, P, RW, PAF),
        ret("EPERM"),
    ),
    Case(
        "mmap-locked-over-rlimit",
        lambda s, f: (
            s.add("capdrop", CAP_IPC_LOCK)
            .add("setrlimit", RLIMIT_MEMLOCK, P, P)
            .mmap(A, 4 * P, RW, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_LOCKED")
        ),
        ret("EAGAIN"),
    ),
    # ---------------------------------------------------------------- munmap
    Case("munmap-len-zero", lambda s, f: s.munmap(A, 0), ret("EINVAL")),
    Case("munmap-unaligned", lambda s, f: anon(s).munmap(A + 1, P), ret("EINVAL")),
    Case("munmap-len-unaligned-ok", lambda s, f: anon(s).munmap(A, 1).maps(), "end"),
    Case("munmap-unmapped-ok", lambda s, f: s.munmap(A, P), OK),
    Case("munmap-len-huge", lambda s, f: anon(s).munmap(A, -P), ret("EINVAL")),
    Case("munmap-above-task-size", lambda s, f: s.munmap(Abs(1 << 47), P), ret("EINVAL")),
    Case("munmap-middle-splits", lambda s, f: anon(s).munmap(A + P, P).maps(), "end"),
    # -------------------------------------------------------------- mprotect
    Case("mprotect-unaligned", lambda s, f: anon(s).mprotect(A + 1, P, "PROT_READ"), ret("EINVAL")),
    Case("mprotect-len-zero-ok", lambda s, f: s.mprotect(A, 0, "PROT_READ"), OK),
    Case("mprotect-unmapped", lambda s, f: s.mprotect(A, P, "PROT_READ"), ret("ENOMEM")),
    Case("mprotect-hole", lambda s, f: hole(s).mprotect(A, 3 * P, "PROT_READ"), ret("ENOMEM")),
    Case(
        "mprotect-hole-applies-first-part",
        lambda s, f: hole(s).mprotect(A, 3 * P, "PROT_READ").maps(),
        "end",
    ),
    Case("mprotect-len-huge", lambda s, f: anon(s).mprotect(A, -P, "PROT_READ"), ret("ENOMEM")),
    Case(
        "mprotect-above-task-size",
        lambda s, f: s.mprotect(Abs(1 << 47), P, "PROT_READ"),
        ret("ENOMEM"),
    ),
    Case("mprotect-unknown-bit", lambda s, f: anon(s).mprotect(A, P, 0x10), ret("EINVAL")),
    Case("mprotect-prot-sem-ok", lambda s, f: anon(s).mprotect(A, P, "PROT_READ|PROT_SEM"), OK),
    Case(
        "mprotect-growsdown-on-normal-vma",
        lambda s, f: anon(s).mprotect(A, P, "PROT_READ|PROT_GROWSDOWN"),
        ret("EINVAL"),
    ),
    Case(
        "mprotect-growsup",
        lambda s, f: anon(s).mprotect(A, P, "PROT_READ|PROT_GROWSUP"),
        ret("EINVAL"),
    ),
    Case(
        "mprotect-growsdown-and-up",
        lambda s, f: anon(s).mprotect(A, P, "PROT_READ|PROT_GROWSDOWN|PROT_GROWSUP"),
        ret("EINVAL"),
    ),
    Case(
        "mprotect-shared-rdonly-file-write",
        lambda s, f: file_map(s, f, "O_RDONLY", "PROT_READ", "MAP_SHARED|MAP_FIXED").mprotect(
            A, P, RW
        ),
        ret("EACCES"),
    ),
    Case(
        "mprotect-private-rdonly-file-write-ok",
        lambda s, f: file_map(s, f, "O_RDONLY", "PROT_READ", "MAP_PRIVATE|MAP_FIXED").mprotect(
            A, P, RW
        ),
        OK,
    ),
    # ---------------------------------------------------------------- mremap
    Case(
        "mremap-unaligned",
        lambda s, f: anon(s).mremap(A + 1, P, 2 * P, "MREMAP_MAYMOVE"),
        ret("EINVAL"),
    ),
    Case(
        "mremap-new-len-zero", lambda s, f: anon(s).mremap(A, P, 0, "MREMAP_MAYMOVE"), ret("EINVAL")
    ),
    Case("mremap-unknown-flag", lambda s, f: anon(s).mremap(A, P, 2 * P, 8), ret("EINVAL")),
    Case(
        "mremap-fixed-without-maymove",
        lambda s, f: anon(s).mremap(A, P, P, "MREMAP_FIXED", B),
        ret("EINVAL"),
    ),
    Case(
        "mremap-fixed-new-unaligned",
        lambda s, f: anon(s).mremap(A, P, P, "MREMAP_FIXED|MREMAP_MAYMOVE", B + 1),
        ret("EINVAL"),
    ),
    Case(
        "mremap-fixed-overlapping",
        lambda s, f: anon(s).mremap(A, 2 * P, 2 * P, "MREMAP_FIXED|MREMAP_MAYMOVE", A + P),
        ret("EINVAL"),
    ),
    Case(
        "mremap-dontunmap-len-change",
        lambda s, f: anon(s).mremap(A, P, 2 * P, "MREMAP_DONTUNMAP|MREMAP_MAYMOVE", 0),
        ret("EINVAL"),
    ),
    Case(
        "mremap-dontunmap-without-maymove",
        lambda s, f: anon(s).mremap(A, P, P, "MREMAP_DONTUNMAP", 0),
        ret("EINVAL"),
    ),
    Case(
        "mremap-dontunmap-fixed-ok",
        lambda s, f: anon(s).mremap(A, P, P, "MREMAP_DONTUNMAP|MREMAP_MAYMOVE|MREMAP_FIXED", B),
        at(B),
    ),
    Case("mremap-unmapped", lambda s, f: s.mremap(A, P, 2 * P, "MREMAP_MAYMOVE"), ret("EFAULT")),
    Case(
        "mremap-spans-two-vmas",
        lambda s, f: (
            anon(s, pages=1)
            .mmap(A + P, P, "PROT_READ", PAF)
            .mremap(A, 2 * P, 3 * P, "MREMAP_MAYMOVE")
        ),
        ret("EFAULT"),
    ),
    Case(
        "mremap-grow-in-place-blocked",
        lambda s, f: anon(s, pages=1).mmap(A + P, P, "PROT_READ", PAF).mremap(A, P, 2 * P, 0),
        ret("ENOMEM"),
    ),
    Case("mremap-grow-in-place-ok", lambda s, f: anon(s, pages=1).mremap(A, P, 2 * P, 0), at(A)),
    Case("mremap-shrink-ok", lambda s, f: anon(s).mremap(A, 4 * P, P, 0), at(A)),
    Case(
        "mremap-old-len-zero-private",
        lambda s, f: anon(s).mremap(A, 0, P, "MREMAP_MAYMOVE|MREMAP_FIXED", B),
        ret("EINVAL"),
    ),
    Case(
        "mremap-old-len-zero-shared-dup",
        lambda s, f: shared_anon(s, pages=1).mremap(A, 0, P, "MREMAP_MAYMOVE|MREMAP_FIXED", B),
        at(B),
    ),
    Case(
        "mremap-old-len-zero-shared-no-move",
        lambda s, f: shared_anon(s, pages=1).mremap(A, 0, P, 0, 0),
        ret("ENOMEM"),
    ),
    Case(
        "mremap-new-len-huge",
        lambda s, f: anon(s).mremap(A, P, 1 << 47, "MREMAP_MAYMOVE"),
        ret("EINVAL"),
    ),
    Case(
        "mremap-fixed-above-task-size",
        lambda s, f: anon(s).mremap(A, P, P, "MREMAP_MAYMOVE|MREMAP_FIXED", Abs(1 << 47)),
        ret("EINVAL"),
    ),
    # Linux 6.18's check_mremap_params(): overlap before the VMA lookup
    Case(
        "mremap-fixed-overlap-nothing-mapped",
        lambda s, f: s.mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", A + P),
        ret("EINVAL"),
    ),
    Case(
        "mremap-dontunmap-hint-overlaps",
        lambda s, f: anon(s, pages=2).mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_DONTUNMAP",
                                             A + P),
        ret("EINVAL"),
    ),
    Case(
        "mremap-old-len-wraps",
        lambda s, f: anon(s).mremap(A, -P, P, "MREMAP_MAYMOVE|MREMAP_FIXED", A + 3 * P),
        ret("EINVAL"),
    ),
    # check_prep_vma(): -EFAULT before the destination or the tail is unmapped
    Case(
        "mremap-fixed-grow-across-vma-end",
        lambda s, f: (
            anon(s, pages=1)
            .mmap(B, 2 * P, "PROT_READ", PAF)
            .mremap(A, 2 * P, 3 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", B)
        ),
        ret("EFAULT"),
    ),
    Case(
        "mremap-fixed-shrink-kept-part-crosses",
        lambda s, f: (
            anon(s, pages=1)
            .mmap(A + P, 2 * P, "PROT_READ", PAF)
            .mmap(B, 2 * P, "PROT_READ", PAF)
            .mremap(A, 3 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", B)
        ),
        ret("EFAULT"),
    ),
    Case(
        "mremap-fixed-shrink-tail-crosses-ok",
        lambda s, f: (
            anon(s, pages=1)
            .mmap(A + P, P, "PROT_READ", PAF)
            .mremap(A, 2 * P, P, "MREMAP_MAYMOVE|MREMAP_FIXED", B)
        ),
        at(B),
    ),
    # remap_move() (6.17+): a pure move may span VMAs and gaps, but not start in a gap
    Case(
        "mremap-move-spans-two-vmas-ok",
        lambda s, f: (
            anon(s, pages=1)
            .mmap(A + P, P, "PROT_READ", PAF)
            .mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", B)
        ),
        at(B),
    ),
    Case(
        "mremap-move-hole-ok",
        lambda s, f: hole(s).mremap(A, 3 * P, 3 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", B),
        at(B),
    ),
    Case(
        "mremap-move-starts-in-gap",
        lambda s, f: (
            anon(s, A + P, 1)
            .mmap(B, 2 * P, "PROT_READ", PAF)
            .mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", B)
        ),
        ret("EFAULT"),
    ),
    Case(
        "mremap-move-ends-in-gap-ok",
        lambda s, f: anon(s, pages=1).mremap(A, 3 * P, 3 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", B),
        at(B),
    ),
    Case(
        "mremap-move-nothing-mapped",
        lambda s, f: s.mremap(A, 3 * P, 3 * P, "MREMAP_MAYMOVE|MREMAP_FIXED", B),
        ret("EFAULT"),
    ),
    Case(
        "mremap-dontunmap-spans-two-vmas-ok",
        lambda s, f: (
            anon(s, pages=1)
            .mmap(A + P, P, "PROT_READ", PAF)
            .mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP", B)
        ),
        at(B),
    ),
    Case(
        "mremap-dontunmap-no-fixed-spans-two-vmas",
        lambda s, f: (
            anon(s, pages=1)
            .mmap(A + P, P, "PROT_READ", PAF)
            .mremap(A, 2 * P, 2 * P, "MREMAP_MAYMOVE|MREMAP_DONTUNMAP", B)
        ),
        ret("EFAULT"),
    ),
    # --------------------------------------------------------------- madvise
    Case("madvise-unaligned", lambda s, f: anon(s).madvise(A + 1, P, "MADV_NORMAL"), ret("EINVAL")),
    Case("madvise-unknown-advice", lambda s, f: anon(s).madvise(A, P, 999), ret("EINVAL")),
    Case("madvise-unknown-advice-len-zero", lambda s, f: s.madvise(A, 0, 999), ret("EINVAL")),
    Case("madvise-len-zero-ok", lambda s, f: s.madvise(A, 0, "MADV_NORMAL"), OK),
    Case("madvise-unmapped", lambda s, f: s.madvise(A, P, "MADV_DONTNEED"), ret("ENOMEM")),
    Case("madvise-hole", lambda s, f: hole(s).madvise(A, 3 * P, "MADV_DONTNEED"), ret("ENOMEM")),
    Case(
        "madvise-hole-willneed",
        lambda s, f: hole(s).madvise(A, 3 * P, "MADV_WILLNEED"),
        ret("ENOMEM"),
    ),
    Case(
        "madvise-dontneed-locked",
        lambda s, f: anon(s).mlock(A, P).madvise(A, P, "MADV_DONTNEED"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-dontneed-locked-advice-ok",
        lambda s, f: anon(s).mlock(A, P).madvise(A, P, "MADV_DONTNEED_LOCKED"),
        OK,
    ),
    Case(
        "madvise-free-locked",
        lambda s, f: anon(s).mlock(A, P).madvise(A, P, "MADV_FREE"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-free-shared", lambda s, f: shared_anon(s).madvise(A, P, "MADV_FREE"), ret("EINVAL")
    ),
    Case(
        "madvise-free-file-private",
        lambda s, f: file_map(s, f, "O_RDONLY", RW, "MAP_PRIVATE|MAP_FIXED").madvise(
            A, P, "MADV_FREE"
        ),
        ret("EINVAL"),
    ),
    Case(
        "madvise-remove-private", lambda s, f: anon(s).madvise(A, P, "MADV_REMOVE"), ret("EINVAL")
    ),
    Case(
        "madvise-remove-shared-anon-ok",
        lambda s, f: shared_anon(s).madvise(A, P, "MADV_REMOVE"),
        OK,
    ),
    Case(
        "madvise-wipeonfork-shared",
        lambda s, f: shared_anon(s).madvise(A, P, "MADV_WIPEONFORK"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-wipeonfork-file",
        lambda s, f: file_map(s, f, "O_RDONLY", RW, "MAP_PRIVATE|MAP_FIXED").madvise(
            A, P, "MADV_WIPEONFORK"
        ),
        ret("EINVAL"),
    ),
    Case(
        "madvise-populate-write-readonly",
        lambda s, f: anon(s, prot="PROT_READ").madvise(A, P, "MADV_POPULATE_WRITE"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-populate-read-prot-none",
        lambda s, f: anon(s, prot="PROT_NONE").madvise(A, P, "MADV_POPULATE_READ"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-populate-unmapped",
        lambda s, f: s.madvise(A, P, "MADV_POPULATE_READ"),
        ret("ENOMEM"),
    ),
    Case(
        "madvise-populate-write-ok",
        lambda s, f: anon(s).madvise(A, 2 * P, "MADV_POPULATE_WRITE").mincore(A, 4 * P),
        "ret 0 1100",
    ),
    Case(
        "madvise-collapse-thp-disabled",
        lambda s, f: anon(s).madvise(A, P, "MADV_COLLAPSE"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-guard-install-locked",
        lambda s, f: anon(s).mlock(A, P).madvise(A, P, "MADV_GUARD_INSTALL"),
        ret("EINVAL"),
    ),
    Case(
        "madvise-guard-install-then-touch",
        lambda s, f: anon(s).madvise(A, P, "MADV_GUARD_INSTALL").touch(A, "r"),
        f"sig SIGSEGV MAPERR +{A:#x}",
    ),
    Case(
        "madvise-dontfork-child-faults",
        lambda s, f: (
            anon(s)
            .touch(A, "w")
            .madvise(A, P, "MADV_DONTFORK")
            .fork()
            .touch(A, "r")
            .endchild()
            .touch(A, "r")
        ),
        "ok",
    ),
    # ----------------------------------------------------------------- mlock
    Case("mlock-unmapped", lambda s, f: s.mlock(A, P), ret("ENOMEM")),
    Case("mlock-hole", lambda s, f: hole(s).mlock(A, 3 * P), ret("ENOMEM")),
    Case("mlock-len-zero-ok", lambda s, f: s.mlock(A, 0), OK),
    Case("mlock-unaligned-is-rounded", lambda s, f: anon(s).mlock(A + 1, 10), OK),
    Case("mlock-len-huge", lambda s, f: anon(s).mlock(A, -P), ret("EINVAL")),
    Case("mlock-prot-none", lambda s, f: anon(s, prot="PROT_NONE").mlock(A, P), ret("ENOMEM")),
    Case(
        "mlock-over-rlimit",
        lambda s, f: (
            anon(s)
            .add("capdrop", CAP_IPC_LOCK)
            .add("setrlimit", RLIMIT_MEMLOCK, P, P)
            .mlock(A, 2 * P)
        ),
        ret("ENOMEM"),
    ),
    Case(
        "mlock-rlimit-zero",
        lambda s, f: (
            anon(s).add("capdrop", CAP_IPC_LOCK).add("setrlimit", RLIMIT_MEMLOCK, 0, 0).mlock(A, P)
        ),
        ret("EPERM"),
    ),
    Case("mlock2-unknown-flag", lambda s, f: anon(s).mlock2(A, P, 2), ret("EINVAL")),
    Case("mlock2-onfault-ok", lambda s, f: anon(s).mlock2(A, P, "MLOCK_ONFAULT"), OK),
    Case("mlock2-unmapped", lambda s, f: s.mlock2(A, P, "MLOCK_ONFAULT"), ret("ENOMEM")),
    Case("munlock-unmapped", lambda s, f: s.munlock(A, P), ret("ENOMEM")),
    Case("munlock-not-locked-ok", lambda s, f: anon(s).munlock(A, P), OK),
    Case("mlockall-zero", lambda s, f: s.mlockall(0), ret("EINVAL")),
    Case("mlockall-onfault-alone", lambda s, f: s.mlockall("MCL_ONFAULT"), ret("EINVAL")),
    Case("mlockall-unknown-flag", lambda s, f: s.mlockall(8), ret("EINVAL")),
    Case("mlockall-future-ok", lambda s, f: s.mlockall("MCL_FUTURE").munlockall(), OK),
    Case(
        "mlockall-future-then-mmap-over-rlimit",
        lambda s, f: (
            s.add("capdrop", CAP_IPC_LOCK)
            .mlockall("MCL_FUTURE")
            .add("setrlimit", RLIMIT_MEMLOCK, 0, 0)
            .mmap(A, P, RW, PAF)
        ),
        ret("EAGAIN"),
    ),
    # ----------------------------------------------------------------- msync
    Case("msync-unaligned", lambda s, f: anon(s).msync(A + 1, P, "MS_SYNC"), ret("EINVAL")),
    Case("msync-unknown-flag", lambda s, f: anon(s).msync(A, P, 8), ret("EINVAL")),
    Case(
        "msync-sync-and-async", lambda s, f: anon(s).msync(A, P, "MS_SYNC|MS_ASYNC"), ret("EINVAL")
    ),
    Case("msync-unmapped", lambda s, f: s.msync(A, P, "MS_SYNC"), ret("ENOMEM")),
    Case("msync-hole", lambda s, f: hole(s).msync(A, 3 * P, "MS_SYNC"), ret("ENOMEM")),
    Case("msync-len-zero-ok", lambda s, f: s.msync(A, 0, "MS_SYNC"), OK),
    Case("msync-len-huge", lambda s, f: anon(s).msync(A, -P, "MS_SYNC"), ret("ENOMEM")),
    Case("msync-anon-ok", lambda s, f: anon(s).msync(A, P, "MS_ASYNC"), OK),
    Case(
        "msync-invalidate-locked",
        lambda s, f: anon(s).mlock(A, P).msync(A, P, "MS_INVALIDATE"),
        ret("EBUSY"),
    ),
    Case(
        "msync-shared-file-ok",
        lambda s, f: (
            file_map(s, f, "O_RDWR", RW, "MAP_SHARED|MAP_FIXED")
            .write_at(A, b"\xee")
            .msync(A, P, "MS_SYNC")
            .pread(3, 0, 2)
        ),
        "data ee01",
    ),
    # --------------------------------------------------------------- mincore
    Case("mincore-unaligned", lambda s, f: anon(s).mincore(A + 1, P), ret("EINVAL")),
    Case("mincore-unmapped", lambda s, f: s.mincore(A, P), ret("ENOMEM")),
    Case("mincore-hole", lambda s, f: hole(s).mincore(A, 3 * P), ret("ENOMEM")),
    Case("mincore-len-zero-ok", lambda s, f: s.mincore(A, 0), OK),
    Case("mincore-len-huge", lambda s, f: anon(s).mincore(A, -P), ret("ENOMEM")),
    Case("mincore-above-task-size", lambda s, f: s.mincore(Abs(1 << 47), P), ret("ENOMEM")),
    Case(
        "mincore-file-page-cache",
        lambda s, f: (
            s.open(f.path("new.bin"), "O_RDWR|O_CREAT|O_TRUNC")
            .pwrite(3, 0, b"\x01" * (2 * P + 1))
            .mmap(A, 4 * P, "PROT_READ", "MAP_SHARED|MAP_FIXED", 3, 0)
            .mincore(A, 4 * P)
        ),
        "ret 0 1110",
    ),
]
