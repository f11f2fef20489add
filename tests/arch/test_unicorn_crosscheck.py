"""vmsim's page tables, run by an independent MMU: Unicorn's x86-64 CPU.

vmsim builds real x86-64 tables in its RAM buffer and believes it knows what
each entry means (`vmsim.arch.paging.translate`). Here Unicorn 2 (QEMU's x86
MMU, `UC_TLB_CPU`) maps that same buffer at guest-physical 0, loads CR3 with a
process's `mm.pgd` and executes loads, stores and instruction fetches at
CPL 3 through those very tables (see src/vmsim/cpu/x86_mmu.py for the CPU
set-up: long mode, CR0.PG|WP, CR4.PAE, EFER.NXE, a GDT and an iretq to user
mode). The probe instructions themselves live in a user page of the vmsim
process (stored through vmsim, then made read+exec by mprotect), so every
fetch goes through vmsim's tables as well.

Every probe is a three-way comparison: vmsim's `translate` run on a shadow
of RAM (its A/D-bit writes are kept aside) predicts the outcome; Unicorn
performs the access; then

* success: Unicorn succeeded too, and the bytes it loaded (or stored, or
  executed) are those at the physical address vmsim named;
* fault: Unicorn raised #PF (vector 14) with CR2 = the address and the very
  error code vmsim computed (P, W/R, U/S, RSVD, I/D);
* non-canonical: #GP (vector 13), and vmsim refuses too;
* A/D bits: every entry on the walked paths is afterwards exactly what vmsim's
  translate would have written (Unicorn's walker sets accessed/dirty bits in
  vmsim's RAM; vmsim predicts them on the shadow).
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmsim.arch.paging import Access, MmuFault, translate, walk
from vmsim.arch.x86 import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_USER,
    X86_64,
)
from vmsim.cpu.x86_mmu import (
    PF_INSTR,
    PF_PROT,
    PF_RSVD,
    PF_USER,
    PF_WRITE,
    PROBE_CODE,
    VEC_GP,
    VEC_PF,
    Outcome,
    X86Mmu,
    error_code_offset,
)
from vmsim.fs.vfs import O_CREAT, O_RDONLY, O_RDWR
from vmsim.kernel.task import Process
from vmsim.machine import Machine
from vmsim.mm import mman as m
from vmsim.mm.fault import do_user_addr_fault, vma_permits
from vmsim.mm.pgtable import pte_alloc
from vmsim.mm.physmem import PhysMem

PAGE = 4096
MODE = X86_64
ACCESS = {"load": Access.READ, "store": Access.WRITE, "fetch": Access.EXEC}
KINDS = tuple(ACCESS)


def word(tag: int) -> bytes:
    """8 distinct bytes that are also code: ``mov eax, tag`` + 3 nops."""
    return b"\xb8" + struct.pack("<I", tag & 0xFFFF_FFFF) + b"\x90\x90\x90"


def u64(data: bytes) -> int:
    return int.from_bytes(data, "little")


def pf_bits(code: int) -> str:
    names = [("P", 1), ("W", 2), ("U", 4), ("RSVD", 8), ("I", 16)]
    return f"{code:#x}=" + ("|".join(n for n, b in names if code & b) or "0")


class Shadow:
    """A PhysAccess over vmsim's RAM that keeps `translate`'s A/D writes to itself."""

    def __init__(self, phys: PhysMem) -> None:
        self.phys = phys
        self.writes: dict[int, int] = {}

    def read_entry(self, phys: int, size: int) -> int:
        if phys in self.writes:
            return self.writes[phys]
        return self.phys.read_entry(phys, size)

    def write_entry(self, phys: int, size: int, value: int) -> None:
        self.writes[phys] = value


@dataclass(frozen=True)
class Probe:
    """vmsim's prediction (phys or -1, error code) next to what Unicorn did."""

    va: int
    kind: str
    phys: int
    err: int
    out: Outcome
    value: int = 0


