"""Pictures of an address-space window, for VMA merge/split tests.

In the style of the kernel's tools/testing/vma, a test is *layout ->
operation -> expected picture*.  A picture is a string drawing a window of
consecutive pages, one character per page:

* ``.`` is an unmapped page;
* a letter is a VMA; the pages of one VMA carry the same letter, and letters
  are given to the VMAs in address order (A, B, C, ...), one letter per VMA
  *identity*.  So two neighbouring VMAs always differ in letter, even when
  their flags are equal: ``"AAAAA"`` after an mprotect of the middle three
  pages draws as ``"ABBBC"``, and ``"AB"`` means two VMAs that did not merge.

A :class:`Layout` builds such a window from a picture and per-letter
:class:`Props` (protection, anonymous or file + page offset, shared or
private, whether its pages were written so that it has an anon_vma, mlock,
madvise advice, moved there by mremap ...), only through real system calls:
``mmap(MAP_FIXED)``, ``mremap``, ``mlock``, ``madvise`` and stores.

Operations are :class:`Op` values with addresses in *window pages*.  The same
scenario runs on vmsim (:func:`run_vmsim`, which reads the VMA tree) and,
as a line script, on the host kernel through ``vmsim/conform/vmops.c``
(:func:`host_plan` / :func:`check_host_output`, which read
``/proc/self/maps``), so every expected picture can be confirmed by Linux.
A few ops are white-box (they poke vmsim state that no system call reaches,
e.g. setting VM_IO) or need a sysctl; scenarios that use them are vmsim-only.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmsim.mm import mman as m
from vmsim.mm.vma import VM_MAYSHARE, VM_SHARED, VM_SOFTDIRTY, Vma

if TYPE_CHECKING:
    from vmsim.kernel.task import Process
    from vmsim.machine import Machine
    from vmsim.mm.vma import AnonVma

PAGE = 4096
PAGE_SHIFT = 12
#: vmsim address of window page 0 (a fixed, ASLR-independent base).
VMSIM_BASE = 0x7F00_0000_0000
#: offset of window page 0 inside vmops' 64 MiB region on the host.
HOST_WINDOW = 0x10_0000
#: the files a layout may map; each holds FILE_PAGES pages of distinct bytes.
FILES = ("f", "g")
FILE_PAGES = 16
O_RDWR = 2
LETTERS = string.ascii_uppercase + string.ascii_lowercase

#: Where the host fill for :func:`fill_to_limit` goes: far below the usual
#: mmap area and the PIE binary, mapped with MAP_FIXED_NOREPLACE so that a
#: clash fails instead of clobbering.
HOST_FILL_ADDR = 0x2000_0000_0000


# ------------------------------------------------------------------ pictures
def picture(ranges: Iterable[tuple[int, int]], base: int, npages: int) -> str:
    """Draw VMAs given as (start, end) address pairs, in address order, over a window."""
    out = ["."] * npages
    end_win = base + npages * PAGE
    n = 0
    for start, end in sorted(ranges):
        if end <= base or start >= end_win:
            continue
        letter = LETTERS[n]
        n += 1
        for i in range(max(start, base), min(end, end_win), PAGE):
            out[(i - base) // PAGE] = letter
    return "".join(out)


def window_vmas(process: Process, base: int, npages: int) -> list[Vma]:
    """The VMAs intersecting the window, in address order."""
    return process.mm.mm_rb.range(base, base + npages * PAGE)


def render(process: Process, base: int = VMSIM_BASE, npages: int = 16) -> str:
    """The actual layout of the window, read from the process's VMA tree."""
    return picture(((v.vm_start, v.vm_end) for v in window_vmas(process, base, npages)),
                   base, npages)


def letters_to_vmas(process: Process, base: int, npages: int) -> dict[str, Vma]:
    """Letter -> VMA, as :func:`render` assigns the letters."""
    return dict(zip(LETTERS, window_vmas(process, base, npages), strict=False))


@dataclass(frozen=True)
class MapsEntry:
    """One /proc/<pid>/maps line: start and end relative to the vmops base."""

    start: int
    end: int
    perms: str
    offset: int
    path: str


