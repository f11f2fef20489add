"""vm_area_struct, the VM_* flags, and the ordered VMA tree.

The tree is a treap ordered by ``vm_start`` and augmented, like the kernel's
pre-6.1 rbtree (``rb_subtree_gap`` in mm/mmap.c), with the largest free gap
below any VMA of each subtree. That makes ``find_vma`` and the top-down gap
search of ``get_unmapped_area`` O(log n). (Linux 6.1+ keeps the same
information in the maple tree.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmsim.mm.filemap import File
    from vmsim.mm.mm_struct import MmStruct

# include/linux/mm.h
VM_NONE = 0x0
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_GROWSDOWN = 0x100
VM_UFFD_MISSING = 0x200
VM_PFNMAP = 0x400
VM_MAYOVERLAY = 0x800  # nommu only; MMU kernels reuse the bit:
VM_MAYBE_GUARD = 0x800  # Linux 6.18: the area may hold guard markers ("gu"); sticky, copied on fork
VM_UFFD_WP = 0x1000
VM_LOCKED = 0x2000
VM_IO = 0x4000
VM_SEQ_READ = 0x8000
VM_RAND_READ = 0x10000
VM_DONTCOPY = 0x20000
VM_DONTEXPAND = 0x40000
VM_LOCKONFAULT = 0x80000
VM_ACCOUNT = 0x100000
VM_NORESERVE = 0x200000
VM_HUGETLB = 0x400000
VM_SYNC = 0x800000
VM_ARCH_1 = 0x1000000
VM_WIPEONFORK = 0x2000000
VM_DONTDUMP = 0x4000000
VM_SOFTDIRTY = 0x8000000
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000
VM_DROPPABLE = 1 << 40  # MAP_DROPPABLE (Linux 6.11, 64-bit only): reclaim may just drop the pages

VM_STACK = VM_GROWSDOWN
VM_STICKY = VM_MAYBE_GUARD  # kept by a merged area if either side had it
VM_IGNORE_MERGE = VM_SOFTDIRTY | VM_STICKY  # differences that do not prevent a merge
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK_FLAGS = VM_GROWSDOWN | VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT


class AnonVma:
    """anon_vma: the reverse-map root shared by a process's anonymous pages and its forks."""

    _next_id = 0

    def __init__(self, parent: AnonVma | None = None) -> None:
        AnonVma._next_id += 1
        self.id = AnonVma._next_id
        self.root: AnonVma = parent.root if parent else self
        self.parent = parent
        self.refcount = 0

    def __repr__(self) -> str:
        return f"AnonVma#{self.id}"


@dataclass(eq=False)
class Vma:
    """vm_area_struct: one contiguous range [vm_start, vm_end) with one set of rights.

    `vm_pgoff` is in pages; for anonymous areas it is vm_start >> PAGE_SHIFT
    as the kernel sets it, so anonymous merges also need contiguous offsets.
    `anon_vma_chain` lists the anon_vmas this area's pages may belong to
    (its own plus those inherited through fork).
    """

    vm_start: int
    vm_end: int
    vm_flags: int
    vm_page_prot: int = 0
    vm_pgoff: int = 0
    vm_file: File | None = None
    anon_vma: AnonVma | None = None
    anon_vma_chain: list[AnonVma] = field(default_factory=list)
    anon_name: str | None = None  # a PR_SET_VMA_ANON_NAME name, shown as [anon:NAME]
    vm_mm: MmStruct | None = field(default=None, repr=False)
    vm_private_data: object = field(default=None, repr=False)  # hugetlb: its HugetlbArea
    # treap links and augmentation (the kernel's vm_rb and rb_subtree_gap)
    _left: Vma | None = field(default=None, repr=False)
    _right: Vma | None = field(default=None, repr=False)
    _prio: int = field(default=0, repr=False)
    _gap: int = field(default=0, repr=False)
    _max_gap: int = field(default=0, repr=False)

    @property
    def size(self) -> int:
        return self.vm_end - self.vm_start

    def is_anonymous(self) -> bool:
        return self.vm_file is None

    def is_shared(self) -> bool:
        return bool(self.vm_flags & VM_SHARED)

    def contains(self, addr: int) -> bool:
        return self.vm_start <= addr < self.vm_end

    def linear_page_index(self, addr: int, page_shift: int) -> int:
        """linear_page_index(): the file page index that `addr` maps."""
        return ((addr - self.vm_start) >> page_shift) + self.vm_pgoff

    def __repr__(self) -> str:
        return (f"Vma({self.vm_start:#x}-{self.vm_end:#x} flags={self.vm_flags:#x} "
                f"pgoff={self.vm_pgoff:#x} file={getattr(self.vm_file, 'path', None)})")


def _pull(t: Vma) -> None:
    best = t._gap
    if t._left is not None and t._left._max_gap > best:
        best = t._left._max_gap
    if t._right is not None and t._right._max_gap > best:
        best = t._right._max_gap
    t._max_gap = best


