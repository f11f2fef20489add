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


def _lru_add_batched(m: Mismatch) -> bool:
    """MADV_COLD/PAGEOUT left a page young on the host because it was not on an LRU list yet."""
    if _advice(m) not in (20, 21) or m.field() != "Referenced":
        return False
    host, sim = m.values()
    return _kb(host) > _kb(sim)


def _faults(line: str) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 3 and parts[0] == "faults" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return None


def _populates_file(m: Mismatch) -> bool:
    """The step faults pages in ahead of use: mmap(MAP_POPULATE|MAP_LOCKED) of a file,
    mlock/mlock2/mlockall, or MADV_POPULATE_READ/WRITE."""
    w = m.step_line.split()
    if m.op == "mmap" and len(w) == 7:
        return _num(w[5]) != -1 and bool(_num(w[4]) & POPULATE_MMAP)
    if m.op in ("mlock", "mlock2", "mlockall"):
        return True
    return _advice(m) in (22, 23)


def _readahead_in_flight(m: Mismatch) -> bool:
    """A populating step that the host needed more minor faults for, all else equal."""
    host, sim = m.values()
    hf, sf = _faults(host), _faults(sim)
    return (hf is not None and sf is not None and hf[1] == sf[1] and hf[0] > sf[0]
            and _populates_file(m))


def _advice(m: Mismatch) -> int | None:
    w = m.step_line.split()
    return _num(w[3]) if m.op == "madvise" and len(w) == 4 else None


def _vmflags_after(m: Mismatch) -> list[str]:
    """The VmFlags of the VMA block holding the differing line (host side)."""
    for line in m.host[m.index :]:
        body = _strip_child(line)[1]
        if body.startswith("VmFlags:"):
            return body.split()[1:]
    return []


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
        id="readahead-io-in-flight",
        reason=(
            "A fault that misses the page cache reads a read-ahead window in one I/O but "
            "waits only for its own page; when the retried fault maps around it, the other "
            "pages of the window may still be under I/O (not uptodate) on the host, so they "
            "are skipped and a populating call faults on them again.  Whether the I/O has "
            "finished depends on the host's load (on an idle host the same script gives the "
            "fewer faults vmsim gives: its reads complete at once).  Matches a populating "
            "step (mmap with MAP_POPULATE/MAP_LOCKED of a file, mlock*, MADV_POPULATE_*) "
            "whose only difference is more minor faults on the host, major faults equal."
        ),
        explains=_readahead_in_flight,
    ),
    KnownDifference(
        id="lru-add-batching",
        reason=(
            "A page faulted in just before MADV_COLD/MADV_PAGEOUT may still sit in the host's "
            "per-CPU LRU-add batch, and madvise_cold_or_pageout_pte_range() skips folios not on "
            "an LRU list, leaving them young; whether it has drained depends on timing, so the "
            "host's Referenced varies between runs.  vmsim has no per-CPU batches and always "
            "ages the page.  Matches a Referenced line after MADV_COLD/PAGEOUT where the host "
            "shows more than vmsim."
        ),
        explains=_lru_add_batched,
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