def parse_maps(lines: Sequence[str]) -> list[MapsEntry]:
    out = []
    for line in lines:
        fields = line.split()
        lo, hi = fields[0].split("-")
        if lo.startswith("-"):
            continue  # starts below the region: never inside a window
        out.append(MapsEntry(int(lo, 16), int(hi, 16), fields[1], int(fields[2], 16),
                             fields[5] if len(fields) > 5 else ""))
    return out


def render_maps(entries: Sequence[MapsEntry], npages: int, window: int = HOST_WINDOW) -> str:
    """The picture of host maps entries (relative to the vmops base) over the window."""
    return picture(((e.start, e.end) for e in entries), window, npages)


def validate_picture(pic: str) -> None:
    """A picture must be normalized: letters A, B, C... in address order, one run each."""
    seen: list[str] = []
    prev = "."
    for ch in pic:
        if ch == ".":
            prev = ch
            continue
        if ch not in LETTERS:
            raise ValueError(f"picture {pic!r}: {ch!r} is neither '.' nor a letter")
        if ch != prev:
            if ch in seen:
                raise ValueError(f"picture {pic!r}: VMA {ch} is not one contiguous run")
            if ch != LETTERS[len(seen)]:
                raise ValueError(f"picture {pic!r}: letters must be A, B, C... in address "
                                 f"order (one per VMA), found {ch!r} after {''.join(seen)!r}")
            seen.append(ch)
        prev = ch


def runs(pic: str) -> dict[str, tuple[int, int]]:
    """Letter -> (first page, page count) of a picture."""
    out: dict[str, tuple[int, int]] = {}
    for i, ch in enumerate(pic):
        if ch == ".":
            continue
        first, n = out.get(ch, (i, 0))
        out[ch] = (first, n + 1)
    return out


# ------------------------------------------------------------------ operations
@dataclass(frozen=True)
class Op:
    """One operation on the window.  Addresses are window page numbers.

    ``ret`` is the expected result: None means success (0, or for mmap and
    mremap the page the mapping lands on); otherwise a value such as -12.
    ``host`` is False for white-box ops that no system call can express.
    """

    name: str
    args: tuple[Any, ...] = ()
    ret: int | None = None
    host: bool = True

    def __str__(self) -> str:
        args = ", ".join(_fmt(a) for a in self.args)
        tail = "" if self.ret is None else f" -> {self.ret}"
        return f"{self.name}({args}){tail}"


def _fmt(a: object) -> str:
    return repr(a) if isinstance(a, str) else str(a)


def mmap(page: int, npages: int, prot: str, *, file: str | None = None, pgoff: int | None = None,
         shared: bool = False, handle: int = 0, flags: str = "", ret: int | None = None) -> Op:
    """mmap(MAP_FIXED) of npages at window page `page`.

    Anonymous unless `file` names one of FILES; a file mapping's first page is
    file page `pgoff` (default: `page`, so file offsets follow the window).
    `handle` picks one of several opens of the same file (distinct struct files).
    """
    if file is not None and pgoff is None:
        pgoff = page
    return Op("mmap", (page, npages, prot, file, pgoff or 0, shared, handle, flags), ret)


def munmap(page: int, npages: int, ret: int | None = None) -> Op:
    return Op("munmap", (page, npages), ret)


def mprotect(page: int, npages: int, prot: str, ret: int | None = None) -> Op:
    return Op("mprotect", (page, npages, prot), ret)


def mremap(page: int, old_npages: int, new_npages: int, to: int | None = None,
           may_move: bool = False, ret: int | None = None) -> Op:
    """mremap; with `to`, a move to window page `to` (MREMAP_MAYMOVE|MREMAP_FIXED)."""
    flags = 0
    if to is not None:
        flags = m.MREMAP_MAYMOVE | m.MREMAP_FIXED
    elif may_move:
        flags = m.MREMAP_MAYMOVE
    return Op("mremap", (page, old_npages, new_npages, flags, to), ret)


def mlock(page: int, npages: int, ret: int | None = None) -> Op:
    return Op("mlock", (page, npages), ret)


def mlock_onfault(page: int, npages: int, ret: int | None = None) -> Op:
    return Op("mlock2", (page, npages, m.MLOCK_ONFAULT), ret)