def _split(t: Vma | None, key: int) -> tuple[Vma | None, Vma | None]:
    """Split a treap into (starts < key, starts >= key)."""
    if t is None:
        return None, None
    if t.vm_start < key:
        left, right = _split(t._right, key)
        t._right = left
        _pull(t)
        return t, right
    left, right = _split(t._left, key)
    t._left = right
    _pull(t)
    return left, t


def _merge(a: Vma | None, b: Vma | None) -> Vma | None:
    """Join two treaps where every key of `a` is below every key of `b`."""
    if a is None:
        return b
    if b is None:
        return a
    if a._prio > b._prio:
        a._right = _merge(a._right, b)
        _pull(a)
        return a
    b._left = _merge(a, b._left)
    _pull(b)
    return b


class VmaTree:
    """The ordered set of an mm's VMAs (the kernel's mm_mt / mm_rb).

    `guard_gap` is ``stack_guard_gap``: the free space a VM_GROWSDOWN area
    claims below itself, which the gap search must leave alone.
    """

    def __init__(self, guard_gap: int, seed: int = 1) -> None:
        self.root: Vma | None = None
        self.count = 0
        self.guard_gap = guard_gap
        self._rand = seed or 1

    # ---- gap bookkeeping -------------------------------------------------
    def vm_start_gap(self, vma: Vma) -> int:
        """vm_start_gap(): the start including a growsdown guard gap."""
        if vma.vm_flags & VM_GROWSDOWN:
            return max(vma.vm_start - self.guard_gap, 0)
        return vma.vm_start

    @staticmethod
    def vm_end_gap(vma: Vma) -> int:
        return vma.vm_end

    def _gap_below(self, vma: Vma, prev: Vma | None) -> int:
        start = self.vm_start_gap(vma)
        end = self.vm_end_gap(prev) if prev else 0
        return max(start - end, 0)

    def _next_prio(self) -> int:
        # xorshift32: deterministic priorities for a deterministic tree shape
        x = self._rand
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rand = x
        return x

    def _refresh(self, vma: Vma) -> None:
        """Recompute vma's gap (after its predecessor changed) and the path above it."""
        path: list[Vma] = []
        t = self.root
        while t is not None and t is not vma:
            path.append(t)
            t = t._left if vma.vm_start < t.vm_start else t._right
        if t is None:
            raise AssertionError(f"VmaTree._refresh: {vma!r} is not in the tree")
        vma._gap = self._gap_below(vma, self.prev(vma))
        _pull(vma)
        for node in reversed(path):
            _pull(node)

    # ---- updates ------------------------------------------------------------
    def insert(self, vma: Vma) -> None:
        """Add a VMA that overlaps none in the tree."""
        left, right = _split(self.root, vma.vm_start)
        vma._left = vma._right = None
        vma._prio = self._next_prio()
        self.root = _merge(_merge(left, vma), right)
        self.count += 1
        self._refresh(vma)
        nxt = self.next(vma)
        if nxt is not None:
            self._refresh(nxt)

    def remove(self, vma: Vma) -> None:
        nxt = self.next(vma)
        left, rest = _split(self.root, vma.vm_start)
        mid, right = _split(rest, vma.vm_start + 1)
        if mid is not vma:
            raise AssertionError(f"VmaTree.remove: {vma!r} is not in the tree")
        vma._left = vma._right = None
        self.root = _merge(left, right)
        self.count -= 1
        if nxt is not None:
            self._refresh(nxt)

    def update(self, vma: Vma, start: int, end: int, pgoff: int) -> None:
        """Change a VMA's range in place (vma_set_range + tree update)."""
        self.remove(vma)
        vma.vm_start, vma.vm_end, vma.vm_pgoff = start, end, pgoff
        self.insert(vma)

    # ---- queries ------------------------------------------------------------
    def find_vma(self, addr: int) -> Vma | None:
        """find_vma(): the first VMA with vm_end > addr (it may start above addr)."""
        t = self.root
        best = None
        while t is not None:
            if t.vm_end > addr:
                best = t
                t = t._left
            else:
                t = t._right
        return best

    def find_vma_prev(self, addr: int) -> tuple[Vma | None, Vma | None]:
        """find_vma_prev(): (find_vma(addr), the VMA before it)."""
        vma = self.find_vma(addr)
        prev = self.prev(vma) if vma is not None else self.last()
        return vma, prev

    def find_vma_intersection(self, start: int, end: int) -> Vma | None:
        """The first VMA intersecting [start, end), or None."""
        vma = self.find_vma(start)
        if vma is not None and vma.vm_start < end:
            return vma
        return None

    def prev(self, vma: Vma) -> Vma | None:
        """The VMA just below `vma` (largest vm_start < vma.vm_start)."""
        t = self.root
        best = None
        key = vma.vm_start
        while t is not None:
            if t.vm_start < key:
                best = t
                t = t._right
            else:
                t = t._left
        return best

    def next(self, vma: Vma) -> Vma | None:
        return self.find_vma(vma.vm_end)

    def first(self) -> Vma | None:
        t = self.root
        while t is not None and t._left is not None:
            t = t._left
        return t

    def last(self) -> Vma | None:
        t = self.root
        while t is not None and t._right is not None:
            t = t._right
        return t

    def range(self, start: int, end: int) -> list[Vma]:
        """Every VMA intersecting [start, end), in address order (none for an empty range)."""
        out: list[Vma] = []
        if start >= end:
            return out

        def collect(t: Vma | None) -> None:
            if t is None:
                return
            if t.vm_start >= start:
                collect(t._left)
            if t.vm_end > start and t.vm_start < end:
                out.append(t)
            if t.vm_start < end:
                collect(t._right)

        collect(self.root)
        return out

    def __iter__(self) -> Iterator[Vma]:
        stack: list[Vma] = []
        t = self.root
        while stack or t is not None:
            while t is not None:
                stack.append(t)
                t = t._left
            t = stack.pop()
            yield t
            t = t._right

    def __len__(self) -> int:
        return self.count

    # ---- gap search -------------------------------------------------------------
    def unmapped_area_topdown(self, length: int, low_limit: int, high_limit: int,
                              align_mask: int = 0, align_offset: int = 0) -> int | None:
        """The highest address a with [a, a+length) free, low_limit <= a, a+length <= high_limit.

        Models unmapped_area_topdown() (mm/mmap.c). Guard gaps of growsdown
        areas count as used. Subtrees whose largest gap is too small are
        never entered, so the search is O(log n) away from the limits.
        """
        need = length + align_mask
        if need < length or high_limit - low_limit < need:
            return None

        def fit(gap_start: int, gap_end: int) -> int | None:
            gap_start = max(gap_start, low_limit)
            gap_end = min(gap_end, high_limit)
            if gap_end - gap_start < length:
                return None
            addr = gap_end - length
            addr -= (addr - align_offset) & align_mask
            return addr if addr >= gap_start else None

        last = self.last()
        top_start = self.vm_end_gap(last) if last else 0
        found = fit(top_start, high_limit)
        if found is not None:
            return found

        def search(t: Vma | None) -> int | None:
            if t is None or t._max_gap < length:
                return None
            if t.vm_end < high_limit:
                res = search(t._right)
                if res is not None:
                    return res
            if t._gap >= length:
                gap_end = self.vm_start_gap(t)
                res = fit(gap_end - t._gap, gap_end)
                if res is not None:
                    return res
            if t.vm_start > low_limit:
                return search(t._left)
            return None

        return search(self.root)

    def unmapped_area(self, length: int, low_limit: int, high_limit: int,
                      align_mask: int = 0, align_offset: int = 0) -> int | None:
        """The lowest free address (unmapped_area(), the bottom-up search)."""
        if high_limit - low_limit < length + align_mask:
            return None

        def fit(gap_start: int, gap_end: int) -> int | None:
            gap_start = max(gap_start, low_limit)
            gap_end = min(gap_end, high_limit)
            addr = gap_start + ((align_offset - gap_start) & align_mask)
            return addr if addr + length <= gap_end else None

        def search(t: Vma | None) -> int | None:
            if t is None or t._max_gap < length:
                return None
            if t.vm_start > low_limit:
                res = search(t._left)
                if res is not None:
                    return res
            if t._gap >= length:
                gap_end = self.vm_start_gap(t)
                res = fit(gap_end - t._gap, gap_end)
                if res is not None:
                    return res
            if t.vm_end < high_limit:
                return search(t._right)
            return None

        found = search(self.root)
        if found is not None:
            return found
        last = self.last()
        return fit(self.vm_end_gap(last) if last else 0, high_limit)

    def check(self) -> list[str]:
        """Invariant violations of the tree itself (order, overlap, augmentation)."""
        errors: list[str] = []
        prev: Vma | None = None
        n = 0
        for vma in self:
            n += 1
            if vma.vm_start >= vma.vm_end:
                errors.append(f"empty or inverted VMA {vma!r}")
            if prev is not None and prev.vm_end > vma.vm_start:
                errors.append(f"VMAs overlap or are unsorted: {prev!r} then {vma!r}")
            if vma._gap != self._gap_below(vma, prev):
                errors.append(f"stale gap on {vma!r}")
            prev = vma
        if n != self.count:
            errors.append(f"tree holds {n} VMAs but count says {self.count}")

        def agg(t: Vma | None) -> int:
            if t is None:
                return 0
            best = max(t._gap, agg(t._left), agg(t._right))
            if best != t._max_gap:
                errors.append(f"stale subtree gap on {t!r}")
            return best

        agg(self.root)
        return errors


def vma_dump(vmas: Any) -> str:
    """A one-line-per-VMA dump for error messages."""
    return "\n".join(repr(v) for v in vmas)