class Rig:
    """A vmsim machine, a Unicorn CPU over its RAM, and the probes comparing the two."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.kmem = machine.kmem
        self.phys = machine.kmem.phys
        self.cpu = X86Mmu(self.phys.address, self.phys.size, keepalive=self.phys)
        self.code: dict[int, int] = {}
        self.serial = 0
        self.tally: Counter[str] = Counter()

    # ---- processes -------------------------------------------------------------
    def install_code(self, proc: Process) -> int:
        """Put the probe instructions in a private page of `proc`, read+exec only."""
        va = proc.mmap(None, PAGE, "rw-", "private|anonymous")
        assert va > 0
        assert proc.store(va, PROBE_CODE, check=True)
        assert proc.mprotect(va, PAGE, "r-x") == 0
        self.code[proc.pid] = va
        return va

    def spawn(self) -> Process:
        proc = self.machine.spawn()
        self.install_code(proc)
        return proc

    def fork(self, parent: Process) -> Process:
        child = parent.fork()
        assert isinstance(child, Process)
        self.code[child.pid] = self.code[parent.pid]  # inherited with the address space
        return child

    def leaf(self, proc: Process, va: int) -> int:
        """The last entry the walk for `va` reads (the leaf, or where it stopped)."""
        return walk(MODE, self.phys, proc.mm.pgd, va).steps[-1].entry

    # ---- probes -------------------------------------------------------------------
    def probe(self, proc: Process, va: int, kind: str, user: bool = True) -> Probe:
        """Predict with vmsim on a shadow, run Unicorn, compare A/D bits; the raw result."""
        pgd = proc.mm.pgd
        code_va = self.code[proc.pid]
        accesses = [] if kind == "fetch" else [(code_va, Access.EXEC)]
        accesses.append((va, ACCESS[kind]))
        shadow = Shadow(self.phys)
        results = [translate(MODE, shadow, pgd, a, acc, user=user) for a, acc in accesses]
        assert all(phys >= 0 for phys, _ in results[:-1]), "vmsim cannot fetch the probe code"
        phys, err = results[-1]
        entries = sorted({step.entry_addr for a, _ in accesses if MODE.canonical(a)
                          for step in walk(MODE, self.phys, pgd, a).steps})
        expected = {e: shadow.writes.get(e, self.phys.read_entry(e, 8)) for e in entries}
        self.serial += 1
        value = u64(word(0x3000_0000 | self.serial))
        if kind == "load":
            out = self.cpu.load(pgd, code_va, va, user)
        elif kind == "store":
            out = self.cpu.store(pgd, code_va, va, value, user)
        else:
            out = self.cpu.fetch(pgd, va, user)
        wrong = [(e, v, self.phys.read_entry(e, 8)) for e, v in expected.items()
                 if v != self.phys.read_entry(e, 8)]
        assert not wrong, f"pid {proc.pid} {kind} {va:#x}: A/D bits differ (entry addr, vmsim, Unicorn): " + (
            "; ".join(f"{e:#x}: {MODE.describe(v)} vs {MODE.describe(u)}" for e, v, u in wrong))
        self.tally[f"{kind} " + ("ok" if out.ok else "P" if err & PF_PROT else "not-present"
                                 if MODE.canonical(va) else "#GP")] += 1
        return Probe(va, kind, phys, err, out, value)

    def crosscheck(self, proc: Process, va: int, kind: str, user: bool = True) -> Probe:
        """Probe and require Unicorn to agree with vmsim in outcome, data and error code."""
        pr = self.probe(proc, va, kind, user)
        out = pr.out
        where = f"pid {proc.pid} cpl {3 if user else 0} {kind} at {va:#x}"
        if not MODE.canonical(va):
            assert pr.phys == -1, f"{where}: vmsim translates a non-canonical address"
            assert out.vector == VEC_GP and out.error_code == 0, f"{where}: Unicorn gave {out}, not #GP(0)"
            return pr
        if pr.phys >= 0:
            assert out.ok, f"{where}: vmsim maps it to phys {pr.phys:#x}; Unicorn raised {out}"
            if kind == "load":
                want = u64(self.phys.read(pr.phys, 8))
                assert out.rax == want, f"{where}: Unicorn read {out.rax:#x}, phys {pr.phys:#x} holds {want:#x}"
            elif kind == "store":
                got = u64(self.phys.read(pr.phys, 8))
                assert got == pr.value, f"{where}: stored {pr.value:#x}, phys {pr.phys:#x} holds {got:#x}"
            else:
                code = self.phys.read(pr.phys, 5)
                if code[0] == 0xB8:  # a `word`: run it, the immediate must come from that frame
                    ran = self.cpu.fetch(proc.mm.pgd, va, user, execute=True)
                    want = u64(code[1:5])
                    assert ran.ok and ran.rax == want, (
                        f"{where}: executed {ran}, phys {pr.phys:#x} holds mov eax, {want:#x}")
                    self.tally["fetch executed"] += 1
        else:
            assert out.vector == VEC_PF, f"{where}: vmsim faults ({pf_bits(pr.err)}), Unicorn gave {out}"
            assert out.cr2 == va, f"{where}: CR2 {out.cr2:#x}"
            assert out.error_code == pr.err, (
                f"{where}: error code Unicorn {pf_bits(out.error_code)}, vmsim {pf_bits(pr.err)}")
        return pr

    def access(self, proc: Process, va: int, kind: str) -> Probe:
        """What a CPU and vmsim's kernel do together: fault, handle, retry until it succeeds."""
        for _ in range(4):
            pr = self.crosscheck(proc, va, kind)
            if pr.out.ok:
                return pr
            self.kmem.current = proc.acct  # the faulting task, as Process._access makes it
            outcome = do_user_addr_fault(proc.mm, va, ACCESS[kind], pr.out.error_code)
            assert outcome.ok, f"{kind} at {va:#x}: vmsim's fault handler says {outcome}"
        raise AssertionError(f"{kind} at {va:#x} still faults after the handler resolved it")