def munlock(page: int, npages: int, ret: int | None = None) -> Op:
    return Op("munlock", (page, npages), ret)


def madvise(page: int, npages: int, advice: int, ret: int | None = None) -> Op:
    return Op("madvise", (page, npages, advice), ret)


def touch(page: int) -> Op:
    """Write one byte to the page (a private page gets an anonymous copy and the VMA an anon_vma)."""
    return Op("touch", (page,))


def setflags(page: int, set_: int = 0, clear: int = 0) -> Op:
    """White-box: change vm_flags of the VMA holding `page` (no system call can do it)."""
    return Op("setflags", (page, set_, clear), host=False)


def setname(page: int, name: str | None) -> Op:
    """White-box: the anon_vma_name of the VMA holding `page` (prctl(PR_SET_VMA_ANON_NAME))."""
    return Op("setname", (page, name), host=False)


def clear_soft_dirty() -> Op:
    """White-box: what ``echo 4 > /proc/self/clear_refs`` does to VMAs (drop VM_SOFTDIRTY)."""
    return Op("clear_soft_dirty", (), host=False)


def fill_to_limit(slack: int = 0) -> Op:
    """Make map_count == max_map_count - slack.

    vmsim: set the sysctl.  Host: add VMAs outside the window (splitting a
    big PROT_NONE area) until a split fails with -ENOMEM, which leaves
    map_count exactly at the limit, then unmap `slack` of the pieces.
    """
    return Op("fill", (slack,))


# ------------------------------------------------------------------ layouts
@dataclass(frozen=True)
class Props:
    """How one letter's VMA is made.

    prot: "rw-", "r--", "r-x"...   file/pgoff/handle: a file mapping (see mmap()).
    shared: MAP_SHARED.            written: store to every page after mapping
    (for a private mapping this gives the VMA an anon_vma).  locked: mlock it.
    advice: madvise advice applied after mapping.  moved_from: map it first
    at that window page (and write it there), then mremap it into place, so an
    anonymous VMA with pages keeps the vm_pgoff of its old address.
    map_flags: more MAP_* words ("noreserve", "locked").
    """

    prot: str = "rw-"
    file: str | None = None
    pgoff: int | None = None
    handle: int = 0
    shared: bool = False
    written: bool = False
    locked: bool = False
    advice: tuple[int, ...] = ()
    moved_from: int | None = None
    map_flags: str = ""

    def __call__(self, **kw: Any) -> Props:
        return replace(self, **kw)


rw = Props("rw-")
ro = Props("r--")
rx = Props("r-x")
rwx = Props("rwx")
noaccess = Props("---")


@dataclass(frozen=True)
class Layout:
    """A window built from a picture: each letter's VMA is mapped in `order`
    (default: address order) with its :class:`Props`, then `extra` ops run."""

    picture: str
    props: dict[str, Props]
    order: str = ""
    extra: tuple[Op, ...] = ()

    def __post_init__(self) -> None:
        validate_picture(self.picture)
        letters = set(runs(self.picture))
        if letters != set(self.props):
            raise ValueError(f"layout {self.picture!r}: props for {sorted(self.props)}, "
                             f"picture has {sorted(letters)}")
        if self.order and sorted(self.order) != sorted(letters):
            raise ValueError(f"layout {self.picture!r}: order {self.order!r} is not a "
                             "permutation of its letters")

    @property
    def npages(self) -> int:
        return len(self.picture)

    def ops(self) -> list[Op]:
        out: list[Op] = []
        spans = runs(self.picture)
        for letter in self.order or "".join(sorted(spans)):
            first, n = spans[letter]
            p = self.props[letter]
            if p.written and "w" not in p.prot:
                raise ValueError(f"{letter}: written=True needs a writable prot")
            at = first if p.moved_from is None else p.moved_from
            pgoff = None if p.file is None else (first if p.pgoff is None else p.pgoff)
            out.append(mmap(at, n, p.prot, file=p.file, pgoff=pgoff, shared=p.shared,
                            handle=p.handle, flags=p.map_flags))
            out.extend(madvise(at, n, adv) for adv in p.advice)
            if p.locked:
                out.append(mlock(at, n))
            if p.written:
                out.extend(touch(i) for i in range(at, at + n))
            if p.moved_from is not None:
                out.append(mremap(p.moved_from, n, n, to=first))
        out.extend(self.extra)
        return out


