"""The page at end of file: fault-around next to EOF, and what ftruncate() does to that page.

Host cases are short conformance scripts compared step by step with the host
kernel (smaps, pagemap, fault counts after every step), with no known
difference allowed except the write-through page cache's, which only hides
that the host keeps the zeroed EOF page dirty (the last step of a script is
where it would first show).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim import Machine
from vmsim.arch.paging import Access
from vmsim.conform.generator import FILES
from vmsim.conform.host import host_supported
from vmsim.conform.known_differences import by_id
from vmsim.conform.runner import Case, run_case
from vmsim.fs.vfs import O_RDWR
from vmsim.mm.fault import SIGBUS, do_user_addr_fault
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pte_offset

PS = 4096
A = 0x100000

HOST_CASES = {
    # A fault beyond EOF in a fresh page table: Linux installs the table only
    # when the first cached page fault-around finds may be mapped large, and
    # the EOF page may not, so the cached EOF page stays unmapped.
    # (random/2/909, random/2/452)
    "sigbus-fault-fresh-table": (
        "open g0.bin 0", "pread 3 0x375c 4",
        f"mmap {A:#x} {2 * PS:#x} 5 18 3 0x3000",
        f"touch {A + PS:#x} x", f"touch {A + PS:#x} r", f"touch {A:#x} r",
    ),
    # with the table already there (and other pages first), it is mapped
    "sigbus-fault-existing-table": (
        "open g0.bin 0", "pread 3 0 4",
        f"mmap {A:#x} {2 * PS:#x} 1 18 3 0x3000", f"touch {A:#x} r",
        f"madvise {A:#x} {PS:#x} 4", f"touch {A + PS:#x} r",
        f"mmap {A + 0x10000:#x} {3 * PS:#x} 1 18 3 0x2000", f"touch {A + 0x12000:#x} r",
    ),
    # ftruncate() up from a partial last block caches that page, not uptodate:
    # mincore does not count it; a fault on it is minor and maps it alone.
    "ftruncate-up": (
        "open g1.bin 2", "ftruncate 3 0x4000", f"mmap {A:#x} {4 * PS:#x} 1 1 3 0",
        f"mincore {A:#x} {4 * PS:#x}", f"touch {A + PS:#x} r",
    ),
    # down to a partial block, and to the same size: the new EOF page likewise
    "ftruncate-down": (
        "open g0.bin 2", "ftruncate 3 0x2100", f"mmap {A:#x} {4 * PS:#x} 1 1 3 0",
        f"mincore {A:#x} {3 * PS:#x}", f"touch {A + 2 * PS:#x} r",
    ),
    "ftruncate-same-size": (
        "open g1.bin 2", "ftruncate 3 6000", f"mmap {A:#x} {2 * PS:#x} 1 1 3 0",
        f"mincore {A:#x} {2 * PS:#x}", f"touch {A + PS:#x} r",
    ),
    # a cached, uptodate EOF page stays so; read() of a page not uptodate reads it
    "ftruncate-cached-then-read": (
        "open g1.bin 2", "pread 3 0 1", "ftruncate 3 0x3000", "ftruncate 3 0x2800",
        f"mmap {A:#x} {3 * PS:#x} 1 1 3 0", f"mincore {A:#x} {3 * PS:#x}",
        "pread 3 0x2100 4", f"mincore {A:#x} {3 * PS:#x}", f"touch {A:#x} r",
    ),
}


@pytest.mark.skipif(not host_supported(), reason="needs a Linux x86-64 host")
@pytest.mark.parametrize("name", sorted(HOST_CASES))
def test_same_as_host(name: str, tmp_path: Path) -> None:
    res = run_case(Case(name, HOST_CASES[name], FILES), tmp_path / "files",
                   table=(by_id("page-cache-write-through"),))
    assert res.status in ("pass", "known"), res.detail
    if res.status == "known":  # only the EOF page's dirtiness, on the last step
        assert res.step == len(HOST_CASES[name]) - 1, res.detail


def test_ftruncate_leaves_eof_page_cached_not_uptodate(machine: Machine, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"a" * 6000)
    p = machine.spawn()
    fd = p.open("/f", O_RDWR)
    assert p.ftruncate(fd, 4 * PS) == 0
    inode = p.files[fd].inode
    assert list(inode.pages) == [1]
    assert not machine.kmem.mem_map.flags_mv[inode.pages[1]] & PG.uptodate
    a = p.mmap(None, 4 * PS, "r--", "shared", fd, 0)
    assert p.mincore(a, 4 * PS) == bytes(4)
    assert p.load(a + PS, 2000) == b"a" * (6000 - PS) + bytes(2000 - (6000 - PS))
    assert (p.min_flt, p.maj_flt) == (1, 0)
    assert p.mincore(a, 4 * PS) == b"\x00\x01\x00\x00"
    machine.check()


def test_sigbus_fault_gives_back_its_page_table(machine: Machine, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"a" * PS)
    p = machine.spawn()
    fd = p.open("/f", O_RDWR)
    a = p.mmap(None, 2 * PS, "r--", "private", fd, 0)
    assert p.pread(fd, 1, 0) == b"a"
    out = do_user_addr_fault(p.mm, a + PS, int(Access.READ))
    assert out.signo == SIGBUS
    assert pte_offset(machine.kmem, p.mm.pgd, a) < 0  # no table was kept for the failed fault
    assert p.load(a, 1) == b"a"
    assert pte_offset(machine.kmem, p.mm.pgd, a) >= 0
    machine.check()
