"""Guard regions (MADV_GUARD_INSTALL / MADV_GUARD_REMOVE, Linux 6.13): PTE markers."""

from __future__ import annotations

import struct

from tests.ptes import pte_of
from vmsim import Machine
from vmsim.fs.procfs import PM_GUARD_REGION, PM_PRESENT, PM_SWAP
from vmsim.mm import mman as m

PS = 4096



def test_marker_encoding_is_x86_swap_entry_of_pte_marker_type(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private|anonymous")
    assert p.madvise(a, PS, m.MADV_GUARD_INSTALL) == 0
    # __swppte_of(SWP_PTE_MARKER = 31, PTE_MARKER_GUARD = 4): type in bits 59-63, offset inverted
    assert pte_of(p, a) == 0xFFFF_FFFF_FFFF_F600


def test_touching_a_guard_page_is_segv_maperr(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 3 * PS, "rw-", "private|anonymous")
    p.store(a + PS, b"data")
    assert p.madvise(a + PS, PS, m.MADV_GUARD_INSTALL) == 0
    assert p.mm.get_mm_rss() == 0  # the page under the guard was zapped
    assert p.store(a, b"ok") and p.load(a + 2 * PS) == b"\0"
    assert p.load(a + PS) is None
    assert p.siginfo is not None and (p.siginfo.signo, p.siginfo.code) == (11, 1)


def test_guards_survive_dontneed_and_fork_but_not_munmap(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "rw-", "private|anonymous")
    assert p.madvise(a, 2 * PS, m.MADV_GUARD_INSTALL) == 0
    assert p.madvise(a, 4 * PS, m.MADV_DONTNEED) == 0
    assert p.mprotect(a, 4 * PS, "r--") == 0
    machine.check()
    c = p.fork()
    assert not isinstance(c, int)
    assert pte_of(c, a) == pte_of(p, a) != 0
    assert c.load(a) is None and c.siginfo is not None and c.siginfo.code == 1
    assert p.madvise(a, PS, m.MADV_POPULATE_READ) == -m.EFAULT
    assert p.munmap(a, 4 * PS) == 0
    b = p.mmap(a, 4 * PS, "rw-", "private|anonymous|fixed")
    assert b == a and p.load(a) == b"\0"  # the markers went with the unmapped area
    machine.check()


def test_remove_and_pagemap(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private|anonymous")
    p.store(a + PS, b"x")
    p.madvise(a, PS, m.MADV_GUARD_INSTALL)
    e0, e1 = struct.unpack("<2Q", machine.procfs.pagemap(p.pid, a, 2))
    assert e0 & (PM_SWAP | PM_GUARD_REGION) == PM_SWAP | PM_GUARD_REGION and not e0 & PM_PRESENT
    assert e0 & 0x7F_FFFF_FFFF_FFFF == 31 | (4 << 5)  # swap type | offset << MAX_SWAPFILES_SHIFT
    assert e1 & PM_PRESENT and not e1 & PM_GUARD_REGION
    assert p.mlock(a + PS, PS) == 0
    assert p.madvise(a, 2 * PS, m.MADV_GUARD_INSTALL) == -m.EINVAL  # locked area
    assert p.madvise(a, 2 * PS, m.MADV_GUARD_REMOVE) == 0  # removal is allowed there
    assert pte_of(p, a) == 0 and p.load(a) == b"\0"
    machine.check()


def test_mremap_moves_markers(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private|anonymous")
    p.madvise(a + PS, PS, m.MADV_GUARD_INSTALL)
    b = p.mremap(a, 2 * PS, 2 * PS, m.MREMAP_MAYMOVE | m.MREMAP_FIXED, a + 64 * PS)
    assert b == a + 64 * PS
    assert p.load(b) == b"\0" and p.load(b + PS) is None