def setup(pic: str, order: str = "", extra: Sequence[Op] = (), **props: Props) -> Layout:
    """``setup("AA.BB", A=rw, B=ro)``: a layout from a picture and per-letter props."""
    return Layout(pic, props, order, tuple(extra))


# ------------------------------------------------------------------ checks
@dataclass
class Ctx:
    """What checks see (vmsim): letter -> VMA before the steps (after set-up) and after."""

    before: dict[str, Vma]
    before_anon: dict[str, AnonVma | None]
    after: dict[str, Vma]


@dataclass(frozen=True)
class Check:
    """A fact about the final VMAs beyond the picture; `what` says which.

    * ``Check.same(a, b)``: final VMA `a` is the very VMA `b` of the set-up.
    * ``Check.anon(a, b)``: final `a` has the anon_vma that set-up `b` had
      (``b=None``: it has none).
    * ``Check.pgoff(a, file_page=n)`` / ``Check.pgoff(a, anon_page=n)``: vm_pgoff
      of final `a` (an anonymous VMA's is its address >> PAGE_SHIFT, here as a
      window page).  File offsets are also checked on the host (maps column 3).
    * ``Check.flags(a, has=, lacks=)``: VM_* bits of final `a`.
    """

    what: str
    letter: str
    arg: Any = None
    arg2: Any = None

    @staticmethod
    def same(letter: str, before: str) -> Check:
        return Check("same", letter, before)

    @staticmethod
    def anon(letter: str, before: str | None) -> Check:
        return Check("anon", letter, before)

    @staticmethod
    def pgoff(letter: str, file_page: int | None = None, anon_page: int | None = None) -> Check:
        if (file_page is None) == (anon_page is None):
            raise ValueError("give exactly one of file_page / anon_page")
        return Check("pgoff", letter, file_page, anon_page)

    @staticmethod
    def flags(letter: str, has: int = 0, lacks: int = 0) -> Check:
        return Check("flags", letter, has, lacks)

    def __str__(self) -> str:
        return f"{self.what}({self.letter}, {self.arg}, {self.arg2})"

    def vmsim(self, ctx: Ctx) -> str | None:
        """None if the check holds, else a message."""
        vma = ctx.after.get(self.letter)
        if vma is None:
            return f"{self}: no VMA {self.letter} after the steps"
        if self.what == "same":
            want = ctx.before[self.arg]
            if vma is not want:
                return f"{self}: final {self.letter} is {vma!r}, not set-up {self.arg} {want!r}"
        elif self.what == "anon":
            want_anon = None if self.arg is None else ctx.before_anon[self.arg]
            if self.arg is not None and want_anon is None:
                return f"{self}: set-up VMA {self.arg} had no anon_vma to compare with"
            if vma.anon_vma is not want_anon:
                return f"{self}: final {self.letter} has anon_vma {vma.anon_vma!r}, want {want_anon!r}"
        elif self.what == "pgoff":
            want = (self.arg if self.arg is not None
                    else (VMSIM_BASE >> PAGE_SHIFT) + self.arg2)
            if vma.vm_pgoff != want:
                return f"{self}: final {self.letter} vm_pgoff {vma.vm_pgoff:#x}, want {want:#x}"
        elif self.what == "flags":
            if (vma.vm_flags & self.arg) != self.arg or vma.vm_flags & self.arg2:
                return (f"{self}: final {self.letter} vm_flags {vma.vm_flags:#x}, want "
                        f"all of {self.arg:#x} and none of {self.arg2:#x}")
        return None

    def host(self, entries: dict[str, MapsEntry]) -> str | None:
        """What the host's maps can confirm (file offsets); None if fine or not checkable."""
        if self.what != "pgoff" or self.arg is None:
            return None
        e = entries.get(self.letter)
        if e is None:
            return f"{self}: no VMA {self.letter} on the host"
        if e.offset != self.arg * PAGE:
            return f"{self}: host offset {e.offset:#x}, want {self.arg * PAGE:#x}"
        return None


