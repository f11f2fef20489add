"""VMA merging and splitting, drawn as pictures (see vma_pictures.py).

Every scenario is *layout -> operations -> expected picture*: a window of
pages where ``.`` is unmapped and each VMA is a letter (A, B, C... in address
order, one letter per VMA, so ``"AB"`` is two VMAs that did not merge).
The layout is built with real system calls (mmap MAP_FIXED, mremap, mlock,
madvise, stores); the operation is a system call; the picture is read back
from the VMA tree.

The expectations follow Linux's rules (mm/vma.c: vma_merge_new_range,
vma_merge_existing_range, is_mergeable_vma, is_mergeable_anon_vma,
can_vma_merge_before/after; mm/mprotect.c, mm/mremap.c, mm/mmap.c) as of
the host kernel this was checked on (6.18).  ``test_host_agrees`` replays
every scenario that needs no white-box op on the host kernel through
tests/host/vmops.c and asserts that /proc/self/maps draws the same pictures,
so the expectations are Linux's, not only our reading of it.

One difference from the 6.12 sources matters: 6.12's is_mergeable_anon_vma()
refused to merge a VMA *with* an anon_vma into a neighbour *without* one when
the range was an existing VMA (mprotect & co.), because it tested the
neighbour's empty anon_vma_chain for list_is_singular().  Linux 6.16 ("mm/vma:
fix incorrectly disallowed anonymous VMA merges") checks instead that
whichever VMA's anon_vma would be shared has no fork history.  The scenarios
follow the current rule; the host confirms it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim import Machine
from vmsim.mm import mman as m
from vmsim.mm.vma import VM_ACCOUNT, VM_DONTCOPY, VM_IO, VM_LOCKED, VM_SOFTDIRTY

from ..host.hostref import HostToolError, host_supported, run_host
from .vma_pictures import (
    FILES,
    VMSIM_BASE,
    Check,
    Scenario,
    check_host_output,
    clear_soft_dirty,
    fill_to_limit,
    host_plan,
    madvise,
    make_files,
    mlock,
    mlock_onfault,
    mmap,
    mprotect,
    mremap,
    munlock,
    munmap,
    picture,
    render,
    ro,
    run_vmsim,
    runs,
    rw,
    rwx,
    rx,
    scenario,
    setflags,
    setname,
    setup,
    validate_picture,
)

same, anon, pgoff, flags = Check.same, Check.anon, Check.pgoff, Check.flags

# Rule texts, quoted in failure messages.
R_NEW = "vma_merge_new_range: a new range extends prev and/or next when can_vma_merge_after/before hold"
R_FLAGS = "is_mergeable_vma: vm_flags must be equal (VM_SOFTDIRTY aside)"
R_FILE = "is_mergeable_vma: same struct file (vm_file ==), not merely the same inode"
R_PGOFF = "can_vma_merge_after/before: vm_pgoff must continue across the boundary"
R_ANON_PGOFF = ("anonymous VMAs have vm_pgoff = vm_start >> PAGE_SHIFT and merge only with "
                "contiguous pgoff; mremap of an anon VMA with pages keeps its old pgoff")
R_ANON = "is_mergeable_anon_vma: equal anon_vmas, or one side has none"
R_BOTH = ("can_vma_merge_right: when prev and next are both mergeable, their anon_vmas must "
          "also be compatible with each other, else only prev merges")
R_FORK = ("is_mergeable_anon_vma: an anon_vma is shared by a merge only from a VMA with no "
          "fork history (a singular anon_vma_chain)")
R_EXISTING = "vma_merge_existing_range: a range at an edge of a VMA merges into the neighbour"
R_SPLIT = "vma_modify: a range inside a VMA that cannot merge splits it (split_vma)"
R_SPECIAL = "VM_SPECIAL (VM_IO|VM_DONTEXPAND|VM_PFNMAP|VM_MIXEDMAP) areas never merge"
R_SOFTDIRTY = "is_mergeable_vma ignores VM_SOFTDIRTY; a new or expanded VMA gets VM_SOFTDIRTY"
R_ACCOUNT = ("mprotect_fixup: a write grant sets VM_ACCOUNT; write removal clears it only for "
             "an anonymous VMA without anon_vma, and VM_ACCOUNT takes part in the flag compare")
R_MAPCOUNT = ("split_vma fails with -ENOMEM once map_count >= max_map_count; munmap checks "
              "only a middle unmap up front and then splits with __split_vma, unchecked")
R_MREMAP = ("mremap: copy_vma merges the moved range like a new one; an unfaulted anon VMA gets "
            "the pgoff of its new address; growth in place merges with next (vma_merge_extend)")


# =================================================================== new ranges
NEW = [
    scenario("new", "merge prev only", setup("AA...", A=rw),
             mmap(2, 1, "rw-"), expect="AAA..", rule=R_NEW,
             checks=[same("A", "A"), pgoff("A", anon_page=0)]),
    scenario("new", "merge next only", setup("...AA", A=rw),
             mmap(2, 1, "rw-"), expect="..AAA", rule=R_NEW,
             checks=[same("A", "A"), pgoff("A", anon_page=2)]),
    scenario("new", "merge prev and next", setup("AA.BB", A=rw, B=rw),
             mmap(2, 1, "rw-"), expect="AAAAA", rule=R_NEW,
             checks=[same("A", "A"), pgoff("A", anon_page=0)]),
    scenario("new", "no neighbour touches", setup("A...B", A=rw, B=rw),
             mmap(2, 1, "rw-"), expect="A.B.C", rule=R_NEW),
    scenario("new", "prot of prev differs", setup("AA.BB", A=ro, B=rw),
             mmap(2, 1, "rw-"), expect="AABBB", rule=R_FLAGS,
             checks=[same("B", "B"), pgoff("B", anon_page=2)]),
    scenario("new", "prot of both differs", setup("AA.BB", A=ro, B=rx),
             mmap(2, 1, "rw-"), expect="AABCC", rule=R_FLAGS),
    scenario("new", "VM_LOCKED of prev differs", setup("AA.BB", A=ro(locked=True), B=ro),
             mmap(2, 1, "r--"), expect="AABBB", rule=R_FLAGS),
    scenario("new", "MAP_LOCKED merges with locked neighbours",
             setup("AA.BB", A=ro(locked=True), B=ro(locked=True)),
             mmap(2, 1, "r--", flags="locked"), expect="AAAAA", rule=R_FLAGS,
             checks=[flags("A", has=VM_LOCKED)]),
    scenario("new", "VM_DONTCOPY of prev differs",
             setup("AA.BB", A=rw(advice=(m.MADV_DONTFORK,)), B=rw),
             mmap(2, 1, "rw-"), expect="AABBB", rule=R_FLAGS),
    scenario("new", "MAP_NORESERVE differs (VM_NORESERVE, no VM_ACCOUNT)",
             setup("AA.BB", A=rw, B=rw),
             mmap(2, 1, "rw-", flags="noreserve"), expect="AABCC", rule=R_FLAGS),
    scenario("new", "file: contiguous on both sides",
             setup("AA.BB", A=ro(file="f"), B=ro(file="f")),
             mmap(2, 1, "r--", file="f"), expect="AAAAA", rule=R_PGOFF,
             checks=[same("A", "A"), pgoff("A", file_page=0)]),
    scenario("new", "file: next's pgoff does not continue",
             setup("AA.BB", A=ro(file="f"), B=ro(file="f", pgoff=8)),
             mmap(2, 1, "r--", file="f"), expect="AAABB", rule=R_PGOFF,
             checks=[pgoff("A", file_page=0), pgoff("B", file_page=8)]),
    scenario("new", "file: prev's pgoff does not continue",
             setup("AA.BB", A=ro(file="f", pgoff=5), B=ro(file="f")),
             mmap(2, 1, "r--", file="f"), expect="AABBB", rule=R_PGOFF,
             checks=[pgoff("A", file_page=5), pgoff("B", file_page=2)]),
    scenario("new", "file: different files", setup("AA.BB", A=ro(file="f"), B=ro(file="g")),
             mmap(2, 1, "r--", file="f"), expect="AAABB", rule=R_FILE),
    scenario("new", "file: same file opened twice is another struct file",
             setup("AA.", A=ro(file="f")),
             mmap(2, 1, "r--", file="f", handle=1), expect="AAB", rule=R_FILE),
    scenario("new", "anonymous next to a file mapping", setup("AA.", A=ro(file="f")),
             mmap(2, 1, "r--"), expect="AAB", rule=R_FILE),
    scenario("new", "private next to shared of the same file",
             setup("AA.", A=ro(file="f", shared=True)),
             mmap(2, 1, "r--", file="f"), expect="AAB", rule=R_FLAGS),
    scenario("new", "shared file: contiguous on both sides",
             setup("AA.BB", A=rw(file="f", shared=True), B=rw(file="f", shared=True)),
             mmap(2, 1, "rw-", file="f", shared=True), expect="AAAAA", rule=R_PGOFF,
             checks=[pgoff("A", file_page=0)]),
    scenario("new", "shared anonymous never merges (each has its own shmem file)",
             setup("AA.BB", A=rw(shared=True), B=rw(shared=True)),
             mmap(2, 1, "rw-", shared=True), expect="AABCC", rule=R_FILE),
    scenario("new", "MAP_FIXED identical over the middle re-merges",
             setup("AAAAA", A=rw(written=True)),
             mmap(1, 3, "rw-"), expect="AAAAA", rule=R_NEW,
             checks=[anon("A", "A"), pgoff("A", anon_page=0)]),
    scenario("new", "MAP_FIXED over several VMAs merges with what is left of prev",
             setup("AABBCC", A=rw, B=ro, C=rx),
             mmap(1, 4, "rw-"), expect="AAAAAB", rule=R_NEW,
             checks=[pgoff("A", anon_page=0), pgoff("B", anon_page=5)]),
    scenario("new", "MAP_FIXED of other rights inside a VMA splits it",
             setup("AAAAAA", A=rw),
             mmap(2, 2, "r--"), expect="AABBCC", rule=R_NEW,
             checks=[pgoff("C", anon_page=4)]),
    scenario("new", "MAP_FIXED replacing a whole VMA merges both sides",
             setup("AABBB", A=rw, B=ro),
             mmap(2, 3, "rw-"), expect="AAAAA", rule=R_NEW),
]

# =================================================================== anon_vma rules
ANON = [
    scenario("anon_vma", "new range next to a VMA with an anon_vma", setup("AA...", A=rw(written=True)),
             mmap(2, 1, "rw-"), expect="AAA..", rule=R_ANON,
             checks=[anon("A", "A")]),
    scenario("anon_vma", "new range between two different anon_vmas: only prev merges",
             setup("AA.BB", A=rw(written=True), B=rw(written=True)),
             mmap(2, 1, "rw-"), expect="AAABB", rule=R_BOTH,
             checks=[same("A", "A"), anon("A", "A"), anon("B", "B")]),
    scenario("anon_vma", "mprotect between two different anon_vmas: only prev merges",
             setup("ABC", order="ACB", A=rw(written=True), B=ro, C=rw(written=True)),
             mprotect(1, 1, "rw-"), expect="AAB", rule=R_BOTH,
             checks=[same("A", "A"), anon("A", "A"), same("B", "C"), anon("B", "C")]),
    scenario("anon_vma", "mlock between locked VMAs with their own anon_vmas: only prev merges",
             setup("AABCC", A=rw(locked=True), B=rw, C=rw(locked=True)),
             mlock(2, 1), expect="AAABB", rule=R_BOTH,
             checks=[anon("A", "A"), anon("B", "C")]),
    scenario("anon_vma", "middle without anon_vma joins prev with one", setup("AB", A=rw(written=True), B=ro),
             mprotect(1, 1, "rw-"), expect="AA", rule=R_ANON,
             checks=[same("A", "A"), anon("A", "A")]),
    scenario("anon_vma", "middle with anon_vma joins prev without one (prev takes it)",
             setup("AB", A=rw, B=rwx(written=True)),
             mprotect(1, 1, "rw-"), expect="AA", rule=R_ANON,
             checks=[same("A", "A"), anon("A", "B")]),
    scenario("anon_vma", "neighbours that shared an anon_vma from the first fault merge",
             setup("AB", A=rw(written=True), B=rwx(written=True)),
             mprotect(1, 1, "rw-"), expect="AA", rule=R_ANON + " (find_mergeable_anon_vma shares it)",
             checks=[anon("A", "A"), anon("A", "B")]),
    scenario("anon_vma", "equal flags but different anon_vmas stay apart",
             setup("AB", A=rw(written=True, advice=(m.MADV_DONTFORK,)), B=rw(written=True)),
             madvise(0, 1, m.MADV_DOFORK), expect="AB", rule=R_ANON,
             checks=[anon("A", "A"), anon("B", "B")]),
]

# =================================================================== fork history
FORK = [
    scenario("fork", "child: new range next to an inherited anon_vma does not merge",
             setup("AA...", A=rw(written=True)),
             mmap(2, 1, "rw-"), expect="AAB..", rule=R_FORK, fork="child"),
    scenario("fork", "parent: new range next to its anon_vma still merges",
             setup("AA...", A=rw(written=True)),
             mmap(2, 1, "rw-"), expect="AAA..", rule=R_FORK, fork="parent"),
    scenario("fork", "child: new range next to a VMA without anon_vma merges",
             setup("AA...", A=rw),
             mmap(2, 1, "rw-"), expect="AAA..", rule=R_FORK, fork="child"),
    scenario("fork", "child: middle without anon_vma next to an inherited one",
             setup("AAB", A=rw(written=True), B=ro),
             mprotect(2, 1, "rw-"), expect="AAB", rule=R_FORK, fork="child"),
    scenario("fork", "parent: middle without anon_vma next to its own one",
             setup("AAB", A=rw(written=True), B=ro),
             mprotect(2, 1, "rw-"), expect="AAA", rule=R_FORK, fork="parent"),
    scenario("fork", "child: inherited middle next to a VMA without anon_vma",
             setup("AAB", A=rw, B=rwx(written=True)),
             mprotect(2, 1, "rw-"), expect="AAB", rule=R_FORK, fork="child"),
    scenario("fork", "parent: middle with anon_vma next to a VMA without one",
             setup("AAB", A=rw, B=rwx(written=True)),
             mprotect(2, 1, "rw-"), expect="AAA", rule=R_FORK, fork="parent"),
    scenario("fork", "child: both inherited, each child VMA has its own anon_vma",
             setup("AAB", A=rw(written=True), B=rwx(written=True)),
             mprotect(2, 1, "rw-"), expect="AAB", rule=R_ANON, fork="child"),
]

# =================================================================== existing ranges
EXISTING = [
    scenario("existing", "mprotect middle splits in three", setup("AAAAA", A=rw),
             mprotect(1, 3, "r--"), expect="ABBBC", rule=R_SPLIT,
             checks=[pgoff("B", anon_page=1), pgoff("C", anon_page=4)]),
    scenario("existing", "mprotect left edge", setup("AAAAA", A=rw),
             mprotect(0, 2, "r--"), expect="AABBB", rule=R_SPLIT,
             checks=[pgoff("B", anon_page=2)]),
    scenario("existing", "mprotect right edge", setup("AAAAA", A=rw),
             mprotect(3, 2, "r--"), expect="AAABB", rule=R_SPLIT),
    scenario("existing", "mprotect a whole VMA without neighbours", setup("AAAAA", A=rw),
             mprotect(0, 5, "r--"), expect="AAAAA", rule=R_EXISTING,
             checks=[same("A", "A")]),
    scenario("existing", "whole middle merges with prev", setup("AABCC", A=rw, B=ro, C=rx),
             mprotect(2, 1, "rw-"), expect="AAABB", rule=R_EXISTING,
             checks=[same("A", "A"), pgoff("A", anon_page=0)]),
    scenario("existing", "whole middle merges with next", setup("AABCC", A=ro, B=rx, C=rw),
             mprotect(2, 1, "rw-"), expect="AABBB", rule=R_EXISTING,
             checks=[same("B", "C"), pgoff("B", anon_page=2)]),
    scenario("existing", "whole middle merges with both", setup("AABCC", A=rw, B=ro, C=rw),
             mprotect(2, 1, "rw-"), expect="AAAAA", rule=R_EXISTING,
             checks=[same("A", "A"), pgoff("A", anon_page=0)]),
    scenario("existing", "whole middle merges with neither", setup("AABCC", A=ro, B=rx, C=ro),
             mprotect(2, 1, "rw-"), expect="AABCC", rule=R_FLAGS),
    scenario("existing", "left part moves into prev", setup("AABBB", A=rw, B=ro),
             mprotect(2, 1, "rw-"), expect="AAABB", rule=R_EXISTING,
             checks=[same("A", "A"), same("B", "B"), pgoff("B", anon_page=3)]),
    scenario("existing", "right part moves into next", setup("AAABB", A=ro, B=rw),
             mprotect(2, 1, "rw-"), expect="AABBB", rule=R_EXISTING,
             checks=[same("A", "A"), same("B", "B"), pgoff("B", anon_page=2)]),
    scenario("existing", "left part moves into prev, which takes its anon_vma",
             setup("AABBB", A=rw, B=rwx(written=True)),
             mprotect(2, 1, "rw-"), expect="AAABB", rule=R_ANON + " (dup_anon_vma)",
             checks=[same("A", "A"), same("B", "B"), anon("A", "B"), anon("B", "B")]),
    scenario("existing", "right part moves into next, which takes its anon_vma",
             setup("AAABB", A=rwx(written=True), B=rw),
             mprotect(2, 1, "rw-"), expect="AABBB", rule=R_ANON + " (dup_anon_vma)",
             checks=[same("A", "A"), same("B", "B"), anon("B", "A"), anon("A", "A")]),
    scenario("existing", "inner part never merges, even with matching neighbours",
             setup("AABBBCC", A=rw, B=ro, C=rw),
             mprotect(3, 1, "rw-"), expect="AABCDEE", rule=R_SPLIT),
    scenario("existing", "three pieces merge back into one", setup("AAA", A=rw),
             mprotect(1, 1, "r--"), expect="ABC", rule=R_EXISTING,
             then=[([mprotect(1, 1, "rw-")], "AAA")],
             checks=[pgoff("A", anon_page=0)]),
    scenario("existing", "three pieces with pages merge back into one", setup("AAA", A=rw(written=True)),
             mprotect(1, 1, "r--"), expect="ABC", rule=R_EXISTING,
             then=[([mprotect(1, 1, "rw-")], "AAA")],
             checks=[anon("A", "A"), pgoff("A", anon_page=0)]),
    scenario("existing", "one mprotect over several VMAs merges them one by one",
             setup("AABBCC", A=ro, B=rx, C=ro),
             mprotect(0, 6, "rw-"), expect="AAAAAA", rule=R_EXISTING,
             checks=[same("A", "A")]),
    scenario("existing", "mlock the middle, munlock it again", setup("AAAAA", A=ro),
             mlock(1, 3), expect="ABBBC", rule=R_SPLIT,
             then=[([munlock(1, 3)], "AAAAA")]),
    scenario("existing", "mlock merges with locked neighbours",
             setup("AABCC", A=ro(locked=True), B=ro, C=ro(locked=True)),
             mlock(2, 1), expect="AAAAA", rule=R_EXISTING,
             checks=[flags("A", has=VM_LOCKED)]),
    scenario("existing", "equal prot but VM_LOCKED differs",
             setup("AAB", A=ro(locked=True), B=rx),
             mprotect(2, 1, "r--"), expect="AAB", rule=R_FLAGS),
    scenario("existing", "mlock2(MLOCK_ONFAULT) differs from mlock (VM_LOCKONFAULT)",
             setup("AAB", A=ro(locked=True), B=ro),
             mlock_onfault(2, 1), expect="AAB", rule=R_FLAGS),
    scenario("existing", "MADV_DONTFORK the middle, MADV_DOFORK it back", setup("AAAAA", A=rw),
             madvise(1, 3, m.MADV_DONTFORK), expect="ABBBC", rule=R_SPLIT,
             then=[([madvise(1, 3, m.MADV_DOFORK)], "AAAAA")]),
    scenario("existing", "MADV_DONTFORK merges with a VM_DONTCOPY prev",
             setup("AAB", A=rw(advice=(m.MADV_DONTFORK,)), B=rw),
             madvise(2, 1, m.MADV_DONTFORK), expect="AAA", rule=R_EXISTING,
             checks=[flags("A", has=VM_DONTCOPY)]),
    scenario("existing", "equal prot but VM_DONTCOPY differs",
             setup("AAB", A=rw(advice=(m.MADV_DONTFORK,)), B=ro),
             mprotect(2, 1, "rw-"), expect="AAB", rule=R_FLAGS),
    scenario("existing", "MADV_WIPEONFORK splits", setup("AAAAA", A=rw),
             madvise(1, 3, m.MADV_WIPEONFORK), expect="ABBBC", rule=R_SPLIT,
             then=[([madvise(1, 3, m.MADV_KEEPONFORK)], "AAAAA")]),
    scenario("existing", "MADV_DONTDUMP splits", setup("AAAAA", A=rw),
             madvise(1, 3, m.MADV_DONTDUMP), expect="ABBBC", rule=R_SPLIT,
             then=[([madvise(1, 3, m.MADV_DODUMP)], "AAAAA")]),
    scenario("existing", "MADV_RANDOM then MADV_SEQUENTIAL then MADV_NORMAL", setup("AAAAA", A=rw),
             madvise(0, 2, m.MADV_RANDOM), expect="AABBB", rule=R_FLAGS,
             then=[([madvise(2, 3, m.MADV_SEQUENTIAL)], "AABBB"),
                   ([madvise(0, 5, m.MADV_NORMAL)], "AAAAA")]),
    scenario("existing", "MADV_HUGEPAGE splits", setup("AAAAA", A=rw),
             madvise(1, 3, m.MADV_HUGEPAGE), expect="ABBBC", rule=R_SPLIT),
    scenario("existing", "MADV_DONTNEED changes no flags and splits nothing",
             setup("AAAAA", A=rw(written=True)),
             madvise(1, 3, m.MADV_DONTNEED), expect="AAAAA", rule=R_EXISTING),
    scenario("existing", "file: granting write merges (VM_ACCOUNT set on both)",
             setup("AABB", A=rw(file="f"), B=ro(file="f")),
             mprotect(2, 2, "rw-"), expect="AAAA", rule=R_ACCOUNT,
             checks=[pgoff("A", file_page=0), flags("A", has=VM_ACCOUNT)]),
    scenario("existing", "file: removing write keeps VM_ACCOUNT, so no merge",
             setup("AABB", A=ro(file="f"), B=rw(file="f")),
             mprotect(2, 2, "r--"), expect="AABB", rule=R_ACCOUNT,
             checks=[flags("B", has=VM_ACCOUNT), flags("A", lacks=VM_ACCOUNT)]),
    scenario("existing", "anon without pages: removing write drops VM_ACCOUNT, merges",
             setup("AABB", A=ro, B=rw),
             mprotect(2, 2, "r--"), expect="AAAA", rule=R_ACCOUNT),
    scenario("existing", "anon with pages: removing write keeps VM_ACCOUNT, no merge",
             setup("AABB", A=ro, B=rw(written=True)),
             mprotect(2, 2, "r--"), expect="AABB", rule=R_ACCOUNT),
    scenario("existing", "file: pgoff does not continue", setup("AABB", A=rw(file="f"), B=ro(file="f", pgoff=8)),
             mprotect(2, 2, "rw-"), expect="AABB", rule=R_PGOFF),
    scenario("existing", "file: different files", setup("AABB", A=rw(file="f"), B=ro(file="g")),
             mprotect(2, 2, "rw-"), expect="AABB", rule=R_FILE),
    scenario("existing", "shared file: merges with contiguous pgoff",
             setup("AABB", A=rw(file="f", shared=True), B=ro(file="f", shared=True)),
             mprotect(2, 2, "rw-"), expect="AAAA", rule=R_EXISTING,
             checks=[pgoff("A", file_page=0)]),
    scenario("existing", "shared and private of one file do not merge",
             setup("AABB", A=ro(file="f", shared=True), B=rw(file="f")),
             mprotect(2, 2, "r--"), expect="AABB", rule=R_FLAGS),
]

# =================================================================== anonymous pgoff
PGOFF = [
    scenario("pgoff", "new range next to an anon VMA moved with its pages",
             setup("AA........", A=rw(written=True, moved_from=8)),
             mmap(2, 1, "rw-"), expect="AAB.......", rule=R_ANON_PGOFF,
             checks=[pgoff("A", anon_page=8), pgoff("B", anon_page=2)]),
    scenario("pgoff", "mprotect next to an anon VMA moved with its pages",
             setup("AABB......", A=rw(written=True, moved_from=6), B=ro),
             mprotect(2, 2, "rw-"), expect="AABB......", rule=R_ANON_PGOFF,
             checks=[pgoff("A", anon_page=6)]),
    scenario("pgoff", "an anon VMA moved without pages takes its new pgoff and merges",
             setup("AA........", A=rw(moved_from=8)),
             mmap(2, 1, "rw-"), expect="AAA.......", rule=R_ANON_PGOFF,
             checks=[pgoff("A", anon_page=0)]),
    scenario("pgoff", "moving pages back where their pgoff fits merges again",
             setup("AAAAA.....", A=rw(written=True)),
             mremap(3, 2, 2, to=8), expect="AAA.....BB", rule=R_ANON_PGOFF,
             then=[([mremap(8, 2, 2, to=3)], "AAAAA.....")],
             checks=[anon("A", "A"), pgoff("A", anon_page=0)]),
]

# =================================================================== munmap / mremap
SPLIT = [
    scenario("split", "munmap the middle", setup("AAAAA", A=rw),
             munmap(1, 3), expect="A...B", rule=R_SPLIT,
             checks=[pgoff("B", anon_page=4)]),
    scenario("split", "munmap the left edge", setup("AAAAA", A=rw),
             munmap(0, 2), expect="..AAA", rule=R_SPLIT,
             checks=[pgoff("A", anon_page=2)]),
    scenario("split", "munmap the right edge", setup("AAAAA", A=rw),
             munmap(3, 2), expect="AAA..", rule=R_SPLIT, checks=[pgoff("A", anon_page=0)]),
    scenario("split", "munmap across several VMAs", setup("AABBCC", A=rw, B=ro, C=rw),
             munmap(1, 4), expect="A....B", rule=R_SPLIT),
    scenario("split", "file: munmap the middle keeps file offsets", setup("AAAAA", A=ro(file="f", pgoff=3)),
             munmap(1, 2), expect="A..BB", rule=R_SPLIT,
             checks=[pgoff("A", file_page=3), pgoff("B", file_page=6)]),
    scenario("mremap", "shrink in place", setup("AAAAA", A=rw(written=True)),
             mremap(0, 5, 2), expect="AA...", rule=R_MREMAP),
    scenario("mremap", "shrink a range in the middle", setup("AAAAA", A=rw),
             mremap(1, 3, 1), expect="AA..B", rule=R_MREMAP),
    scenario("mremap", "move the middle out", setup("AAAAA...", A=rw(written=True)),
             mremap(1, 1, 1, to=7), expect="A.BBB..C", rule=R_MREMAP,
             checks=[pgoff("C", anon_page=1), anon("C", "A"), anon("A", "A")]),
    scenario("mremap", "move the left edge out", setup("AAAAA...", A=rw(written=True)),
             mremap(0, 2, 2, to=6), expect="..AAA.BB", rule=R_MREMAP,
             checks=[pgoff("A", anon_page=2), pgoff("B", anon_page=0), anon("B", "A")]),
    scenario("mremap", "grow in place up to next and merge with it", setup("AA.BB", A=rw, B=rw),
             mremap(0, 2, 3), expect="AAAAA", rule=R_MREMAP,
             checks=[same("A", "A")]),
    scenario("mremap", "grow in place up to an incompatible next", setup("AA.BB", A=rw, B=ro),
             mremap(0, 2, 3), expect="AAABB", rule=R_MREMAP),
    scenario("mremap", "move an unfaulted anon VMA next to a compatible one",
             setup("AA....BB..", A=rw, B=rw),
             mremap(6, 2, 2, to=2), expect="AAAA......", rule=R_MREMAP,
             checks=[same("A", "A"), pgoff("A", anon_page=0)]),
    scenario("mremap", "move a faulted anon VMA next to a compatible one",
             setup("AA....BB..", A=rw, B=rw(written=True)),
             mremap(6, 2, 2, to=2), expect="AABB......", rule=R_ANON_PGOFF,
             checks=[pgoff("B", anon_page=6)]),
    scenario("mremap", "move an unfaulted anon VMA between two compatible ones",
             setup("AA..BB..CC", A=rw, B=rw, C=rw),
             mremap(8, 2, 2, to=2), expect="AAAAAA....", rule=R_MREMAP),
    scenario("mremap", "file: move a piece away and back", setup("AAAA....", A=ro(file="f")),
             mremap(2, 2, 2, to=6), expect="AA....BB", rule=R_MREMAP,
             then=[([mremap(6, 2, 2, to=2)], "AAAA....")],
             checks=[pgoff("A", file_page=0)]),
]

# =================================================================== max_map_count
MAPCOUNT = [
    scenario("map_count", "at the limit: mprotect of the middle fails",
             setup("AAAAA", A=rw, extra=[fill_to_limit()]),
             mprotect(1, 3, "r--", ret=-m.ENOMEM), expect="AAAAA", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: mprotect of an edge fails",
             setup("AAAAA", A=rw, extra=[fill_to_limit()]),
             mprotect(0, 2, "r--", ret=-m.ENOMEM), expect="AAAAA", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: mprotect of a whole VMA needs no split",
             setup("AAAAA", A=rw, extra=[fill_to_limit()]),
             mprotect(0, 5, "r--"), expect="AAAAA", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: a merge needs no split",
             setup("AAB", A=rw, B=ro, extra=[fill_to_limit()]),
             mprotect(2, 1, "rw-"), expect="AAA", rule=R_MAPCOUNT),
    scenario("map_count", "one below: the first split of a middle mprotect stays",
             setup("AAAAA", A=rw, extra=[fill_to_limit(1)]),
             mprotect(1, 3, "r--", ret=-m.ENOMEM), expect="ABBBB", rule=R_MAPCOUNT),
    scenario("map_count", "two below: a middle mprotect fits",
             setup("AAAAA", A=rw, extra=[fill_to_limit(2)]),
             mprotect(1, 3, "r--"), expect="ABBBC", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: mlock of the middle fails",
             setup("AAAAA", A=ro, extra=[fill_to_limit()]),
             mlock(1, 3, ret=-m.ENOMEM), expect="AAAAA", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: munmap of the middle fails",
             setup("AAAAA", A=rw, extra=[fill_to_limit()]),
             munmap(1, 3, ret=-m.ENOMEM), expect="AAAAA", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: munmap of an edge splits anyway",
             setup("AAAAA", A=rw, extra=[fill_to_limit()]),
             munmap(0, 2), expect="..AAA", rule=R_MAPCOUNT),
    scenario("map_count", "one below: munmap of the middle may pass the limit for a moment",
             setup("AAAAA", A=rw, extra=[fill_to_limit(1)]),
             munmap(1, 3), expect="A...B", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: MAP_FIXED into the middle fails",
             setup("AAAAA", A=rw, extra=[fill_to_limit()]),
             mmap(2, 1, "r--", ret=-m.ENOMEM), expect="AAAAA", rule=R_MAPCOUNT),
    scenario("map_count", "at the limit: one more new VMA is allowed, then no more",
             setup("AAAAA....", A=rw, extra=[fill_to_limit()]),
             mmap(6, 1, "r--"), expect="AAAAA.B..", rule="do_mmap refuses only map_count > max_map_count",
             then=[([mmap(8, 1, "r--", ret=-m.ENOMEM)], "AAAAA.B..")]),
]

# =================================================================== white-box (vmsim only)
WHITEBOX = [
    scenario("special", "VM_SPECIAL: equal flags, still no merge",
             setup("AB", A=rw, B=ro, extra=[setflags(0, VM_IO), setflags(1, VM_IO)]),
             mprotect(1, 1, "rw-"), expect="AB", rule=R_SPECIAL),
    scenario("special", "VM_SPECIAL: mremap move next to an equal VMA does not merge",
             setup("AA..BB....", A=rw, B=rw, extra=[setflags(0, VM_IO), setflags(4, VM_IO)]),
             mremap(4, 2, 2, to=2), expect="AABB......", rule=R_SPECIAL),
    scenario("anon_name", "different anon_vma_name, equal flags: no merge",
             setup("AAB", A=rw, B=ro, extra=[setname(0, "heap")]),
             mprotect(2, 1, "rw-"), expect="AAB", rule="is_mergeable_vma: anon_vma_name must be equal"),
    scenario("anon_name", "new range next to a named VMA does not merge",
             setup("AA...", A=rw, extra=[setname(0, "heap")]),
             mmap(2, 1, "rw-"), expect="AAB..", rule="is_mergeable_vma: anon_vma_name must be equal"),
    scenario("softdirty", "new range: VM_SOFTDIRTY differs from both neighbours",
             setup("AA.BB", A=rw, B=rw, extra=[clear_soft_dirty()]),
             mmap(2, 1, "rw-"), expect="AAAAA", rule=R_SOFTDIRTY,
             checks=[same("A", "A"), flags("A", has=VM_SOFTDIRTY)]),
    scenario("softdirty", "existing range: VM_SOFTDIRTY differs from prev",
             setup("AB", A=rw, B=ro, extra=[clear_soft_dirty(), munmap(1, 1), mmap(1, 1, "r--")]),
             mprotect(1, 1, "rw-"), expect="AA", rule=R_SOFTDIRTY,
             checks=[same("A", "A")]),
]

SCENARIOS: list[Scenario] = NEW + ANON + FORK + EXISTING + PGOFF + SPLIT + MAPCOUNT + WHITEBOX
IDS = [f"{s.category}: {s.name}" for s in SCENARIOS]
assert len(set(IDS)) == len(IDS), "scenario names must be unique"


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    make_files(tmp_path)
    return Machine(memory="64M", root=tmp_path, aslr=False)


# ------------------------------------------------------------------ the DSL itself
def test_picture_letters_follow_vma_identity() -> None:
    p = 4096
    assert picture([(0, 2 * p), (3 * p, 5 * p)], 0, 5) == "AA.BB"
    assert picture([(p, 2 * p), (0, p), (2 * p, 3 * p)], 0, 3) == "ABC"
    assert picture([(-p, 2 * p), (4 * p, 9 * p)], 0, 5) == "AA..B"
    assert runs("AA.BBB") == {"A": (0, 2), "B": (3, 3)}
    for bad in ("ABBBA", "BA", "AAC", "A.A", "A?"):
        with pytest.raises(ValueError):
            validate_picture(bad)


def test_setup_builds_the_picture(machine: Machine) -> None:
    lay = setup("AA.BBB.C", A=rw, B=ro(file="f"), C=rw(written=True))
    sc = scenario("t", "t", lay, expect="AA.BBB.C", rule="")
    assert run_vmsim(sc, machine) == []
    p = machine.processes[1]
    assert render(p, VMSIM_BASE, 8) == "AA.BBB.C"
    machine.check()


def test_scenarios_are_well_formed() -> None:
    for sc in SCENARIOS:
        for op in sc.all_ops():
            if op.name == "mmap" and op.args[3] is not None:
                assert op.args[3] in FILES, sc.name


# ------------------------------------------------------------------ vmsim
@pytest.mark.parametrize("sc", SCENARIOS, ids=IDS)
def test_vmsim(sc: Scenario, machine: Machine) -> None:
    fails = run_vmsim(sc, machine)
    machine.check()
    assert not fails, "\n" + sc.describe() + "\n" + "\n".join(fails)


# ------------------------------------------------------------------ host kernel
HOST_SCENARIOS = [s for s in SCENARIOS if s.host]


@pytest.fixture(scope="module")
def host_max_map_count() -> int:
    return int(Path("/proc/sys/vm/max_map_count").read_text())


@pytest.mark.skipif(not host_supported(), reason="needs a Linux x86-64 host")
@pytest.mark.parametrize("sc", HOST_SCENARIOS, ids=[f"{s.category}: {s.name}" for s in HOST_SCENARIOS])
def test_host_agrees(sc: Scenario, tmp_path: Path, host_max_map_count: int) -> None:
    """The expected pictures are what Linux itself draws (maps of vmops.c)."""
    if any(op.name == "fill" for op in sc.all_ops()) and host_max_map_count > 200_000:
        pytest.skip(f"vm.max_map_count is {host_max_map_count}: too many VMAs to fill")
    make_files(tmp_path)
    plan = host_plan(sc, tmp_path, host_max_map_count)
    try:
        run = run_host(plan.lines, timeout=120)
    except HostToolError as exc:
        pytest.skip(f"host runner unavailable: {exc}")
    fails = check_host_output(sc, plan, run.lines)
    assert not fails, "\n" + sc.describe() + "\n" + "\n".join(fails)