def make_rig(root: Path | None = None, seed: int = 1) -> Rig:
    return Rig(Machine(memory="32M", seed=seed, root=root))


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


# ---- the CPU itself ----------------------------------------------------------------------
def test_cpu_runs_at_cpl3_in_long_mode_with_paging(rig: Rig) -> None:
    """The probes run at CPL 3 (CPL 0 only where asked), with the control bits Linux uses."""
    assert rig.cpu.cpl(user=True) == 3
    assert rig.cpu.cpl(user=False) == 0
    for user in (True, False):
        regs = rig.cpu.control(user)
        assert regs["cr0"] & (1 << 31) and regs["cr0"] & (1 << 16) and regs["cr0"] & 1  # PG WP PE
        assert regs["cr4"] & (1 << 5) and not regs["cr4"] & (3 << 20)  # PAE, no SMEP/SMAP
        assert regs["efer"] & (1 << 8 | 1 << 10 | 1 << 11) == 1 << 8 | 1 << 10 | 1 << 11  # LME LMA NXE
    assert error_code_offset() > 0  # the error-code calibration found exactly one slot


def test_supervisor_entry_faults_at_cpl3_only(rig: Rig) -> None:
    """Clearing U/S by hand: a user access faults with P|U, a CPL 0 access succeeds.

    This is what proves the probes really run at CPL 3 (vmsim never builds such
    an entry itself). CPL 0 runs with CR0.WP set, like Linux, and without SMAP.
    """
    p = rig.spawn()
    a = p.mmap(None, PAGE, "rw-", "private|anonymous")
    assert p.store(a, word(0x51), check=True)
    step = walk(MODE, rig.phys, p.mm.pgd, a).steps[-1]
    rig.phys.write_entry(step.entry_addr, 8, step.entry & ~_PAGE_USER)
    pr = rig.crosscheck(p, a, "load")
    assert pr.out.error_code == PF_PROT | PF_USER
    pr = rig.crosscheck(p, a, "store")
    assert pr.out.error_code == PF_PROT | PF_WRITE | PF_USER
    pr = rig.crosscheck(p, a, "load", user=False)
    assert pr.out.ok and pr.out.rax == u64(word(0x51))
    assert rig.crosscheck(p, a, "store", user=False).out.ok
    rig.phys.write_entry(step.entry_addr, 8, step.entry)
    # CR0.WP: the kernel may not write a read-only user page either.
    r = p.mmap(None, PAGE, "r--", "private|anonymous")
    assert p.load(r, 1, check=True) == b"\0"
    pr = rig.crosscheck(p, r, "store", user=False)
    assert pr.out.error_code == PF_PROT | PF_WRITE
    assert rig.crosscheck(p, r, "load", user=False).out.ok