# ------------------------------------------------------------------ scenarios
@dataclass(frozen=True)
class Step:
    ops: tuple[Op, ...]
    expect: str


@dataclass(frozen=True)
class Scenario:
    """layout -> steps (ops -> expected picture), with the kernel rule it exercises.

    fork: None, "child" (the steps run in a child forked after the set-up) or
    "parent" (fork, the child exits at once, the steps run in the parent).
    """

    name: str
    category: str
    layout: Layout
    steps: tuple[Step, ...]
    rule: str
    fork: str | None = None
    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        for step in self.steps:
            validate_picture(step.expect)
            if len(step.expect) != self.layout.npages:
                raise ValueError(f"{self.name}: expected picture {step.expect!r} is not "
                                 f"{self.layout.npages} pages like {self.layout.picture!r}")
        if self.fork not in (None, "child", "parent"):
            raise ValueError(f"{self.name}: fork must be None, 'child' or 'parent'")

    @property
    def host(self) -> bool:
        """Can the host kernel replay it (no white-box op anywhere)?"""
        return all(op.host for op in self.all_ops())

    def all_ops(self) -> list[Op]:
        return self.layout.ops() + [op for s in self.steps for op in s.ops]

    def handles(self) -> list[tuple[str, int]]:
        """The (file, handle) opens the scenario needs, in first-use order."""
        out: list[tuple[str, int]] = []
        for op in self.all_ops():
            if op.name == "mmap" and op.args[3] is not None and (op.args[3], op.args[6]) not in out:
                out.append((op.args[3], op.args[6]))
        return out

    def describe(self) -> str:
        lines = [f"{self.name}  [{self.category}]  rule: {self.rule}",
                 f"  layout {self.layout.picture!r} {self.layout.props}"
                 + (f" order={self.layout.order}" if self.layout.order else ""),
                 *(f"  extra  {op}" for op in self.layout.extra)]
        if self.fork:
            lines.append(f"  fork -> steps run in the {self.fork}")
        for s in self.steps:
            lines.append(f"  {'; '.join(map(str, s.ops))}  ->  {s.expect!r}")
        return "\n".join(lines)


def scenario(category: str, name: str, layout: Layout, *ops: Op, expect: str, rule: str,
             then: Sequence[tuple[Sequence[Op], str]] = (), fork: str | None = None,
             checks: Sequence[Check] = ()) -> Scenario:
    steps = (Step(tuple(ops), expect), *(Step(tuple(o), e) for o, e in then))
    return Scenario(name, category, layout, steps, rule, fork, tuple(checks))


def file_contents() -> dict[str, bytes]:
    """The files layouts map (name -> bytes), FILE_PAGES pages each, every page distinct."""
    return {name: b"".join(bytes([(n * 64 + i) & 0xFF]) * PAGE for i in range(FILE_PAGES))
            for n, name in enumerate(FILES)}


def make_files(root: Path) -> None:
    """Create the files layouts map in *root* (see :func:`file_contents`)."""
    for name, data in file_contents().items():
        path = root / name
        if not path.exists():
            path.write_bytes(data)


