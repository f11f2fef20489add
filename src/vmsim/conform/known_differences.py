"""Every deliberate difference between vmsim and the host kernel, in one place.

A :class:`KnownDifference` has an id, the reason, and a precise matcher of
one of two kinds:

* ``rewrite``: a function applied to every output line of both sides before
  they are compared.  It must change only the text it is about and must be
  a no-op on every other line; the report counts the lines it rewrote.
* ``explains``: a predicate over the first difference of a script
  (:class:`Mismatch`).  A script whose first difference it matches counts as
  *known*, not failed, and the report shows how many it matched.

Nothing is hidden: the conformance report lists every entry here with its
reason and count.  An entry with ``vmsim_bug=True`` is temporary - a vmsim
bug that still has to be fixed - and the report says so.

Not listed here, because they are not differences: the choice of bases (both
sides print addresses relative to theirs), the files directory's path and
the files' device and inode numbers (the same files on both sides; the
comparison maps them to tokens, see :mod:`vmsim.conform.compare`), and
soft-dirty tracking, which vmsim models as a sysctl (``mem_soft_dirty``)
that the harness sets to what the host kernel shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vmsim.conform.script import CHILD


@dataclass(frozen=True)
class Mismatch:
    """The first difference of a script: where it is and the two sides' lines of that step."""

    script: Sequence[str]  # the script lines up to and including the step
    step_line: str  # the operation of the step ("" before the first step)
    host: Sequence[str]  # the host's output lines of the step
    sim: Sequence[str]  # vmsim's output lines of the step
    host_line: str | None  # the first differing line (None: that side ended)
    sim_line: str | None
    index: int = 0  # where that line is in the step's lines

    @property
    def op(self) -> str:
        """The step's operation name ('' if none)."""
        return self.step_line.split()[0] if self.step_line.split() else ""

    def ops_so_far(self) -> list[list[str]]:
        """The words of every operation line of the script so far."""
        return [ln.split() for ln in self.script if ln.split() and not ln.startswith("#")]

    def field(self) -> str:
        """The smaps field (or line kind) of the differing lines: 'Rss', 'faults', 'ret', ..."""
        line = self.host_line if self.host_line is not None else self.sim_line or ""
        _, body = _strip_child(line)
        return body.split(":")[0] if ":" in body.split(" ")[0] else body.split(" ")[0]

    def values(self) -> tuple[str, str]:
        """The two differing lines without their ``child: `` prefixes ('' for a missing one)."""
        return (_strip_child(self.host_line or "")[1], _strip_child(self.sim_line or "")[1])

    def header(self) -> str:
        """The maps header of the VMA block holding the differing line ('' if none)."""
        for line in reversed(list(self.host[: self.index + 1])):
            body = _strip_child(line)[1]
            if re.match(r"^h?-?[0-9a-f]+-h?-?[0-9a-f]+ ", body):
                return body
        return ""


@dataclass(frozen=True)
class KnownDifference:
    """One deliberate difference: why, and exactly which output it covers."""

    id: str
    reason: str
    rewrite: Callable[[str], str] | None = None
    explains: Callable[[Mismatch], bool] | None = None
    vmsim_bug: bool = False

    def __post_init__(self) -> None:
        if (self.rewrite is None) == (self.explains is None):
            raise ValueError(f"{self.id}: give exactly one of rewrite / explains")

    @property
    def kind(self) -> str:
        return "rewrite" if self.rewrite is not None else "explains"


def _strip_child(line: str) -> tuple[str, str]:
    lead = ""
    while line.startswith(CHILD):
        lead += CHILD
        line = line[len(CHILD) :]
    return lead, line


def _kb(line: str) -> int:
    """The number of a smaps 'Field:  N kB' line (0 if none)."""
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


def _faults(line: str) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 3 and parts[0] == "faults":
        return int(parts[1]), int(parts[2])
    return None


# ---------------------------------------------------------------- shmem inode
SHMEM_LINE = re.compile(r"^(\S+-\S+ \S+ \S+ 00:01 )(\d+)( +)(/dev/zero \(deleted\))$")