# ---- one case per kind of entry ---------------------------------------------------------------
def test_private_anon_page_after_write_fault(rig: Rig) -> None:
    """Present+RW+dirty: loads and stores hit vmsim's frame; fetch is NX."""
    p = rig.spawn()
    a = p.mmap(None, 2 * PAGE, "rw-", "private|anonymous")
    assert p.store(a + 8, word(0xA1), check=True)
    leaf = rig.leaf(p, a)
    assert leaf & (_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_DIRTY | _PAGE_NX) == (
        _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_DIRTY | _PAGE_NX)
    pr = rig.crosscheck(p, a + 8, "load")
    assert pr.out.ok and pr.out.rax == u64(word(0xA1))
    pr = rig.crosscheck(p, a + 16, "store")
    assert pr.out.ok and p.load(a + 16, 8) == pr.value.to_bytes(8, "little")
    pr = rig.crosscheck(p, a + 8, "fetch")
    assert pr.out.error_code == PF_PROT | PF_USER | PF_INSTR


def test_zero_page_after_read_fault(rig: Rig) -> None:
    """A read fault maps the shared zero frame read-only: zeros load, stores fault P|W|U."""
    p = rig.spawn()
    a = p.mmap(None, PAGE, "rw-", "private|anonymous")
    assert p.load(a, 8, check=True) == bytes(8)
    leaf = rig.leaf(p, a)
    assert MODE.entry_pfn(leaf) == rig.kmem.zero_pfn and not leaf & _PAGE_RW
    pr = rig.crosscheck(p, a + 0x40, "load")
    assert pr.out.ok and pr.out.rax == 0 and pr.phys >> 12 == rig.kmem.zero_pfn
    pr = rig.crosscheck(p, a + 0x40, "store")
    assert pr.out.error_code == PF_PROT | PF_WRITE | PF_USER
    assert rig.phys.read(rig.kmem.zero_pfn * PAGE, PAGE) == bytes(PAGE)
    # The kernel breaks the zero-page sharing; the retried store lands in a new frame.
    pr = rig.access(p, a + 0x40, "store")
    assert pr.phys >> 12 != rig.kmem.zero_pfn


def test_never_touched_page_is_not_present(rig: Rig) -> None:
    """No entry (or no table at all): #PF without P, W and I/D as the access says."""
    p = rig.spawn()
    a = p.mmap(None, 2 * PAGE, "rwx", "private|anonymous")
    nowhere = 0x10_0000_0000  # an empty PGD slot: not even a PUD table
    for va in (a, a + PAGE + 8, nowhere):
        for kind, code in (("load", PF_USER), ("store", PF_USER | PF_WRITE),
                           ("fetch", PF_USER | PF_INSTR)):
            pr = rig.crosscheck(p, va, kind)
            assert pr.out.error_code == code
    # Hardware faults, vmsim's handler fills the entry, the retry succeeds.
    pr = rig.access(p, a + 8, "store")
    assert pr.out.ok and rig.leaf(p, a) & _PAGE_DIRTY


def test_prot_none_entry_faults_as_not_present(rig: Rig) -> None:
    """PROT_NONE keeps the frame in a PROTNONE entry (P clear): every access faults without P."""
    p = rig.spawn()
    a = p.mmap(None, PAGE, "rw-", "private|anonymous")
    assert p.store(a, word(0xB0), check=True)
    assert p.mprotect(a, PAGE, "---") == 0
    leaf = rig.leaf(p, a)
    assert leaf & _PAGE_PROTNONE and not leaf & _PAGE_PRESENT and "PROTNONE" in MODE.describe(leaf)
    assert walk(MODE, rig.phys, p.mm.pgd, a).phys is None
    for kind, code in (("load", PF_USER), ("store", PF_USER | PF_WRITE), ("fetch", PF_USER | PF_INSTR)):
        pr = rig.crosscheck(p, a, kind)
        assert pr.out.error_code == code
    assert p.mprotect(a, PAGE, "r--") == 0
    pr = rig.crosscheck(p, a, "load")
    assert pr.out.ok and pr.out.rax == u64(word(0xB0))