# ------------------------------------------------------------------ vmsim runner
@dataclass
class VmsimRun:
    machine: Machine
    process: Process
    base: int = VMSIM_BASE
    fds: dict[tuple[str, int], int] = field(default_factory=dict)

    def addr(self, page: int) -> int:
        return self.base + page * PAGE

    def open_handles(self, handles: Iterable[tuple[str, int]]) -> None:
        for name, handle in handles:
            fd = self.process.open("/" + name, O_RDWR)
            assert fd >= 0, f"open /{name}: {fd}"
            self.fds[(name, handle)] = fd

    def do(self, op: Op) -> int:
        """Run one op; returns the result with addresses as window pages."""
        p, a = self.process, op.args
        mm = p.mm
        if op.name == "mmap":
            page, n, prot, file, pgoff, shared, handle, more = a
            words = ["shared" if shared else "private", "fixed"]
            if file is None:
                words.append("anonymous")
            words += [w for w in more.split("|") if w]
            fd = -1 if file is None else self.fds[(file, handle)]
            r = p.mmap(self.addr(page), n * PAGE, prot, "|".join(words), fd, pgoff * PAGE)
            return r if r < 0 else (r - self.base) // PAGE
        if op.name == "munmap":
            return p.munmap(self.addr(a[0]), a[1] * PAGE)
        if op.name == "mprotect":
            return p.mprotect(self.addr(a[0]), a[1] * PAGE, a[2])
        if op.name == "mremap":
            page, old_n, new_n, flags, to = a
            r = p.mremap(self.addr(page), old_n * PAGE, new_n * PAGE, flags,
                         0 if to is None else self.addr(to))
            return r if r < 0 else (r - self.base) // PAGE
        if op.name == "mlock":
            return p.mlock(self.addr(a[0]), a[1] * PAGE)
        if op.name == "mlock2":
            return p.mlock2(self.addr(a[0]), a[1] * PAGE, a[2])
        if op.name == "munlock":
            return p.munlock(self.addr(a[0]), a[1] * PAGE)
        if op.name == "madvise":
            return p.madvise(self.addr(a[0]), a[1] * PAGE, a[2])
        if op.name == "touch":
            return 0 if p.store(self.addr(a[0]), b"\x5a") else -14
        if op.name == "setflags":
            vma = mm.mm_rb.find_vma(self.addr(a[0]))
            assert vma is not None and vma.vm_start <= self.addr(a[0])
            vma.vm_flags = (vma.vm_flags | a[1]) & ~a[2]
            return 0
        if op.name == "setname":
            vma = mm.mm_rb.find_vma(self.addr(a[0]))
            assert vma is not None and vma.vm_start <= self.addr(a[0])
            vma.anon_name = a[1]
            return 0
        if op.name == "clear_soft_dirty":
            for vma in mm.mm_rb:
                vma.vm_flags &= ~VM_SOFTDIRTY
            return 0
        if op.name == "fill":
            self.machine.kmem.sysctl.max_map_count = mm.map_count + a[0]
            return 0
        raise ValueError(f"unknown op {op}")


def expected_ret(op: Op) -> int:
    """The result an op should give: its `ret`, else success (the landing page for mmap/mremap)."""
    if op.ret is not None:
        return op.ret
    if op.name == "mmap":
        return op.args[0]
    if op.name == "mremap":
        return op.args[4] if op.args[4] is not None else op.args[0]
    return 0


def run_vmsim(sc: Scenario, machine: Machine) -> list[str]:
    """Run a scenario on vmsim; returns a list of failures (empty when all is as expected).

    Checks, in order: every set-up op succeeds and the set-up draws as the
    layout's picture; after each step its ops return what they should and the
    window draws as the step's picture; then the scenario's checks, and the
    generic rule that an anonymous private VMA without anon_vma has
    vm_pgoff == vm_start >> PAGE_SHIFT.  Machine.check() is the caller's.
    """
    run = VmsimRun(machine, machine.spawn())
    npages = sc.layout.npages
    fails: list[str] = []
    run.open_handles(sc.handles())
    for op in sc.layout.ops():
        got = run.do(op)
        if got != expected_ret(op):
            return [f"set-up {op}: returned {got}, want {expected_ret(op)}"]
    got_pic = render(run.process, run.base, npages)
    if got_pic != sc.layout.picture:
        return [f"set-up drew {got_pic!r}, want {sc.layout.picture!r}"]
    if sc.fork is not None:
        child = run.process.fork()
        assert not isinstance(child, int), f"fork: {child}"
        if sc.fork == "child":
            run.process = child
        else:
            child.exit(0)
        got_pic = render(run.process, run.base, npages)
        if got_pic != sc.layout.picture:
            return [f"after fork the {sc.fork} draws {got_pic!r}, want {sc.layout.picture!r}"]
    before = letters_to_vmas(run.process, run.base, npages)
    before_anon = {k: v.anon_vma for k, v in before.items()}
    for n, step in enumerate(sc.steps, 1):
        for op in step.ops:
            got = run.do(op)
            if got != expected_ret(op):
                fails.append(f"step {n}: {op} returned {got}, want {expected_ret(op)}")
        got_pic = render(run.process, run.base, npages)
        if got_pic != step.expect:
            fails.append(f"step {n}: {'; '.join(map(str, step.ops))}: got {got_pic!r}, "
                         f"want {step.expect!r}")
    ctx = Ctx(before, before_anon, letters_to_vmas(run.process, run.base, npages))
    for check in sc.checks:
        msg = check.vmsim(ctx)
        if msg:
            fails.append(msg)
    for vma in window_vmas(run.process, run.base, npages):
        if (vma.vm_file is None and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE)
                and vma.anon_vma is None and vma.vm_pgoff != vma.vm_start >> PAGE_SHIFT):
            fails.append(f"anonymous VMA without anon_vma has vm_pgoff {vma.vm_pgoff:#x} != "
                         f"vm_start >> 12 ({vma!r})")
    return fails