def rewrite_shmem_inode(line: str) -> str:
    """The inode of a shared-anonymous mapping's hidden file becomes ``<ino>``.

    The column where the name starts (the kernel's padding, computed from the
    width of the inode number) is kept as ``@col N``, so the padding is still
    compared.
    """
    body = line[len(CHILD) :] if line.startswith(CHILD) else line
    lead = line[: len(line) - len(body)]
    while body.startswith(CHILD):
        lead += CHILD
        body = body[len(CHILD) :]
    m = SHMEM_LINE.match(body)
    if not m:
        return line
    col = len(m[1]) + len(m[2]) + len(m[3])
    return f"{lead}{m[1]}<ino> @col{col} {m[4]}"


# ------------------------------------------------------------------ matchers
DIRTY_FIELDS = ("Pss_Dirty", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")
POPULATE_MMAP = 0x8000 | 0x2000  # MAP_POPULATE | MAP_LOCKED
PAGE_STATE_FIELDS = ("Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Private_Clean", "Referenced",
                     "pagemap", "faults", "ret", "data")


def _num(tok: str) -> int:
    try:
        return int(tok, 0)
    except ValueError:
        return 0


def _dirty_more(m: Mismatch) -> bool:
    """The differing line is a dirty-accounting smaps field and the host counts more dirty."""
    if m.field() not in DIRTY_FIELDS:
        return False
    host, sim = m.values()
    return _kb(host) > _kb(sim) if "Dirty" in m.field() else _kb(host) < _kb(sim)


def _dirtier_file_page(m: Mismatch) -> bool:
    """The host counts a file page dirty that vmsim has already written back."""
    if "<ino:" not in m.header():
        return False
    dirty_more = _dirty_more(m)
    cleaning = {"pwrite", "ftruncate", "endchild", "exit", "munmap", "mremap", "madvise",
                "mmap", "close", "msync"}
    return dirty_more and any(w[0] in cleaning for w in m.ops_so_far())


def _lazyfree_batched(m: Mismatch) -> bool:
    host, sim = m.values()
    return m.field() == "LazyFree" and _kb(host) < _kb(sim) and any(
        w[0] == "madvise" and len(w) > 3 and _num(w[3]) == 8 for w in m.ops_so_far())


def _populate_counted_major(m: Mismatch) -> bool:
    """A populate of uncached file pages counted as a major fault by vmsim, minor by Linux."""
    host, sim = (_faults(v) for v in m.values())
    if host is None or sim is None or sum(host) != sum(sim) or sim[1] <= host[1]:
        return False
    w = m.step_line.split()
    if not w:
        return False
    if w[0] == "mmap":
        return len(w) > 4 and bool(_num(w[4]) & POPULATE_MMAP)
    return w[0] in ("mlock", "mlock2", "mlockall", "mremap", "mprotect", "brk")


def _mprotect_sets_young(m: Mismatch) -> bool:
    host, sim = m.values()
    return m.op == "mprotect" and m.field() == "Referenced" and _kb(sim) > _kb(host)


def _gup_not_touched(m: Mismatch) -> bool:
    """Pages populated through GUP lack PG_referenced (seen once their PTEs are old), or
    PG_dirty after a write populate, in vmsim."""
    host, sim = m.values()
    referenced = m.field() == "Referenced" and _kb(host) > _kb(sim)
    if not referenced and not _dirty_more(m):
        return False
    for w in m.ops_so_far():
        if w[0] == "mmap" and len(w) > 4 and _num(w[4]) & POPULATE_MMAP:
            return True
        if w[0] in ("mlock", "mlock2", "mlockall", "brk"):
            return True
        if w[0] == "madvise" and len(w) > 3 and _num(w[3]) in (22, 23):  # MADV_POPULATE_*
            return True
    return False


def _exec_readaround(m: Mismatch) -> bool:
    """Page-cache state after a fault in an executable file mapping (6.16+ read-around rule)."""
    if m.field() not in PAGE_STATE_FIELDS:
        return False
    for w in m.ops_so_far():
        if w[0] == "mmap" and len(w) > 5 and _num(w[3]) & 4 and not _num(w[4]) & 0x20:
            return True
        if w[0] == "mprotect" and len(w) > 3 and _num(w[3]) & 4:
            return True
    return False


def _exec_fetch_not_present(m: Mismatch) -> bool:
    """The step is one instruction fetch: its result (SIGBUS for a file page past EOF, where
    vmsim says SEGV_ACCERR) or the page it mapped."""
    w = m.step_line.split()
    if not (len(w) == 3 and w[0] == "touch" and w[2] == "x"):
        return False
    host, sim = m.values()
    if sim.startswith("sig "):
        return sim.split()[1:3] == ["SIGSEGV", "ACCERR"] and host.startswith("sig SIGBUS")
    return m.field() in (*PAGE_STATE_FIELDS, "Anonymous", "Private_Dirty", "Shared_Dirty")


def _maybe_guard_flag(m: Mismatch) -> bool:
    host, sim = m.values()
    if not (host.startswith("VmFlags:") and sim.startswith("VmFlags:")):
        return False
    return [t for t in host.split() if t != "gu"] == sim.split() and "gu" in host.split()


def _mremap_args(m: Mismatch) -> tuple[int, int, int, int, int] | None:
    w = m.step_line.split()
    if m.op != "mremap" or len(w) != 6:
        return None
    old, old_len, new_len, flags, new = (_num(t) for t in w[1:])
    return old, old_len, new_len, flags, new


def _mremap_multi_vma_move(m: Mismatch) -> bool:
    args = _mremap_args(m)
    host, sim = m.values()
    if args is None or not host.startswith("ret +") or sim != "ret -14":
        return False
    _, old_len, new_len, flags, _ = args
    return flags & 3 == 3 and old_len == new_len


def _mremap_einval_after_unmap(m: Mismatch) -> bool:
    """Both sides refuse the mremap with -EFAULT, but vmsim has already unmapped something."""
    args = _mremap_args(m)
    if args is None or not args[3] & 2 or m.index < 2:
        return False
    res = [ln for ln in m.host[: m.index] if _strip_child(ln)[1].startswith("ret ")]
    return bool(res) and _strip_child(res[0])[1] == "ret -14" and res[0] in m.sim


def _truncate_cached_eof_page(m: Mismatch) -> bool:
    """After ftruncate the host has the EOF page cached (minor fault, resident); vmsim not."""
    if not any(w[0] == "ftruncate" for w in m.ops_so_far()):
        return False
    host, sim = m.values()
    hf, sf = _faults(host), _faults(sim)
    if hf is not None and sf is not None:
        return sum(hf) == sum(sf) and hf[1] < sf[1]
    if m.op == "mincore" and host.startswith("ret 0 ") and sim.startswith("ret 0 "):
        h, s = host.split()[2], sim.split()[2]
        return len(h) == len(s) and all(a >= b for a, b in zip(h, s, strict=True))
    return False


def _advice(m: Mismatch) -> int | None:
    w = m.step_line.split()
    return _num(w[3]) if m.op == "madvise" and len(w) == 4 else None


def _pageout_shared_kept(m: Mismatch) -> bool:
    """MADV_PAGEOUT of a shared mapping: the host unmapped the pages, vmsim kept them."""
    head = m.header().split()
    if _advice(m) != 21 or len(head) < 2 or not head[1].endswith("s"):
        return False
    host, sim = m.values()
    if m.field() == "pagemap":
        return True
    return m.field() in ("Rss", "Pss", "Pss_Dirty", "Private_Clean", "Private_Dirty",
                         "Shared_Clean", "Shared_Dirty", "Referenced") and _kb(host) < _kb(sim)


def _free_shared_page_skipped(m: Mismatch) -> bool:
    """MADV_FREE of a COW-shared anonymous page: the host cleaned it, vmsim skipped it."""
    if _advice(m) != 8:
        return False
    host, sim = m.values()
    f = m.field()
    if f in ("Pss_Dirty", "Shared_Dirty", "Private_Dirty"):
        return _kb(host) < _kb(sim)
    if f in ("Shared_Clean", "Private_Clean", "LazyFree"):
        return _kb(host) > _kb(sim)
    return False


def _mlock_empty_range(m: Mismatch) -> bool:
    w = m.step_line.split()
    host, sim = m.values()
    return (m.op in ("mlock", "mlock2") and len(w) >= 3 and _num(w[2]) == 0
            and host == "ret 0" and sim == "ret -12")


def _madvise_cold_keeps_young(m: Mismatch) -> bool:
    w = m.step_line.split()
    host, sim = m.values()
    return (m.op == "madvise" and len(w) == 4 and _num(w[3]) in (20, 21)
            and m.field() == "Referenced" and _kb(host) < _kb(sim))


def _mprotect_locked_not_populated(m: Mismatch) -> bool:
    """mprotect granting write to a locked private area: the host populated it, vmsim did not."""
    w = m.step_line.split()
    if m.op != "mprotect" or len(w) != 4 or not _num(w[3]) & 2:
        return False
    if m.field() not in ("Rss", "Pss", "pagemap", "faults", "Anonymous", "Private_Dirty",
                         "Pss_Dirty", "Referenced", "Locked", "Private_Clean"):
        return False
    return "lo" in _vmflags_after(m)


def _vmflags_after(m: Mismatch) -> list[str]:
    """The VmFlags of the VMA block holding the differing line (host side)."""
    for line in m.host[m.index :]:
        body = _strip_child(line)[1]
        if body.startswith("VmFlags:"):
            return body.split()[1:]
    return []


def _mremap_overlap_order(m: Mismatch) -> bool:
    host, sim = m.values()
    w = m.step_line.split()
    if m.op != "mremap" or host != "ret -22" or sim != "ret -14" or len(w) != 6:
        return False
    old, old_len, new_len, flags, new = (_num(t) for t in w[1:])
    return bool(flags & 2) and old < new + new_len and new < old + old_len


KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        id="shmem-inode",
        reason=(
            "A shared anonymous mapping is backed by a hidden shmem file, shown in maps/smaps "
            "as '00:01 INODE /dev/zero (deleted)'.  The host's inode number comes from a "
            "machine-wide counter (get_next_ino()) that every shmem/tmpfs inode of every "
            "process advances, so it differs from run to run; vmsim numbers its own.  The "
            "number becomes <ino>, and the padding before the name is still compared."
        ),
        rewrite=rewrite_shmem_inode,
    ),
    KnownDifference(
        id="page-cache-write-through",
        reason=(
            "vmsim writes file data through to the host file at once - write()/pwrite(), the "
            "partial page ftruncate() zeroes, and a shared mapping's dirty pages when it is "
            "unmapped (also at exit) - so its page-cache pages stay clean.  Linux leaves them "
            "dirty until writeback, so smaps shows them in Shared_/Private_Dirty (and "
            "Pss_Dirty).  Matches a file VMA that the host counts dirtier than vmsim after "
            "such an operation."
        ),
        explains=_dirtier_file_page,
    ),
    KnownDifference(
        id="truncate-caches-eof-page",
        reason=(
            "vmsim has no file-system model.  On the host (ext4), ftruncate() zeroes the "
            "tail of the block holding the old or new end of file through the page cache, "
            "which brings that page into the cache: a later fault on it is minor and mincore "
            "shows it resident.  vmsim's truncate leaves it uncached (a major fault later).  "
            "Matches fault counts or mincore that differ only that way after an ftruncate."
        ),
        explains=_truncate_cached_eof_page,
    ),
    KnownDifference(
        id="lazyfree-batching",
        reason=(
            "MADV_FREE marks pages lazily free through a per-CPU folio batch (lru_lazyfree); "
            "PG_swapbacked is cleared, and smaps counts the page as LazyFree, only when the "
            "batch drains.  vmsim has no per-CPU LRU batches and applies it at once.  Matches "
            "a LazyFree line where the host shows less than vmsim after MADV_FREE."
        ),
        explains=_lazyfree_batched,
    ),
    KnownDifference(
        id="populate-fault-accounting",
        reason=(
            "vmsim bug, to fix: populating uncached file pages (MAP_POPULATE, MAP_LOCKED, "
            "mlock, mlockall, and mremap/mprotect/brk of locked areas) is counted as a major "
            "fault.  Linux's __mm_populate() faults with populate_vma_page_range() -> "
            "__get_user_pages() without FOLL_TRIED: the first fault drops the mmap lock for "
            "the read (VM_FAULT_RETRY, not accounted), then __mm_populate() re-takes it and "
            "faults again without FAULT_FLAG_TRIED, finding the page cached: mm_account_fault() "
            "counts a minor fault (MADV_POPULATE_* retries with FOLL_TRIED: major, as vmsim)."
        ),
        explains=_populate_counted_major,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="mprotect-sets-accessed",
        reason=(
            "vmsim bug, to fix: mprotect's change_protection() ORs the whole vm_page_prot, "
            "accessed bit included, into every present PTE, so old PTEs (a child's after fork, "
            "for example) become young and smaps' Referenced grows.  Linux's pte_modify() "
            "keeps _PAGE_CHG_MASK (frame, accessed, dirty, soft-dirty, ...) from the old PTE "
            "and takes only the other bits from the new protection."
        ),
        explains=_mprotect_sets_young,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="gup-foll-touch",
        reason=(
            "vmsim bug, to fix: pages populated through get_user_pages (mlock, MAP_POPULATE, "
            "MAP_LOCKED, MADV_POPULATE_*, brk under mlockall) are not 'touched'.  Linux's "
            "follow_page_pte() with FOLL_TOUCH calls folio_mark_accessed() (PG_referenced: "
            "smaps counts the page Referenced even where the PTE is old, e.g. in a child after "
            "fork) and, for FOLL_WRITE on a clean PTE, folio_mark_dirty() (a populated "
            "shared page shows as dirty)."
        ),
        explains=_gup_not_touched,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="exec-read-around",
        reason=(
            "vmsim bug, to fix: a fault in an executable file mapping reads around the page "
            "like any other (ra_pages centred on the fault).  Since Linux 6.16 "
            "do_sync_mmap_readahead() treats VM_EXEC specially: the read starts at the fault "
            "(rounded down to exec_folio_order(), 0 on x86), is clamped to the VMA, and has no "
            "async part, so fewer pages are cached (mincore, fault-around, later major faults)."
        ),
        explains=_exec_readaround,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="exec-fetch-not-present",
        reason=(
            "vmsim bug, to fix: an instruction fetch from a not-present page of a readable but "
            "not executable VMA fails at once in vmsim.  x86's access_error() does not look "
            "at X86_PF_INSTR: a fetch from a not-present page only needs an accessible VMA, so "
            "Linux maps the page (the zero page for anonymous memory; a minor fault), the "
            "retried fetch hits NX and only that protection fault is SIGSEGV/SEGV_ACCERR."
        ),
        explains=_exec_fetch_not_present,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="vm-maybe-guard",
        reason=(
            "vmsim bug, to fix: MADV_GUARD_INSTALL sets VM_MAYBE_GUARD on the VMA in the host "
            "kernel, shown as 'gu' in smaps VmFlags; vmsim does not model that flag.  Matches "
            "VmFlags lines that differ only by 'gu'."
        ),
        explains=_maybe_guard_flag,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="mremap-overlap-check-order",
        reason=(
            "vmsim bug, to fix: mremap(MREMAP_FIXED) with overlapping old and new ranges and "
            "no VMA at the old address returns -EFAULT in vmsim; Linux checks the overlap "
            "(-EINVAL) in check_mremap_params()/mremap_to() before it looks up the VMA."
        ),
        explains=_mremap_overlap_order,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="madvise-cold-keeps-young",
        reason=(
            "vmsim bug, to fix: MADV_COLD and MADV_PAGEOUT leave the accessed bits alone in "
            "vmsim.  Linux's madvise_cold_or_pageout_pte_range() clears the PTE's young bit "
            "(ptep_test_and_clear_young) and the folio's PG_referenced before deactivating "
            "(or reclaiming) it, so smaps' Referenced drops."
        ),
        explains=_madvise_cold_keeps_young,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="mprotect-locked-populate",
        reason=(
            "vmsim bug, to fix: mprotect() that grants write to a VM_LOCKED private area does "
            "not populate it.  Linux's mprotect_fixup() calls populate_vma_page_range() when "
            "(oldflags & (VM_WRITE|VM_SHARED|VM_LOCKED)) == VM_LOCKED and the new flags have "
            "VM_WRITE, so locked pages are faulted in (and COW-broken) for writing at once."
        ),
        explains=_mprotect_locked_not_populated,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="madvise-pageout-shared",
        reason=(
            "vmsim bug, to fix: MADV_PAGEOUT leaves the pages of a MAP_SHARED mapping (file or "
            "shmem) mapped.  Linux's madvise_cold_or_pageout_pte_range() skips only folios "
            "mapped by other processes too; the rest go to reclaim_pages(), which unmaps them "
            "(try_to_unmap) and frees the clean ones, so the VMA's Rss drops."
        ),
        explains=_pageout_shared_kept,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="madvise-free-shared-page",
        reason=(
            "vmsim bug, to fix: MADV_FREE skips an anonymous page that is still COW-shared "
            "with another process.  Linux's madvise_free_pte_range() skips a non-exclusive "
            "folio only when it is PG_dirty or in the swap cache; otherwise it cleans and "
            "ages this process's PTE and marks the folio lazy-free, so smaps shows the page "
            "clean (and LazyFree once the batch drains)."
        ),
        explains=_free_shared_page_skipped,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="mlock-empty-range",
        reason=(
            "vmsim bug, to fix: mlock()/mlock2() with length 0 at an address inside a "
            "PROT_NONE VMA returns -ENOMEM.  Linux's apply_vma_lock_flags() returns 0 for an "
            "empty range before looking at any VMA, and __mm_populate() of nothing succeeds."
        ),
        explains=_mlock_empty_range,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="mremap-multi-vma-move",
        reason=(
            "vmsim bug, to fix: since Linux 6.17 a pure move - mremap(MREMAP_MAYMOVE|"
            "MREMAP_FIXED[|MREMAP_DONTUNMAP]) with old_len == new_len - may span several "
            "VMAs and the gaps between them; each VMA moves to the same offset in the new "
            "range.  vmsim still requires one VMA and returns -EFAULT."
        ),
        explains=_mremap_multi_vma_move,
        vmsim_bug=True,
    ),
    KnownDifference(
        id="mremap-efault-side-effects",
        reason=(
            "vmsim bug, to fix: a MREMAP_FIXED move that fails with -EFAULT (no single VMA "
            "holds the old range) has already unmapped the destination range (and the "
            "shrunk tail) in vmsim.  Linux 6.18 checks the source VMA before it unmaps "
            "anything, so the failed call changes nothing."
        ),
        explains=_mremap_einval_after_unmap,
        vmsim_bug=True,
    ),
)


def by_id(ident: str) -> KnownDifference:
    for kd in KNOWN_DIFFERENCES:
        if kd.id == ident:
            return kd
    raise KeyError(ident)


def explain(mismatch: Mismatch,
            table: Sequence[KnownDifference] = KNOWN_DIFFERENCES) -> KnownDifference | None:
    """The known difference that explains *mismatch*, if any."""
    for kd in table:
        if kd.explains is not None and kd.explains(mismatch):
            return kd
    return None