def test_read_only_file_mapping(rig: Rig, tmp_path: Path) -> None:
    """A private read-only file page: the page-cache bytes load; store P|W|U; fetch NX."""
    (tmp_path / "ro.bin").write_bytes(b"".join(word(0xF000 + i) for i in range(PAGE // 8)))
    p = rig.spawn()
    fd = p.open("/ro.bin", O_RDONLY)
    assert fd >= 0
    a = p.mmap(None, PAGE, "r--", "private", fd, 0)
    pr = rig.access(p, a + 8 * 5, "load")
    assert pr.out.rax == u64(word(0xF005))
    leaf = rig.leaf(p, a)
    assert leaf & _PAGE_PRESENT and not leaf & _PAGE_RW
    assert rig.crosscheck(p, a + 8 * 5, "store").out.error_code == PF_PROT | PF_WRITE | PF_USER
    assert rig.crosscheck(p, a + 8 * 5, "fetch").out.error_code == PF_PROT | PF_USER | PF_INSTR


def test_exec_needs_vm_exec_nx(rig: Rig) -> None:
    """Fetching from a page without PROT_EXEC is an NX fault (I/D bit); with it the code runs."""
    p = rig.spawn()
    a = p.mmap(None, PAGE, "rw-", "private|anonymous")
    assert p.store(a + 0x18, word(0xE0), check=True)
    assert rig.leaf(p, a) & _PAGE_NX
    assert rig.crosscheck(p, a + 0x18, "fetch").out.error_code == PF_PROT | PF_USER | PF_INSTR
    assert p.mprotect(a, PAGE, "r-x") == 0
    assert not rig.leaf(p, a) & _PAGE_NX
    pr = rig.crosscheck(p, a + 0x18, "fetch")
    assert pr.out.ok
    ran = rig.cpu.fetch(p.mm.pgd, a + 0x18, execute=True)
    assert ran.ok and ran.rax == 0xE0


def test_fork_cow_in_parent_and_child(rig: Rig) -> None:
    """After fork both map the same frame read-only; stores fault P|W|U until the kernel copies."""
    p = rig.spawn()
    a = p.mmap(None, PAGE, "rw-", "private|anonymous")
    assert p.store(a, word(0xC0), check=True)
    c = rig.fork(p)
    frames = set()
    for proc in (p, c):
        pr = rig.crosscheck(proc, a, "load")
        assert pr.out.ok and pr.out.rax == u64(word(0xC0))
        frames.add(pr.phys)
        assert rig.crosscheck(proc, a + 8, "store").out.error_code == PF_PROT | PF_WRITE | PF_USER
    assert len(frames) == 1
    shared = frames.pop()
    pr = rig.access(c, a + 8, "store")  # child: COW copy
    assert pr.phys != shared + 8 and rig.crosscheck(c, a, "load").out.rax == u64(word(0xC0))
    assert rig.crosscheck(p, a + 8, "load").out.rax == 0  # parent's frame untouched
    assert rig.crosscheck(p, a + 8, "store").out.error_code == PF_PROT | PF_WRITE | PF_USER
    pr = rig.access(p, a + 8, "store")  # parent: sole owner now, reused in place
    assert pr.phys == shared + 8


def test_shared_file_mapping_two_processes(rig: Rig, tmp_path: Path) -> None:
    """MAP_SHARED in two processes: one frame; a Unicorn store in one is a load in the other."""
    (tmp_path / "shared.bin").write_bytes(bytes(2 * PAGE))
    p1, p2 = rig.spawn(), rig.spawn()
    maps = []
    for proc in (p1, p2):
        fd = proc.open("/shared.bin", O_RDWR | O_CREAT)
        assert fd >= 0
        addr = proc.mmap(None, 2 * PAGE, "rw-", "shared", fd, 0)
        assert addr > 0
        maps.append((proc, fd, addr))
    (_, _, a1), (_, fd2, a2) = maps
    stored = rig.access(p1, a1 + PAGE + 0x20, "store")
    loaded = rig.access(p2, a2 + PAGE + 0x20, "load")
    assert loaded.phys == stored.phys and loaded.out.rax == stored.value
    assert p2.pread(fd2, 8, PAGE + 0x20) == stored.value.to_bytes(8, "little")
    # And back: p2 stores, p1 loads, both through the same frame.
    back = rig.access(p2, a2 + PAGE + 0x28, "store")
    assert rig.crosscheck(p1, a1 + PAGE + 0x28, "load").out.rax == back.value


def test_table_changes_between_probes_are_seen(rig: Rig) -> None:
    """Unicorn caches translations; its TLB is flushed before every probe, so each change
    vmsim makes to the tables (mprotect, munmap, a new mapping) shows at the next access."""
    p = rig.spawn()
    a = p.mmap(None, PAGE, "rw-", "private|anonymous")
    assert p.store(a, word(0xD1), check=True)
    assert rig.crosscheck(p, a, "load").out.rax == u64(word(0xD1))
    assert rig.crosscheck(p, a, "store").out.ok
    assert p.mprotect(a, PAGE, "r--") == 0
    assert rig.crosscheck(p, a, "store").out.error_code == PF_PROT | PF_WRITE | PF_USER
    assert p.mprotect(a, PAGE, "---") == 0
    assert rig.crosscheck(p, a, "load").out.error_code == PF_USER
    assert p.munmap(a, PAGE) == 0
    assert rig.crosscheck(p, a, "load").out.error_code == PF_USER
    assert p.mmap(a, PAGE, "rwx", "private|anonymous|fixed") == a
    assert p.store(a, word(0xD2), check=True)
    assert rig.crosscheck(p, a, "load").out.rax == u64(word(0xD2))
    assert rig.crosscheck(p, a, "fetch").out.ok


@pytest.mark.parametrize("va", [0x7FFF_FFFF_F000, 0xFFFF_8000_0000_0000, 0xFFFF_8880_0000_1000,
                                0xFFFF_FFFF_8100_0000, 0xFFFF_FFFF_FF60_0000])
def test_above_user_space_faults(rig: Rig, va: int) -> None:
    """Above TASK_SIZE and in the kernel half nothing is mapped for the process: #PF, no P."""
    p = rig.spawn()
    for kind in KINDS:
        pr = rig.crosscheck(p, va, kind)
        assert pr.phys == -1 and not pr.out.error_code & PF_PROT


@pytest.mark.parametrize("va", [1 << 47, 0x0000_8000_0000_1000, 0x1234_5678_9ABC_DEF0,
                                0xFFFF_7FFF_FFFF_F000, 0x8000_0000_0000_0000])
def test_non_canonical_is_gp_not_pf(rig: Rig, va: int) -> None:
    """A non-canonical address never reaches the tables: #GP(0) on Unicorn, refusal in vmsim."""
    p = rig.spawn()
    for kind in KINDS:
        pr = rig.crosscheck(p, va, kind)
        assert pr.out.vector == VEC_GP
        assert translate(MODE, rig.phys, p.mm.pgd, va, ACCESS[kind])[0] == -1


# ---- large leaves, injected by hand -------------------------------------------------------------
def test_large_leaves_2m_and_1g(rig: Rig) -> None:
    """A 2 MiB leaf (PS in a PMD entry) and a 1 GiB leaf (PS in a PUD entry).

    Written by hand into a process's tables (vmsim never builds them itself),
    without A/D: walk, translate and Unicorn must agree on the physical address
    of several offsets, and Unicorn must set exactly the A/D bits vmsim's
    translate would.
    """
    p = rig.spawn()
    kmem = rig.kmem
    pfn = kmem.buddy.alloc_pages(9)  # an order-9 buddy block is 2 MiB aligned
    assert pfn is not None and (pfn << 12) % (2 << 20) == 0
    block = pfn << 12
    va2m = 0x4000_0000
    va1g = 0x80_0000_0000
    saved = []
    for va, level, base, flags in ((va2m, 2, block, _PAGE_NX), (va1g, 1, 0, 0)):
        assert p.mm.find_vma(va) is None or p.mm.find_vma(va).vm_start > va + (1 << 30)
        assert pte_alloc(kmem, p.mm, va) >= 0
        step = walk(MODE, rig.phys, p.mm.pgd, va).steps[level]
        saved.append(step)
        leaf = MODE.make_entry(base >> 12, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_PSE | flags)
        rig.phys.write_entry(step.entry_addr, 8, leaf)
    rig.phys.write(block + 0x1238, word(0x2A))
    rig.phys.write(block + 0x1F_FFF8, word(0x2B))
    # 2 MiB: NX fetch before anything sets A (QEMU and vmsim both leave A clear on a fault).
    assert rig.crosscheck(p, va2m + 0x1238, "fetch").out.error_code == PF_PROT | PF_USER | PF_INSTR
    assert not rig.phys.read_entry(saved[0].entry_addr, 8) & _PAGE_ACCESSED
    cases = [(va2m, 2, 2 << 20, block, [0x1238, 0x1F_FFF8, 0x10_0000, 0x8_0008]),
             (va1g, 1, 1 << 30, 0, [block + 0x1238, block + 0x1F_FFF8, p.mm.pgd,
                                    kmem.zero_pfn * PAGE + 0x100, rig.phys.size - 8])]
    for va, level, span, base, offsets in cases:
        for off in offsets:
            w = walk(MODE, rig.phys, p.mm.pgd, va + off)
            assert (w.phys, w.leaf_level, w.page_size) == (base + off, level, span)
            pr = rig.crosscheck(p, va + off, "load")
            assert pr.out.ok and pr.phys == base + off
    assert rig.crosscheck(p, va2m + 0x1238, "load").out.rax == u64(word(0x2A))
    assert rig.crosscheck(p, va1g + block + 0x1F_FFF8, "load").out.rax == u64(word(0x2B))
    for step in saved:
        leaf = rig.phys.read_entry(step.entry_addr, 8)
        assert leaf & _PAGE_ACCESSED and not leaf & _PAGE_DIRTY
    # Stores set D on the large leaf; through the 1 GiB alias they land in the 2 MiB block.
    pr = rig.crosscheck(p, va1g + block + 0x3000, "store")
    assert pr.out.ok and rig.phys.read(block + 0x3000, 8) == pr.value.to_bytes(8, "little")
    pr = rig.crosscheck(p, va2m + 0x3000, "load")
    assert pr.out.rax == u64(rig.phys.read(block + 0x3000, 8))
    assert rig.crosscheck(p, va2m + 0x3008, "store").out.ok
    for step in saved:
        assert rig.phys.read_entry(step.entry_addr, 8) & _PAGE_DIRTY
    # The 1 GiB leaf has no NX: code in the block runs through it.
    assert rig.crosscheck(p, va1g + block + 0x1238, "fetch").out.ok
    for step in saved:
        rig.phys.write_entry(step.entry_addr, 8, step.entry)
    kmem.buddy.free_pages(pfn, 9)


def test_misaligned_large_leaf_is_a_reserved_bit_fault(rig: Rig) -> None:
    """A 2 MiB leaf whose frame field has a bit set below 2 MiB (other than PAT, bit 12)
    is malformed: the MMU raises #PF with RSVD, and vmsim's translate says the same."""
    p = rig.spawn()
    kmem = rig.kmem
    pfn = kmem.buddy.alloc_pages(9)
    assert pfn is not None
    va = 0x4000_0000
    assert pte_alloc(kmem, p.mm, va) >= 0
    step = walk(MODE, rig.phys, p.mm.pgd, va).steps[2]
    for bit, faults in ((13, True), (20, True), (12, False)):  # 12 is PAT, not reserved
        leaf = MODE.make_entry(pfn, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_PSE) | (1 << bit)
        rig.phys.write_entry(step.entry_addr, 8, leaf)
        pr = rig.crosscheck(p, va + 0x40, "load")
        if faults:
            assert pr.out.error_code == PF_PROT | PF_USER | PF_RSVD
        else:
            assert pr.out.ok
    rig.phys.write_entry(step.entry_addr, 8, step.entry)
    kmem.buddy.free_pages(pfn, 9)


# ---- randomised ------------------------------------------------------------------------------------
WINDOW = 100  # pages
PROTS = ("---", "r--", "rw-", "r-x", "rwx", "-w-", "--x")
FLAGS = ("private|anonymous", "shared|anonymous", "private", "shared")


def _random_ops(rig: Rig, rng: random.Random, procs: list[Process], base: int, fd: int,
                probes: list[int], n: int) -> None:
    """n random vmsim operations on the window [base, base + WINDOW pages).

    Accesses go through vmsim (fault handler included) to the probe addresses
    of 1 to 8 pages, so stores leave distinct markers where Unicorn will look.
    """
    per_page = len(probes) // WINDOW
    for _ in range(n):
        proc = rng.choice(procs)
        first = rng.randrange(WINDOW)
        pages = min(rng.randint(1, 8), WINDOW - first)
        start, length = base + first * PAGE, pages * PAGE
        op = rng.choices(["mmap", "munmap", "mprotect", "store", "load", "fetch", "fork",
                          "dontneed"], [20, 4, 14, 34, 20, 6, 4, 4])[0]
        if op == "mmap":
            flags = rng.choice(FLAGS) + "|fixed" + ("|populate" if rng.random() < 0.4 else "")
            file = "anonymous" not in flags
            off = rng.randrange(WINDOW) * PAGE if file else 0
            got = proc.mmap(start, length, rng.choice(PROTS), flags, fd if file else -1, off)
            assert got == start, f"mmap {flags} at {start:#x}: {got}"
        elif op == "munmap":
            assert proc.munmap(start, length) == 0
        elif op == "mprotect":
            proc.mprotect(start, length, rng.choice(PROTS))  # -ENOMEM over holes is fine
        elif op == "dontneed":
            proc.madvise(start, length, m.MADV_DONTNEED)
        elif op == "fork":
            if len(procs) < 3:
                procs.append(rig.fork(proc))
        else:
            for addr in probes[first * per_page:(first + pages) * per_page]:
                vma = proc.mm.find_vma(addr)
                if vma is None or vma.vm_start > addr or not vma_permits(ACCESS[op], vma):
                    continue  # vmsim would kill the process; that is not what is tested here
                rig.serial += 1
                if op == "store":
                    assert proc.store(addr, word(0x2000_0000 | rig.serial), check=True)
                elif op == "load":
                    assert proc.load(addr, 8, check=True) is not None
                else:
                    assert proc.fetch(addr, 5, check=True) is not None


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_operations_crosscheck(tmp_path: Path, seed: int) -> None:
    """Seeded random mmap/munmap/mprotect/madvise/fork/store/load/fetch, then every address probed.

    Three rounds of 50 vmsim operations over a 100-page window (anonymous and
    file, private and shared, every protection) in up to three processes; after
    each round, for each process, 200 addresses (two per page) are loaded,
    fetched and stored through Unicorn and must agree with vmsim in outcome,
    data, error code and A/D bits. Unicorn's stores and A/D updates stay in
    vmsim's RAM, so later rounds run on the state the CPU left.
    """
    nwords = 2 * WINDOW * PAGE // 8
    (tmp_path / "data.bin").write_bytes(b"".join(word(0x1000_0000 | i) for i in range(nwords)))
    rig = make_rig(tmp_path, seed)
    rng = random.Random(seed)
    root = rig.spawn()
    fd = root.open("/data.bin", O_RDWR)
    assert fd >= 0
    base = root.mmap(None, WINDOW * PAGE, "---", "private|anonymous")
    assert base > 0
    procs = [root]
    addrs = [base + page * PAGE + rng.randrange(PAGE // 8) * 8 for page in range(WINDOW)
             for _ in range(2)]
    for _ in range(3):
        _random_ops(rig, rng, procs, base, fd, addrs, 50)
        rig.machine.check()
        for proc in procs:
            for va in addrs:
                for kind in ("load", "fetch", "store"):
                    rig.crosscheck(proc, va, kind)
        rig.machine.check()
    tally = rig.tally
    # The mix really exercised every outcome (a user load never meets P=1 without U/S).
    for outcome in ("load ok", "load not-present", "store ok", "store P", "store not-present",
                    "fetch ok", "fetch P", "fetch not-present", "fetch executed"):
        assert tally[outcome] >= 10, dict(tally)


def test_error_codes_match_mmufault_bits() -> None:
    """vmsim's MmuFault bits are the architectural page-fault error-code bits."""
    assert (MmuFault.PROT, MmuFault.WRITE, MmuFault.USER, MmuFault.INSTR) == (
        PF_PROT, PF_WRITE, PF_USER, PF_INSTR)