# ------------------------------------------------------------------ host replay
@dataclass
class HostPlan:
    """The script for a scenario and how to read its output back."""

    lines: list[str]
    #: one entry per output item, in order: ("ret", op, where) | ("maps", label) |
    #: ("fill", count)
    expect: list[tuple[Any, ...]]


def _haddr(page: int) -> str:
    return f"{HOST_WINDOW + page * PAGE:#x}"


def _host_line(op: Op, fds: dict[tuple[str, int], int]) -> str:
    a = op.args
    if op.name == "mmap":
        page, n, prot, file, pgoff, shared, handle, more = a
        flags = (m.MAP_SHARED if shared else m.MAP_PRIVATE) | m.MAP_FIXED
        if file is None:
            flags |= m.MAP_ANONYMOUS
        flags |= m.parse_map_flags(more) if more else 0
        fd = -1 if file is None else fds[(file, handle)]
        return (f"mmap {_haddr(page)} {n * PAGE:#x} {m.parse_prot(prot)} {flags:#x} {fd} "
                f"{pgoff * PAGE:#x}")
    if op.name == "munmap":
        return f"munmap {_haddr(a[0])} {a[1] * PAGE:#x}"
    if op.name == "mprotect":
        return f"mprotect {_haddr(a[0])} {a[1] * PAGE:#x} {m.parse_prot(a[2])}"
    if op.name == "mremap":
        page, old_n, new_n, flags, to = a
        new = "0" if to is None else _haddr(to)
        return f"mremap {_haddr(page)} {old_n * PAGE:#x} {new_n * PAGE:#x} {flags} {new}"
    if op.name in ("mlock", "munlock"):
        return f"{op.name} {_haddr(a[0])} {a[1] * PAGE:#x}"
    if op.name in ("mlock2", "madvise"):
        return f"{op.name} {_haddr(a[0])} {a[1] * PAGE:#x} {a[2]}"
    if op.name == "touch":
        return f"touch {_haddr(a[0])} w"
    raise ValueError(f"{op} cannot run on the host")


def host_plan(sc: Scenario, root: Path, max_map_count: int = 65530) -> HostPlan:
    """The vmops script of a scenario (`root` holds the FILES)."""
    if not sc.host:
        raise ValueError(f"{sc.name} uses white-box ops; it cannot run on the host")
    lines: list[str] = []
    expect: list[tuple[Any, ...]] = []
    fds: dict[tuple[str, int], int] = {}
    for n, (name, handle) in enumerate(sc.handles()):
        fds[(name, handle)] = 3 + n  # vmops has fds 0-2 open; opens take the lowest free fd
        lines.append(f"open {root / name} {O_RDWR}")
        expect.append(("ret", Op("open", (name,), 3 + n), "set-up"))

    def add(op: Op, where: str) -> None:
        if op.name == "fill":
            # A big PROT_NONE area split page by page until the limit refuses a split.
            pairs = max_map_count // 2 + 8
            size = (2 * pairs + 2) * PAGE
            lines.append(f"mmap ={HOST_FILL_ADDR:#x} {size:#x} 0 "
                         f"{m.MAP_PRIVATE | m.MAP_ANONYMOUS | m.MAP_NORESERVE | m.MAP_FIXED_NOREPLACE:#x}"
                         " -1 0")
            lines.extend(f"mprotect ={HOST_FILL_ADDR + (2 * i + 1) * PAGE:#x} {PAGE:#x} 1"
                         for i in range(pairs))
            lines.extend(f"munmap ={HOST_FILL_ADDR + (2 * i + 1) * PAGE:#x} {PAGE:#x}"
                         for i in range(op.args[0]))
            expect.append(("fill", pairs, op.args[0]))
            return
        lines.append(_host_line(op, fds))
        expect.append(("ret", op, where))

    for op in sc.layout.ops():
        add(op, "set-up")
    lines.append("maps")
    expect.append(("maps", "set-up"))
    child = sc.fork is not None
    if child:
        lines.append("fork")
        if sc.fork == "parent":
            lines.append("endchild")
    for n, step in enumerate(sc.steps, 1):
        for op in step.ops:
            add(op, f"step {n}")
        lines.append("maps")
        expect.append(("maps", f"step {n}"))
    if sc.fork == "child":
        lines.append("endchild")
    return HostPlan(lines, expect)


