"""vtop: one virtual address walked level by level, in the manner of the crash utility's
``vtop`` command (crash's x86_64_uvtop() and friends print each level's entry address
and value, then the page and its flags, then the VMA).

`vtop(machine_or_kmem, root, va)` reads the tables from RAM exactly as the walker does
(`vmsim.arch.paging.walk`, in the mode's byte order) and returns a `Vtop` record: for
each level the table's physical address, the index, the entry's address and value and
its decoded bits (the mode's own names: P/RW/US/NX on x86, VALID/USER/RDONLY/AF/DBM/UXN
on ARM64, V/R/W/X/U/G/A/D on RISC-V, PRESENT/READ/WRITE/EXEC on PowerPC), then the
physical address, or why the walk stops: an empty entry, a swap entry (its type and
offset, include/linux/swapops.h), a PTE marker such as MADV_GUARD_INSTALL's guard,
a PROT_NONE entry (present to Linux, not to the MMU), or a malformed entry.
`vtop_process(proc, va)` adds the /proc/PID/maps line of the VMA holding `va`.
Reads only: no accessed bit is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vmsim.arch.paging import Access, PagingMode, PhysAccess, WalkStep, translate, walk
from vmsim.fs.procfs import show_map_vma
from vmsim.mm.swapops import PTE_MARKER_GUARD, SWP_PTE_MARKER

if TYPE_CHECKING:
    from vmsim.kernel.task import Process


class _HasKmem(Protocol):
    kmem: _Kmem


class _Kmem(Protocol):
    mode: PagingMode
    phys: PhysAccess


@dataclass(frozen=True)
class VtopLevel(WalkStep):
    """One table visited (the walker's step), with the entry's decoded bits and its kind."""

    bits: tuple[str, ...]
    kind: str  # "table", "leaf", or why the walk stops here ("none", "swap", ...)


@dataclass(frozen=True)
class Vtop:
    """The walk of `va` from `root` in `mode`, and its outcome.

    `phys` is the physical address (None when the walk stops); `stop` says why it
    stopped; `swap` is (type, offset) for a swap entry; `vma` the maps line, if known.
    """

    mode: PagingMode
    va: int
    root: int
    levels: tuple[VtopLevel, ...]
    phys: int | None
    page_size: int
    stop: str | None = None
    swap: tuple[int, int] | None = None
    vma: str | None = None
    user_access: str = ""  # what a user-mode access would get: "r w x" allowed, "-" refused

    def text(self) -> str:
        """The crash-style rendering."""
        mode = self.mode
        digits = 16 if mode.va_bits > 32 else 8
        ew = 2 * mode.entry_size
        out = [f"{mode.name}: {len(mode.levels)} levels, {_size(mode.page_size)} pages, "
               f"root {self.root:#x}",
               f"{'VIRTUAL':<{digits + 2}}  PHYSICAL",
               f"{self.va:0{digits}x}    " + (f"{self.phys:x}" if self.phys is not None
                                             else "(not mapped)"), ""]
        for lv in self.levels:
            bits = "|".join(lv.bits) if lv.bits else "-"
            out.append(f"  {lv.name.upper():>4}: {lv.table:x}[{lv.index}] @ {lv.entry_addr:x} "
                       f"=> {lv.entry:0{ew}x}  ({bits})  {lv.kind}")
        if self.phys is not None:
            base = self.phys & ~(self.page_size - 1)
            out.append(f"  PAGE: {base:x}  ({_size(self.page_size)}), user access {self.user_access}")
        else:
            out.append(f"  STOP: {self.stop}")
        if self.vma is not None:
            out += ["", f"  VMA: {self.vma.rstrip()}"]
        return "\n".join(out) + "\n"


def _size(nbytes: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and not nbytes & ((1 << shift) - 1):
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes} B"


def _why_not_present(mode: PagingMode, level: int, entry: int) -> tuple[str, str, tuple[int, int] | None]:
    """(kind, explanation, swap) for an entry the MMU does not take as present."""
    last = level == len(mode.levels) - 1
    if entry == 0:
        return "none", f"{mode.levels[level].name} entry is empty (not present)", None
    if not last:
        return "not present", f"{mode.levels[level].name} entry is not present", None
    if mode.is_present(entry):
        return "protnone", "PROT_NONE: present to Linux (pte_present), not to the MMU", None
    typ, off = mode.pte_swp_type(entry), mode.pte_swp_offset(entry)
    if typ == SWP_PTE_MARKER:
        if off & PTE_MARKER_GUARD:
            return "guard", "PTE marker: guard region (MADV_GUARD_INSTALL), every access faults", None
        return "marker", f"PTE marker {off:#x}", None
    return "swap", f"swap entry: type {typ}, offset {off:#x}", (typ, off)


class _ReadOnly:
    """A PhysAccess that reads RAM and drops the walker's A/D writes (vtop changes nothing)."""

    def __init__(self, mem: PhysAccess) -> None:
        self.mem = mem

    def read_entry(self, phys: int, size: int) -> int:
        return self.mem.read_entry(phys, size)

    def write_entry(self, phys: int, size: int, value: int) -> None:
        pass


def _user_access(mode: PagingMode, mem: PhysAccess, root: int, va: int) -> str:
    """"rwx" with "-" for each kind of user access the hardware walker would refuse."""
    ro = _ReadOnly(mem)
    return "".join(c if translate(mode, ro, root, va, acc)[0] >= 0 else "-"
                   for c, acc in (("r", Access.READ), ("w", Access.WRITE), ("x", Access.EXEC)))


def vtop(machine_or_kmem: _HasKmem | _Kmem, root: int, va: int) -> Vtop:
    """Walk `va` from the table at physical `root` on a Machine (or its Kmem); read-only."""
    kmem = getattr(machine_or_kmem, "kmem", machine_or_kmem)
    mode: PagingMode = kmem.mode
    phys_mem: PhysAccess = kmem.phys
    if not mode.canonical(va):
        return Vtop(mode, va, root, (), None, mode.page_size,
                    stop=f"{va:#x} is not a canonical {mode.va_bits}-bit address for these tables")
    w = walk(mode, phys_mem, root, va)
    last = len(mode.levels) - 1
    levels: list[VtopLevel] = []
    stop = None
    swap = None
    for step in w.steps:
        entry = step.entry
        if step is w.steps[-1] and w.phys is None:
            if entry & mode.level_present(step.level):
                kind, stop = "malformed", (f"{step.name} entry looks like a leaf where this "
                                           "mode allows none")
            else:
                kind, stop, swap = _why_not_present(mode, step.level, entry)
                if kind in ("swap", "guard", "marker"):  # not a set of flags: a swap entry
                    levels.append(VtopLevel(step.level, step.name, step.table, step.index,
                                            step.entry_addr, entry, (), kind))
                    continue
        elif step.level == last or not mode.is_table(step.level, entry):
            kind = "leaf" if step.level == last else f"leaf ({_size(mode.level_span(step.level))})"
        else:
            kind = "table"
        levels.append(VtopLevel(step.level, step.name, step.table, step.index, step.entry_addr,
                                entry, tuple(mode.describe(entry)), kind))
    rights = _user_access(mode, phys_mem, root, va) if w.phys is not None else ""
    return Vtop(mode, va, root, tuple(levels), w.phys, w.page_size, stop, swap, None, rights)


def vtop_process(proc: Process, va: int) -> Vtop:
    """vtop on a process's page tables, with the /proc/PID/maps line of the VMA holding `va`."""
    mm = proc.mm
    result = vtop(proc.machine, mm.pgd, va)
    vma = mm.find_vma(va)
    line = (show_map_vma(mm, vma) if vma is not None and vma.vm_start <= va
            else "(no VMA contains this address)\n")
    return Vtop(result.mode, result.va, result.root, result.levels, result.phys,
                result.page_size, result.stop, result.swap, line, result.user_access)


def demo_process(machine: object) -> tuple[Process, list[tuple[str, int]]]:
    """A scripted process whose tables show every kind of entry, and the addresses to look
    at: a written private page, a read-only zero-page mapping, a shared page, a page made
    copy-on-write by fork (then copied by the child), a PROT_NONE page, a guard marker, a
    page never touched, and an address outside every VMA. Returns (process, [(label, va)])."""
    from vmsim.mm import mman

    m = machine
    ps: int = m.kmem.page_size  # type: ignore[attr-defined]
    p = m.spawn(comm="vtop-demo")  # type: ignore[attr-defined]
    priv = p.mmap(None, 6 * ps, "rw-", "private|anonymous")
    shared = p.mmap(None, 2 * ps, "rw-", "shared|anonymous")
    p.store(priv, b"private page", check=True)
    p.load(priv + ps, 8, check=True)  # a read fault: the shared zero page
    p.store(priv + 2 * ps, b"cow page", check=True)
    p.store(priv + 3 * ps, b"soon PROT_NONE", check=True)
    p.store(shared, b"shared page", check=True)
    child = p.fork()
    child.store(priv + 2 * ps + 8, b"child's copy", check=True)  # the child breaks COW
    p.mprotect(priv + 3 * ps, ps, "---")
    p.madvise(priv + 4 * ps, ps, mman.MADV_GUARD_INSTALL)
    points = [("written private page", priv + 0x10), ("read fault: zero page", priv + ps),
              ("COW after fork (parent's view)", priv + 2 * ps + 8),
              ("PROT_NONE", priv + 3 * ps), ("guard marker", priv + 4 * ps),
              ("never touched", priv + 5 * ps), ("shared anonymous", shared + 0x20),
              ("outside every VMA", ps * 16 + 0x123)]
    return p, points


def sample_process(machine: object, name: str) -> tuple[Process, list[tuple[str, int]]]:
    """A bundled sample program right after execve (nothing of its file read yet, the stack
    built): the start of each VMA and the top of the stack."""
    p = machine.exec_process("/" + name)  # type: ignore[attr-defined]
    if isinstance(p, int):
        raise ValueError(f"cannot exec sample {name!r}: errno {-p}")
    ps: int = machine.kmem.page_size  # type: ignore[attr-defined]
    points = [(f"start of {' '.join(show_map_vma(p.mm, v).split())}", v.vm_start) for v in p.mm]
    last = list(p.mm)[-1]
    points.append(("top of the stack", last.vm_end - ps + 0x10))
    return p, points


def vtop_main(arch: str, addresses: list[int], sample: str | None = None,
              memory: str = "64M", seed: int = 1) -> str:
    """What `vmsim vtop` prints: the scripted process (or a sample right after execve) on
    `arch`, then vtop of each address (of the scenario's own ones if none is given)."""
    import shutil
    import tempfile

    from vmsim.machine import Machine, samples_dir

    root = None
    if sample is not None:
        src = samples_dir() / sample
        if not src.is_file():
            raise ValueError(f"no bundled sample {sample!r}")
        root = tempfile.mkdtemp(prefix="vmsim-vtop-")
        shutil.copy2(src, f"{root}/{sample}")
    try:
        machine = Machine(arch=arch, memory=memory, seed=seed, root=root)
        proc, points = (sample_process(machine, sample) if sample is not None
                        else demo_process(machine))
        if addresses:
            points = [(f"{va:#x}", va) for va in addresses]
        out = [f"# pid {proc.pid} ({proc.comm}) on {arch}\n", proc.maps(), "\n"]
        for label, va in points:
            out += [f"## {label}\n", vtop_process(proc, va).text(), "\n"]
        return "".join(out)
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