def _host_ret(op: Op, line: str) -> int | str:
    """A vmops result line as the window-page form run_vmsim uses."""
    if op.name == "touch":
        return 0 if line == "ok" else line
    if not line.startswith("ret "):
        return line
    val = line[4:]
    if val.startswith("+"):
        off = int(val[1:], 16) - HOST_WINDOW
        return off // PAGE if off % PAGE == 0 else line
    if val == "out":
        return line
    return int(val, 0)


def check_host_output(sc: Scenario, plan: HostPlan, lines: list[str]) -> list[str]:
    """Compare a host run of `plan` with the scenario; a list of failures."""
    out = [ln.removeprefix("child: ") for ln in lines]
    fails: list[str] = []
    pos = 0
    step_no = 0
    last_entries: list[MapsEntry] = []
    npages = sc.layout.npages

    def take() -> str:
        nonlocal pos
        if pos >= len(out):
            raise AssertionError("host output ended early:\n" + "\n".join(lines[-40:]))
        pos += 1
        return out[pos - 1]

    for item in plan.expect:
        if item[0] == "ret":
            op, where = item[1], item[2]
            line = take()
            got = _host_ret(op, line) if op.name != "open" else (
                int(line[4:]) if line.startswith("ret ") else line)
            want = expected_ret(op) if op.name != "open" else op.ret
            if got != want:
                fails.append(f"{where}: {op} gave {line!r} on the host, want {want}")
        elif item[0] == "fill":
            pairs, slack = item[1], item[2]
            first = take()
            if not first.startswith("ret +") and first != "ret out":
                raise AssertionError(f"fill mmap at {HOST_FILL_ADDR:#x} failed: {first}")
            rets = [take() for _ in range(pairs)]
            ok = rets.count("ret 0")
            if ok == 0 or rets[:ok] != ["ret 0"] * ok or set(rets[ok:]) != {"ret -12"}:
                raise AssertionError("the fill did not split its way up to max_map_count: "
                                     f"{sorted(set(rets))}")
            for _ in range(slack):
                line = take()
                if line != "ret 0":
                    raise AssertionError(f"fill slack munmap gave {line!r}")
        else:
            block: list[str] = []
            while (line := take()) != "end":
                block.append(line)
            last_entries = parse_maps(block)
            pic = render_maps(last_entries, npages)
            want = sc.layout.picture if item[1] == "set-up" else sc.steps[step_no].expect
            if item[1] != "set-up":
                step_no += 1
            if pic != want:
                fails.append(f"{item[1]}: host draws {pic!r}, want {want!r}\n    "
                             + "\n    ".join(block))
    if pos != len(out):
        fails.append(f"unread host output: {out[pos:pos + 5]}")
    in_window = [e for e in last_entries
                 if e.end > HOST_WINDOW and e.start < HOST_WINDOW + npages * PAGE]
    entries = dict(zip(LETTERS, sorted(in_window, key=lambda e: e.start), strict=False))
    for check in sc.checks:
        msg = check.host(entries)
        if msg:
            fails.append(msg)
    return fails

